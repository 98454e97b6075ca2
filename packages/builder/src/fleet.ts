/**
 * Fleet distribution: an initramfs built once goes to an OCI registry as an artifact
 * (`application/vnd.irb.initramfs.v1`, the empty config, one layer naming its compression) and
 * any host pulls it, by reference or by the image it was built from (`subject` + referrers).
 * Everything below the facade is `@irb/registry`: keychains, token scopes, retries, mirrors for
 * pulls, proxies, insecure registries and the verified blob cache.
 */
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ElfHeaderInfo } from '@irb/boot/arch';
import { DETECT_BYTES, detectCompression } from '@irb/compress';
import { sourceDateEpoch } from '@irb/cpio/epoch';
import { IrbError } from '@irb/errors';
import {
  type ArtifactManifest,
  blobFromBytes,
  blobFromFile,
  type Descriptor,
  EMPTY_CONFIG_BYTES,
  type FetchedManifest,
  INITRAMFS_ANNOTATIONS,
  type InitramfsLayerCompression,
  initramfsManifest,
  manifestBytes,
  OCI_MANIFEST,
  type PushBlobResult,
  parseImageSpec,
  parsePlatform,
  parseReference,
  type Reference,
  type RegistryClient,
  referrerDescriptor,
  sha256Digest,
} from '@irb/registry';
import packageJson from '../package.json' with { type: 'json' };
import { archiveFacts } from './archive.ts';
import { ociArchitecture, runsOn } from './elf-platform.ts';
import { createRegistry } from './source.ts';
import { sourceOptions } from './source-options.ts';
import type { InitramfsBuilderOptions } from './types.ts';

/** The irb version written into pushed artifacts (`dev.irb.version`). */
export const IRB_VERSION: string = packageJson.version;

/** Registry options shared by {@link pushInitramfs}, {@link pullInitramfs} and {@link findInitramfs}. */
export interface FleetOptions
  extends Pick<
    InitramfsBuilderOptions,
    'keychains' | 'cacheDir' | 'cache' | 'insecureRegistries' | 'mirrors' | 'signal'
  > {
  /** A registry client to use (and not close); by default one is made from the options above. */
  client?: RegistryClient;
}

/** Options of {@link pushInitramfs}. */
export interface PushInitramfsOptions extends FleetOptions {
  /**
   * The image the archive was built from (a registry reference). Recorded in the annotations;
   * when `ref` is in the same repository, the artifact's `subject` is that image's manifest, so
   * `pullInitramfs({ for: source })` finds it.
   */
  source?: string;
  /** The source's platform manifest digest, when known (a build's `manifestDigest`); else resolved. */
  sourceDigest?: string;
  /**
   * `os/arch[/variant]` of the archive. Default: the archive's own, from the ELF machine of the
   * program its `/init` runs (what `irb boot` reads too); it also picks the manifest of
   * `source`. Given, it must agree with that (`IRB_PLATFORM_MISMATCH`); it is needed only when
   * the archive cannot tell (an xz archive, no ELF /init) and `source` is set.
   */
  platform?: string;
  /** Guest memory to recommend (MiB). Default: measured from the archive (every compression irb reads; not xz). */
  recommendedMemoryMiB?: number;
  /** The build key (see `buildKey`), written as `dev.irb.build-key`. */
  buildKey?: string;
  /** Extra annotations (`K=V` from the command line); they cannot replace irb's own keys. */
  annotations?: Readonly<Record<string, string>>;
  /** Set `subject` to the source image: `true`, `false`, or `'auto'` (same repository). Default `'auto'`. */
  subject?: boolean | 'auto';
  /** Upload in chunks of this many bytes. Default: one monolithic upload. */
  chunkSize?: number;
  /** Repositories of the same registry the archive blob may be mounted from. */
  mountFrom?: readonly string[];
  /** `org.opencontainers.image.created` comes only from this (seconds). Default: `SOURCE_DATE_EPOCH`. */
  sourceDateEpoch?: number;
}

/** What {@link pushInitramfs} did. */
export interface PushInitramfsResult {
  /** `registry/repository@sha256:…` of the artifact manifest. */
  reference: string;
  /** The tag pushed, when `ref` named one. */
  tag?: string;
  digest: string;
  manifest: ArtifactManifest;
  /** How the archive blob got there. */
  blob: PushBlobResult;
  compression: InitramfsLayerCompression;
  size: number;
  /** The subject's digest, when set; `referrers` says who indexed it. */
  subject?: string;
  /** `api`: the registry indexed the subject (`OCI-Subject`); `tag`: irb wrote the fallback index. */
  referrers?: 'api' | 'tag';
}

