import { type ContainerConfig, parseImageSpec } from '@irb/registry';
import { type AttachedInitramfs, findInitramfs } from './fleet-pull.ts';
import { openSource, platformString, registryPlatforms } from './source.ts';
import { sourceOptions } from './source-options.ts';
import type { InitramfsBuilderOptions, LayerInfo } from './types.ts';

/** Options of {@link inspectImage} and {@link listLayers}. */
export type InspectOptions = Pick<
  InitramfsBuilderOptions,
  'platform' | 'keychains' | 'cacheDir' | 'cache' | 'insecureRegistries' | 'mirrors' | 'signal'
>;

/** What {@link inspectImage} tells about an image. */
export interface ImageInspection {
  /** The image as given. */
  image: string;
  /** Digest of the platform manifest. */
  digest: string;
  /** Digest of the index, for a multi-platform image from a registry. */
  indexDigest?: string;
  /** Platforms of a multi-platform image (empty for a single-platform one). */
  platforms: Array<{ platform: string; digest: string }>;
  /** The platform inspected. */
  platform: string;
  configDigest: string;
  /** The runtime config: Entrypoint, Cmd, Env, WorkingDir, User, … */
  config: ContainerConfig;
  created?: string;
  layers: LayerInfo[];
  /** irb initramfs artifacts attached to the image (registry images; see `pushInitramfs`). */
  initramfs?: AttachedInitramfs[];
}

/** Reads an image's manifest, config and platforms without downloading its layers. */
export async function inspectImage(image: string, options: InspectOptions = {}): Promise<ImageInspection> {
  const opts = sourceOptions(options);
  const source = await openSource(image, opts);
  try {
    const img = source.image;
    const [digest, manifest, config, layers] = await Promise.all([
      img.digest(),
      img.manifest(),
      img.config(),
      img.layers(),
    ]);
    const { indexDigest, platforms } = await registryPlatforms(image, opts);
    const out: ImageInspection = {
      image,
      digest,
      platforms,
      platform: platformString(config),
      configDigest: manifest.config.digest,
      config: config.config ?? {},
      layers: layers.map((l) => ({
        digest: l.digest,
        diffId: l.diffId,
        mediaType: l.mediaType,
        size: l.size,
      })),
    };
    if (indexDigest) out.indexDigest = indexDigest;
    if (config.created) out.created = config.created;
    const attached = await attachedInitramfs(image, options);
    if (attached) out.initramfs = attached;
    return out;
  } finally {
    await source.close();
  }
}

/** The layers of an image, base first, without downloading them. */
export async function listLayers(image: string, options: InspectOptions = {}): Promise<LayerInfo[]> {
  return (await inspectImage(image, options)).layers;
}

/** The attached initramfs artifacts of a registry image; a lookup that fails does not fail the inspection. */
async function attachedInitramfs(
  image: string,
  options: InspectOptions,
): Promise<AttachedInitramfs[] | undefined> {
  if (parseImageSpec(image).transport !== 'registry') return undefined;
  return findInitramfs(image, options).catch(() => undefined);
}
