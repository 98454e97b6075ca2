import { IrbError } from '@irb/errors';
import { createRegistryClient, type RegistryClient, type RegistryClientOptions } from './client.ts';
import { openOciLayout } from './sources/oci-layout.ts';
import type { Image, Platform, ProgressListener } from './types.ts';

/** Options of {@link openImage}. */
export interface OpenImageOptions {
  /** `os/arch[/variant]` or a {@link Platform}. Default: `linux/amd64` (or the client's platform for registry images). */
  platform?: string | Platform;
  signal?: AbortSignal;
  /** Progress of registry blob transfers. */
  onProgress?: ProgressListener;
  /**
   * The client used for registry references. Pass one to share its connections, cache and
   * keychains and to `close()` it when done. Default: a client made from {@link registry}, which
   * lives as long as the image does.
   */
  client?: RegistryClient;
  /** Options for the client made when {@link client} is not given (keychains, mirrors, cache, …). */
  registry?: RegistryClientOptions;
}

/** An image spec as {@link openImage} understood it. */
export type ImageSpec =
  | { transport: 'oci'; path: string; tag?: string }
  | { transport: 'docker-archive'; path: string; tag?: string }
  | { transport: 'registry'; reference: string };

/** Transports other tools know (skopeo, podman) that irb does not read, with what to do instead. */
const UNSUPPORTED: Record<string, string> = {
  'oci-archive': 'extract the archive (tar -xf) and use oci:DIR',
  'docker-daemon':
    'irb needs no daemon: docker save IMAGE -o FILE and use docker-archive:FILE, or pull from the registry',
  'containers-storage':
    'copy it out with skopeo copy containers-storage:IMAGE oci:DIR:TAG and use oci:DIR:TAG',
  dir: 'copy it with skopeo copy dir:PATH oci:DIR:TAG and use oci:DIR:TAG',
};

/**
 * Parses an image spec, with skopeo's transport syntax:
 * `oci:DIR[:TAG]`, `docker-archive:FILE[:NAME:TAG|:@N]`, `docker://REFERENCE` or a plain reference
 * (`alpine`, `ghcr.io/org/app:1.2`, `localhost:5000/x@sha256:…`). The path ends at the first `:`.
 */
export function parseImageSpec(spec: string): ImageSpec {
  const local = /^(oci|docker-archive):(.*)$/s.exec(spec);
  if (local) {
    const transport = local[1] as 'oci' | 'docker-archive';
    const rest = local[2] as string;
    const colon = rest.indexOf(':');
    const path = colon === -1 ? rest : rest.slice(0, colon);
    const tag = colon === -1 ? undefined : rest.slice(colon + 1);
    if (path === '') {
      throw new IrbError(
        'IRB_REFERENCE_INVALID',
        `"${spec}" names no ${transport === 'oci' ? 'directory' : 'file'}; write ${transport}:PATH${transport === 'oci' ? '[:TAG]' : '[:NAME:TAG]'}`,
      );
    }
    return tag ? { transport, path, tag } : { transport, path };
  }
  if (spec.startsWith('docker://'))
    return { transport: 'registry', reference: spec.slice('docker://'.length) };
  const other = /^([a-z][a-z-]*):(?!\d+(?:\/|$))/.exec(spec);
  const hint = other ? UNSUPPORTED[other[1] as string] : undefined;
  if (other && hint) {
    throw new IrbError('IRB_SOURCE_UNSUPPORTED', `irb cannot read ${other[1]}: images; ${hint}`);
  }
  return { transport: 'registry', reference: spec };
}

/**
 * Opens an image from any source irb reads — an OCI layout directory, a `docker save` archive
 * or a registry — as the same {@link Image}: platform selected, every blob verified when read.
 */
export async function openImage(spec: string, options: OpenImageOptions = {}): Promise<Image> {
  const parsed = parseImageSpec(spec);
  const common = {
    ...(options.platform !== undefined && { platform: options.platform }),
    ...(options.signal && { signal: options.signal }),
  };
  switch (parsed.transport) {
    case 'oci':
      return openOciLayout(parsed.path, { ...common, ...(parsed.tag !== undefined && { tag: parsed.tag }) });
    case 'docker-archive': {
      // Loaded only for an archive: with its tar index and @irb/tar it is ~10 modules that a
      // build from a registry or a layout never runs, on every start of the CLI.
      const { openDockerArchive } = await import('./sources/docker-archive.ts');
      return openDockerArchive(parsed.path, {
        ...common,
        ...(parsed.tag !== undefined && { tag: parsed.tag }),
      });
    }
    case 'registry': {
      const client = options.client ?? createRegistryClient(options.registry);
      return client.image(parsed.reference, {
        ...common,
        ...(options.onProgress && { onProgress: options.onProgress }),
      });
    }
  }
}
