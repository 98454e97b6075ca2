import { IrbError } from '@irb/errors';
import { canonicalSourcePath, type ModuleSource, type ModuleSourceBody, tarModuleSource } from '@irb/kmod';
import { createDirectoryIndexCache, indexLayers, type Rootfs } from '@irb/layers';
import type { CacheLayout } from '@irb/store';
import { openSource, type SourceOptions } from './source.ts';

/*
 * An image as a kernel module source (@irb/kmod's interface): an image that holds
 * `/lib/modules/<release>` (one built `FROM debian` with `linux-image-amd64`, a distribution's
 * kernel image), or LinuxKit's layout — `/kernel` and `/kernel.tar`, a tar of
 * `lib/modules/<release>/…`. The layers are indexed keeping only those paths, so reading the
 * tree costs one pass over the layers that hold it, and nothing of the image is unpacked.
 */

/** Paths of an image that can hold a module tree or its kernel's config. */
function wantedPath(path: string): boolean {
  const p = path.replace(/^\/+/, '');
  return (
    /^(usr\/)?lib\/modules(\/|$)/.test(p) ||
    p === 'boot' ||
    /^boot\/config-[^/]+$/.test(p) ||
    p === 'kernel.tar'
  );
}

/** An opened kernel image: its platform manifest digest, and the source once asked for. */
export interface ImageModules {
  /** The image's platform manifest digest: what its module tree is cached by. */
  manifestDigest: string;
  /** Indexes the layers (once) and gives the module source. */
  source(): Promise<ModuleSource>;
  /** Releases the registry client and the indexed layers. */
  close(): Promise<void>;
}

/** A body the consumer may drop: the layer reader skips what is not read. */
async function* bodyOf(body: unknown): AsyncGenerator<Uint8Array> {
  if (body instanceof Uint8Array) yield body;
  else if (typeof body === 'function') yield* (body as () => AsyncIterable<Uint8Array>)();
  else if (body !== undefined) yield* body as AsyncIterable<Uint8Array>;
}

/** The regular files of an indexed root as a module source's one pass (tree paths canonical). */
function rootfsModuleSource(rootfs: Rootfs, label: string): ModuleSource {
  return {
    label,
    async *files(wanted, signal) {
      for await (const entry of rootfs.entries(signal ? { signal } : {})) {
        if (entry.type !== 'file' || typeof entry.path !== 'string') continue;
        const file = { path: canonicalSourcePath(entry.path), size: entry.size };
        if (!wanted(file)) continue;
        const out: ModuleSourceBody = { ...file, body: bodyOf(entry.body) };
        yield out;
      }
    },
  };
}

/** The body of one file of an indexed root, streamed from its layer. */
async function* fileBody(rootfs: Rootfs, key: string, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  for await (const entry of rootfs.entries(signal ? { signal } : {})) {
    if (entry.type === 'file' && entry.path === key) {
      yield* bodyOf(entry.body);
      return;
    }
  }
}

/**
 * Opens `ref` (a registry reference, `oci:DIR[:TAG]` or `docker-archive:FILE`) for its kernel
 * modules. The layers are read only when {@link ImageModules.source} is called: a build whose
 * module set is known by the image's digest never reads them.
 */
export async function openImageModules(
  ref: string,
  options: SourceOptions,
  layout: CacheLayout | undefined,
): Promise<ImageModules> {
  const opened = await openSource(ref, options);
  let rootfs: Rootfs | undefined;
  let source: Promise<ModuleSource> | undefined;
  try {
    const manifestDigest = await opened.image.digest();
    const index = async (): Promise<ModuleSource> => {
      const indexed = await indexLayers(await opened.image.layers(), {
        keep: (entry) => wantedPath(entry.path),
        ...(layout ? { indexCache: createDirectoryIndexCache(layout.index, { tempDir: layout.tmp }) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      rootfs = indexed;
      const label = `${ref} (${manifestDigest})`;
      // Only the trees were kept (not a `lib -> usr/lib` link): either place holds one.
      const tree = ['/lib/modules', '/usr/lib/modules'].some(
        (path) => indexed.lookup(path, { follow: true })?.type === 'directory',
      );
      if (tree) return rootfsModuleSource(indexed, label);
      const kernelTar = indexed.lookup('/kernel.tar', { follow: true });
      if (kernelTar?.type === 'file' && typeof kernelTar.path === 'string') {
        const key = kernelTar.path;
        return tarModuleSource({
          label: `${label}:/kernel.tar`,
          open: () => fileBody(indexed, key, options.signal),
        });
      }
      throw new IrbError(
        'IRB_KMOD_SOURCE_INVALID',
        `the image ${ref} holds neither /lib/modules/<release> nor LinuxKit's /kernel.tar; give an image with the kernel's modules, its .deb or a /lib/modules/<release> directory`,
      );
    };
    return {
      manifestDigest,
      source: () => {
        source ??= index();
        return source;
      },
      close: async () => {
        await rootfs?.close();
        await opened.close();
      },
    };
  } catch (error) {
    await opened.close();
    throw error;
  }
}