/** Runs `fn` with `options.client`, or with a client made from the options and closed after. */
export async function withClient<T>(
  options: FleetOptions,
  fn: (client: RegistryClient) => Promise<T>,
): Promise<T> {
  if (options.client) return fn(options.client);
  const client = createRegistry(sourceOptions(options));
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

export function registryReference(spec: string, what: string): Reference {
  const parsed = parseImageSpec(spec);
  if (parsed.transport !== 'registry') {
    throw new IrbError(
      'IRB_REFERENCE_INVALID',
      `${what} ${spec} is not a registry reference; push and pull work with registries (host/repository[:tag])`,
    );
  }
  return parseReference(parsed.reference);
}

/** True when the reference's last component names a tag or digest (`parseReference` adds `latest` otherwise). */
function namesTag(spec: string): boolean {
  const last = spec.slice(spec.lastIndexOf('/') + 1);
  return last.includes(':') || last.includes('@');
}

export const KERNEL_COMPRESSIONS: readonly InitramfsLayerCompression[] = [
  'none',
  'gzip',
  'zstd',
  'lz4',
  'xz',
];

/** The archive's compression from its magic; refuses what is not an initramfs the kernel reads. */
async function archiveCompression(path: string): Promise<InitramfsLayerCompression> {
  let head: Uint8Array;
  try {
    const handle = await open(path, 'r');
    try {
      const buffer = new Uint8Array(Math.max(DETECT_BYTES, 6));
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, 0);
      head = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new IrbError(
      'IRB_INPUT_UNREADABLE',
      `the archive ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}; give the path of a built initramfs`,
      { cause: error },
    );
  }
  const detected = detectCompression(head);
  if (detected === 'none') {
    const magic = new TextDecoder().decode(head.subarray(0, 6));
    if (magic !== '070701' && magic !== '070702') {
      throw new IrbError(
        'IRB_INITRAMFS_CORRUPT',
        `${path} is neither a CPIO archive nor compressed with a format the kernel reads; push a file built by irb build`,
      );
    }
    return 'none';
  }
  const known = KERNEL_COMPRESSIONS.find((c) => c === detected);
  if (!known) {
    throw new IrbError(
      'IRB_COMPRESSION_UNSUPPORTED',
      `${path} is compressed with ${detected}; irb pushes initramfs archives compressed with gzip, zstd, lz4, xz or none — rebuild with \`compression\` set to one of them`,
    );
  }
  return known;
}

/**
 * The platform the archive is built for, from the ELF machine of the program its /init runs
 * (`elf`: see `archiveFacts`; what `irb boot` picks its QEMU by): `linux/<arch>`, or `undefined`
 * when the archive cannot tell (an xz archive, no ELF /init, a machine without an OCI name). An
 * explicit `platform` for another architecture is refused (`IRB_PLATFORM_MISMATCH`).
 */
function archivePlatform(
  archive: string,
  explicit: string | undefined,
  elf: ElfHeaderInfo | undefined,
): string | undefined {
  const architecture = elf && ociArchitecture(elf);
  if (!elf || architecture === undefined) return undefined;
  if (explicit !== undefined) {
    const wanted = parsePlatform(explicit).architecture;
    if (!runsOn(elf, wanted)) {
      throw new IrbError(
        'IRB_PLATFORM_MISMATCH',
        `\`platform\` ${explicit} contradicts ${archive}, whose /init is built for ${architecture}; drop \`platform\` (the archive's own is used) or push the ${wanted} archive`,
      );
    }
  }
  return `linux/${architecture}`;
}

/** The descriptor (media type, digest, size) of a registry manifest, verified. */
async function manifestDescriptor(
  client: RegistryClient,
  ref: Reference,
  signal: AbortSignal | undefined,
): Promise<FetchedManifest> {
  return client.manifest(ref, signal ? { signal } : {});
}

/** `SOURCE_DATE_EPOCH` as an RFC 3339 time, or undefined: pushes stay reproducible. */
function createdFrom(epoch: number | undefined): string | undefined {
  const value = sourceDateEpoch(epoch);
  return value === undefined ? undefined : new Date(value * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

const OWN_KEYS = new Set<string>(Object.values(INITRAMFS_ANNOTATIONS));

/**
 * Pushes a built initramfs to `ref` as an OCI artifact: uploads the archive (skipped when the
 * registry has it, mounted when another repository has it), the empty config and the manifest
 * with irb's annotations. Pushed into the source image's repository it gets a `subject`, and
 * when the registry does not index it (no `OCI-Subject` answer), the tag-schema fallback index
 * is updated, so `pullInitramfs({ for: image })` finds it on any registry.
 */
export async function pushInitramfs(
  archive: string,
  ref: string,
  options: PushInitramfsOptions = {},
): Promise<PushInitramfsResult> {
  return pushArchive(archive, ref, options, true);
}

/**
 * {@link pushInitramfs} of an archive a build just wrote for `platform` (the remote build cache):
 * the platform is the build's, so the archive is not decoded to tell it.
 */
export function pushBuiltInitramfs(
  archive: string,
  ref: string,
  options: PushInitramfsOptions & { platform: string },
): Promise<PushInitramfsResult> {
  return pushArchive(archive, ref, options, false);
}

async function pushArchive(
  archive: string,
  ref: string,
  options: PushInitramfsOptions,
  readPlatform: boolean,
): Promise<PushInitramfsResult> {
  const target = registryReference(ref, 'the push target');
  const compression = await archiveCompression(archive);
  for (const key of Object.keys(options.annotations ?? {})) {
    if (OWN_KEYS.has(key)) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `annotation ${key} is set by irb itself; drop it from \`annotations\``,
      );
    }
  }
  const { signal } = options;
  // One pass over the archive for both (@irb/compress reads every compression but xz).
  const facts =
    compression !== 'xz' && (readPlatform || options.recommendedMemoryMiB === undefined)
      ? await archiveFacts(archive, signal ? { signal } : {})
      : undefined;
  const own = readPlatform ? archivePlatform(archive, options.platform, facts?.initElf) : undefined;
  const memory = options.recommendedMemoryMiB ?? facts?.recommendedMemoryMiB;
  return withClient(options, async (client) => {
    const layer = await blobFromFile(archive, signal);
    let subject: Descriptor | undefined;
    let sourceDigest = options.sourceDigest;
    // The archive's own platform picks the source's manifest: never the default (amd64) one.
    let platform = options.platform ?? own;
    if (options.source && platform === undefined) {
      throw new IrbError(
        'IRB_PLATFORM_REQUIRED',
        `cannot tell which platform ${archive} is for (its /init is neither an ELF program irb knows nor a script whose interpreter is one); set \`platform\``,
      );
    }
    if (options.source) {
      const sourceRef = registryReference(options.source, 'the source image');
      const sameRepository =
        sourceRef.registry === target.registry && sourceRef.repository === target.repository;
      const wantSubject =
        options.subject === true || ((options.subject ?? 'auto') === 'auto' && sameRepository);
      if (!sourceDigest || platform === undefined || wantSubject) {
        if (!sourceDigest) {
          const image = await client.image(sourceRef, {
            ...(platform ? { platform } : {}),
            ...(signal ? { signal } : {}),
          });
          sourceDigest = await image.digest();
          if (platform === undefined) {
            const config = await image.config();
            platform = platformName(config);
          }
        }
        if (wantSubject) {
          if (!sameRepository) {
            throw new IrbError(
              'IRB_OPTION_INVALID',
              `a subject must live in the same repository as the artifact; push to ${sourceRef.registry}/${sourceRef.repository} or drop \`subject\``,
            );
          }
          const fetched = await manifestDescriptor(
            client,
            { ...sourceRef, digest: sourceDigest, identifier: sourceDigest },
            signal,
          );
          subject = { mediaType: fetched.mediaType, digest: fetched.digest, size: fetched.bytes.byteLength };
        }
      }
    } else if (options.subject === true) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        '`subject` needs `source`, the image the archive was built from',
      );
    }
    if (!namesTag(ref) && !subject) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `${ref} names no tag and the artifact would not be attached to an image, so nothing would refer to it (registries garbage-collect such manifests); add a tag (${ref}:TAG) or push into the repository of \`source\``,
      );
    }
    const annotations: Record<string, string | undefined> = {
      ...options.annotations,
      [INITRAMFS_ANNOTATIONS.source]: options.source,
      [INITRAMFS_ANNOTATIONS.sourceDigest]: sourceDigest,
      [INITRAMFS_ANNOTATIONS.platform]: platform,
      [INITRAMFS_ANNOTATIONS.compression]: compression,
      [INITRAMFS_ANNOTATIONS.version]: IRB_VERSION,
      [INITRAMFS_ANNOTATIONS.recommendedMemoryMiB]: memory === undefined ? undefined : String(memory),
      [INITRAMFS_ANNOTATIONS.buildKey]: options.buildKey,
      [INITRAMFS_ANNOTATIONS.created]: createdFrom(options.sourceDateEpoch),
    };
    const blob = await client.pushBlob(target, layer, {
      ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
      ...(options.mountFrom ? { mountFrom: options.mountFrom } : {}),
      ...(signal ? { signal } : {}),
    });
    await client.pushBlob(
      target,
      blobFromBytes(EMPTY_CONFIG_BYTES, sha256Digest(EMPTY_CONFIG_BYTES)),
      signal ? { signal } : {},
    );
    const manifest = initramfsManifest({
      layer: { digest: layer.digest, size: layer.size },
      compression,
      annotations,
      title: basename(archive),
      ...(subject ? { subject } : {}),
    });
    const bytes = manifestBytes(manifest);
    const digest = sha256Digest(bytes);
    const tag = namesTag(ref) && !target.digest ? target.tag : undefined;
    const put = await client.pushManifest(
      tag ? target : { ...target, digest, identifier: digest },
      bytes,
      OCI_MANIFEST,
      signal ? { signal } : {},
    );
    let referrers: 'api' | 'tag' | undefined;
    if (subject) {
      if (put.subjectHandled) referrers = 'api';
      else {
        await client.attachReferrer(
          target,
          subject.digest,
          referrerDescriptor(manifest, bytes),
          signal ? { signal } : {},
        );
        referrers = 'tag';
      }
    }
    const result: PushInitramfsResult = {
      reference: `${target.registry}/${target.repository}@${digest}`,
      digest,
      manifest,
      blob,
      compression,
      size: layer.size,
    };
    if (tag) result.tag = tag;
    if (subject) result.subject = subject.digest;
    if (referrers) result.referrers = referrers;
    return result;
  });
}

export function platformName(p: { os: string; architecture: string; variant?: string }): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}
