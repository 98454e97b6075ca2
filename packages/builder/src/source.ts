import {
  type BlobProgress,
  createRegistryClient,
  type Image,
  type ImageConfigFile,
  type ImageIndex,
  type Keychain,
  ociLayoutPlatforms,
  openImage,
  parseImageSpec,
  parseReference,
  type RegistryClient,
} from '@irb/registry';

/** Options for opening an image source (registry, OCI layout, docker-archive). */
export interface SourceOptions {
  platform?: string;
  keychains: readonly Keychain[];
  cacheDir?: string;
  cache?: boolean;
  insecureRegistries?: readonly string[];
  mirrors?: Readonly<Record<string, readonly string[]>>;
  signal?: AbortSignal;
  onProgress?: (event: BlobProgress) => void;
}

/** An opened image and what to release after use. */
export interface OpenedSource {
  image: Image;
  /** The registry client, for registry references. */
  client?: RegistryClient;
  /** Releases connections and a temporary cache. */
  close(): Promise<void>;
}

/** Opens `spec` (`oci:DIR[:TAG]`, `docker-archive:FILE[:TAG]` or a registry reference) as one platform's Image. */
export async function openSource(spec: string, options: SourceOptions): Promise<OpenedSource> {
  const parsed = parseImageSpec(spec);
  const client = parsed.transport === 'registry' ? createRegistry(options) : undefined;
  try {
    const image = await openImage(spec, {
      ...(options.platform !== undefined ? { platform: options.platform } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(client ? { client } : {}),
    });
    return client ? { image, client, close: () => client.close() } : { image, close: async () => {} };
  } catch (error) {
    await client?.close();
    throw error;
  }
}

/** A registry client for the source options (keychains, insecure registries, mirrors, cache, signal). */
export function createRegistry(options: Omit<SourceOptions, 'platform'>): RegistryClient {
  return createRegistryClient({
    keychains: [...options.keychains],
    ...(options.insecureRegistries ? { insecureRegistries: [...options.insecureRegistries] } : {}),
    ...(options.mirrors
      ? { mirrors: Object.fromEntries(Object.entries(options.mirrors).map(([k, v]) => [k, [...v]])) }
      : {}),
    ...(options.cache !== undefined ? { cache: options.cache } : {}),
    ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}

/** The platforms of a registry reference's index (empty for a single-platform image). */
export async function registryPlatforms(
  spec: string,
  options: SourceOptions,
): Promise<{ indexDigest?: string; platforms: Array<{ platform: string; digest: string }> }> {
  const parsed = parseImageSpec(spec);
  if (parsed.transport === 'oci') return layoutPlatforms(parsed.path, parsed.tag, options.signal);
  if (parsed.transport !== 'registry') return { platforms: [] };
  const client = createRegistry(options);
  try {
    const top = await client.manifest(
      parseReference(parsed.reference),
      options.signal ? { signal: options.signal } : {},
    );
    if (!top.isIndex) return { platforms: [] };
    const index = top.json as ImageIndex;
    return {
      indexDigest: top.digest,
      platforms: index.manifests
        .filter((d) => d.platform)
        .map((d) => ({ platform: platformString(d.platform!), digest: d.digest })),
    };
  } finally {
    await client.close();
  }
}

/** Platforms of an OCI layout entry: a nested index's manifests, or several manifests under one tag. */
async function layoutPlatforms(
  dir: string,
  tag: string | undefined,
  signal: AbortSignal | undefined,
): Promise<{ indexDigest?: string; platforms: Array<{ platform: string; digest: string }> }> {
  try {
    const found = await ociLayoutPlatforms(dir, {
      ...(tag !== undefined && { tag }),
      ...(signal && { signal }),
    });
    const platforms = found.platforms.map((d) => ({
      platform: platformString(d.platform),
      digest: d.digest,
    }));
    return found.indexDigest ? { indexDigest: found.indexDigest, platforms } : { platforms };
  } catch {
    // The image itself was opened and verified already; this listing is a best-effort extra.
    return { platforms: [] };
  }
}

/** `os/arch[/variant]` of an image config or descriptor platform. */
export function platformString(
  config:
    | Pick<ImageConfigFile, 'os' | 'architecture' | 'variant'>
    | { os: string; architecture: string; variant?: string },
): string {
  return `${config.os}/${config.architecture}${config.variant ? `/${config.variant}` : ''}`;
}
