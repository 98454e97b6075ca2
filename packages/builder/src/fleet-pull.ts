/**
 * The pull side of fleet distribution: finding the initramfs artifacts attached to an image
 * (referrers API or tag-schema fallback), choosing one by platform and build key, and copying it
 * out of the verified blob cache into the output file.
 */
import { IrbError } from '@irb/errors';
import {
  type Descriptor,
  type ImageIndex,
  INITRAMFS_ANNOTATIONS,
  INITRAMFS_ARTIFACT_TYPE,
  type InitramfsLayerCompression,
  initramfsLayerCompression,
  isInitramfsManifest,
  parsePlatform,
  type Reference,
  type ReferrerDescriptor,
  selectManifest,
} from '@irb/registry';
import { corruptCacheEntry } from '@irb/store';
import { writeFileAtomic } from './atomic.ts';
import {
  type FleetOptions,
  KERNEL_COMPRESSIONS,
  platformName,
  registryReference,
  withClient,
} from './fleet.ts';

/** Options of {@link pullInitramfs}. */
export interface PullInitramfsOptions extends FleetOptions {
  /** Which artifact when several platforms are attached (`os/arch[/variant]`); also picks from an index. */
  platform?: string;
  /**
   * Accept the artifact only when its `dev.irb.build-key` annotation is this key (the remote
   * build cache); otherwise `IRB_INITRAMFS_NOT_FOUND` and nothing is written.
   */
  buildKey?: string;
  /**
   * Accept only an archive of this compression (what the output's name says, `x.cpio.gz`);
   * another is `IRB_OPTION_INVALID` and nothing is written. Default: any.
   */
  compression?: InitramfsLayerCompression;
  /** Bytes written so far, as the archive is copied out of the blob cache. */
  onProgress?: (event: { done: number; total: number }) => void;
}

/** What {@link pullInitramfs} wrote. */
export interface PullInitramfsResult {
  output: string;
  /** `registry/repository@sha256:…` of the artifact manifest. */
  reference: string;
  digest: string;
  /** The archive's blob digest and size. */
  layer: Descriptor;
  compression: InitramfsLayerCompression;
  annotations: Record<string, string>;
  platform?: string;
}

/** One initramfs artifact attached to an image. */
export interface AttachedInitramfs {
  /** `registry/repository@sha256:…` of the artifact manifest. */
  reference: string;
  digest: string;
  platform?: string;
  compression?: InitramfsLayerCompression;
  annotations: Record<string, string>;
  /** The manifest it refers to (the platform manifest, or the index). */
  subject: string;
  /** `api` or `tag` (the OCI 1.1 fallback). */
  via: 'api' | 'tag';
}

/**
 * The initramfs artifacts attached to an image (its platform manifest for `platform`, and its
 * index when it has one), through the referrers API or the tag-schema fallback.
 */
export async function findInitramfs(
  image: string,
  options: FleetOptions & { platform?: string } = {},
): Promise<AttachedInitramfs[]> {
  const ref = registryReference(image, 'the image');
  const { signal } = options;
  return withClient(options, async (client) => {
    const top = await client.manifest(ref, signal ? { signal } : {});
    const subjects = [top.digest];
    if (top.isIndex) {
      const wanted = options.platform ? parsePlatform(options.platform) : undefined;
      const index = top.json as ImageIndex;
      if (wanted) subjects.unshift(selectManifest(index, wanted, ref.identifier).digest);
      else for (const m of index.manifests) if (m.platform) subjects.push(m.digest);
    }
    const found: AttachedInitramfs[] = [];
    for (const subject of subjects) {
      const listed = await client.referrers(ref, subject, {
        artifactType: INITRAMFS_ARTIFACT_TYPE,
        ...(signal ? { signal } : {}),
      });
      for (const m of listed.manifests) {
        if (found.some((f) => f.digest === m.digest)) continue;
        found.push(attached(ref, m, subject, listed.via));
      }
    }
    return found;
  });
}

function attached(
  ref: Reference,
  m: ReferrerDescriptor,
  subject: string,
  via: 'api' | 'tag',
): AttachedInitramfs {
  const annotations = { ...m.annotations };
  const out: AttachedInitramfs = {
    reference: `${ref.registry}/${ref.repository}@${m.digest}`,
    digest: m.digest,
    annotations,
    subject,
    via,
  };
  const platform = annotations[INITRAMFS_ANNOTATIONS.platform];
  if (platform) out.platform = platform;
  const compression = annotations[INITRAMFS_ANNOTATIONS.compression];
  const known = KERNEL_COMPRESSIONS.find((c) => c === compression);
  if (known) out.compression = known;
  return out;
}

function samePlatform(a: string | undefined, b: string): boolean {
  if (!a) return false;
  try {
    const x = parsePlatform(a);
    const y = parsePlatform(b);
    return x.os === y.os && x.architecture === y.architecture && (x.variant ?? '') === (y.variant ?? '');
  } catch {
    return false;
  }
}

/** Picks one artifact: by `platform` when given, else the only one (or the only platform). */
function choose(
  candidates: AttachedInitramfs[],
  platform: string | undefined,
  what: string,
): AttachedInitramfs {
  const matching = platform ? candidates.filter((c) => samePlatform(c.platform, platform)) : candidates;
  if (matching.length === 0) {
    const have = [...new Set(candidates.map((c) => c.platform ?? '(no platform)'))].join(', ');
    throw new IrbError(
      'IRB_INITRAMFS_NOT_FOUND',
      candidates.length === 0
        ? `no irb initramfs is attached to ${what}; build and push one with \`source\` set to it (irb push ARCHIVE ${what.replace(/[@:][^/]*$/, '')} --source ${what})`
        : `no initramfs for ${platform} is attached to ${what} (there are: ${have}); set \`platform\` to one of them`,
    );
  }
  const platforms = new Set(matching.map((c) => c.platform ?? ''));
  if (platforms.size > 1) {
    throw new IrbError(
      'IRB_PLATFORM_REQUIRED',
      `initramfs artifacts for several platforms are attached to ${what} (${[...platforms].join(', ')}); set \`platform\` to choose one`,
    );
  }
  // Several pushes for one platform: the newest by `created`, else the last one listed.
  return matching.reduce((best, c) =>
    (c.annotations[INITRAMFS_ANNOTATIONS.created] ?? '') >=
    (best.annotations[INITRAMFS_ANNOTATIONS.created] ?? '')
      ? c
      : best,
  );
}

/**
 * Pulls an initramfs artifact into `output`: by reference (`host/repo:tag`, `…@sha256:…`, an
 * index of artifacts chosen among by `platform`) or `{ for: image }`, which finds the artifact
 * attached to the image through referrers. The archive goes through the verified blob cache
 * (downloads resume where they broke off) and appears at `output` atomically.
 */
export async function pullInitramfs(
  from: string | { for: string },
  output: string,
  options: PullInitramfsOptions = {},
): Promise<PullInitramfsResult> {
  const { signal } = options;
  return withClient(options, async (client) => {
    let artifactRef: Reference;
    if (typeof from === 'string') {
      artifactRef = registryReference(from, 'the artifact');
    } else {
      const found = await findInitramfs(from.for, { ...options, client });
      const chosen = choose(found, options.platform, from.for);
      artifactRef = registryReference(chosen.reference, 'the artifact');
    }
    let fetched = await client.manifest(artifactRef, { artifacts: true, ...(signal ? { signal } : {}) });
    if (fetched.isIndex) {
      // An index of initramfs artifacts, one per platform.
      const entries = (fetched.json as ImageIndex).manifests.map((m) => {
        const annotations = { ...m.annotations };
        if (m.platform && !annotations[INITRAMFS_ANNOTATIONS.platform]) {
          annotations[INITRAMFS_ANNOTATIONS.platform] = platformName(m.platform);
        }
        return attached(artifactRef, { ...m, annotations }, fetched.digest, 'api');
      });
      const chosen = choose(entries, options.platform, typeof from === 'string' ? from : from.for);
      artifactRef = { ...artifactRef, digest: chosen.digest, identifier: chosen.digest };
      fetched = await client.manifest(artifactRef, { artifacts: true, ...(signal ? { signal } : {}) });
    }
    const manifest = fetched.json as unknown;
    if (!isInitramfsManifest(manifest)) {
      const artifactType = (manifest as { artifactType?: string }).artifactType;
      throw new IrbError(
        'IRB_INITRAMFS_NOT_FOUND',
        `${typeof from === 'string' ? from : artifactRef.repository} is ${artifactType ? `an artifact of type ${artifactType}` : 'a container image'}, not an irb initramfs${artifactType ? '' : '; to get the initramfs built from an image, pull with `for` set to it (irb pull --for IMAGE)'}`,
      );
    }
    const layer = manifest.layers[0] as Descriptor;
    const compression = initramfsLayerCompression(layer.mediaType) as InitramfsLayerCompression;
    const annotations = { ...manifest.annotations };
    const platform = annotations[INITRAMFS_ANNOTATIONS.platform];
    if (options.platform && platform && !samePlatform(platform, options.platform)) {
      throw new IrbError(
        'IRB_PLATFORM_NOT_FOUND',
        `${typeof from === 'string' ? from : from.for} is an initramfs for ${platform}, not ${options.platform}; drop \`platform\` or pull another artifact`,
      );
    }
    if (options.compression !== undefined && compression !== options.compression) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `${typeof from === 'string' ? from : from.for}: the archive is ${compression === 'none' ? 'a plain cpio' : `${compression}-compressed`}, but the output ${output} is named for ${options.compression === 'none' ? 'a plain cpio' : options.compression}; name it for ${compression}`,
      );
    }
    if (options.buildKey !== undefined && annotations[INITRAMFS_ANNOTATIONS.buildKey] !== options.buildKey) {
      throw new IrbError(
        'IRB_INITRAMFS_NOT_FOUND',
        `${artifactRef.registry}/${artifactRef.repository}@${fetched.digest} was built with build key ${annotations[INITRAMFS_ANNOTATIONS.buildKey] ?? '(none)'}, not ${options.buildKey}`,
      );
    }
    const write = () =>
      writeFileAtomic(output, client.openBlob(artifactRef, layer, signal ? { signal } : {}), {
        ...(signal ? { signal } : {}),
        onWrite: (done) => options.onProgress?.({ done, total: layer.size }),
      });
    // A cached copy that turned out corrupt was removed, and nothing was written: once more
    // downloads it afresh.
    await write().catch((error: unknown) => {
      if (corruptCacheEntry(error) === undefined || signal?.aborted) throw error;
      return write();
    });
    const result: PullInitramfsResult = {
      output,
      reference: `${artifactRef.registry}/${artifactRef.repository}@${fetched.digest}`,
      digest: fetched.digest,
      layer: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size },
      compression,
      annotations,
    };
    if (platform) result.platform = platform;
    return result;
  });
}
