import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  addReferrer,
  EMPTY_CONFIG,
  EMPTY_CONFIG_BYTES,
  INITRAMFS_ANNOTATIONS,
  INITRAMFS_ARTIFACT_TYPE,
  initramfsLayerCompression,
  initramfsLayerMediaType,
  initramfsManifest,
  isInitramfsManifest,
  manifestBytes,
  referrerDescriptor,
  referrersTag,
} from './artifact.ts';

const layer = { digest: `sha256:${'a'.repeat(64)}`, size: 1234 };

describe('initramfs artifacts', () => {
  it('names the compression in the layer media type, both ways', () => {
    for (const c of ['none', 'gzip', 'zstd', 'lz4', 'xz'] as const) {
      expect(initramfsLayerCompression(initramfsLayerMediaType(c))).toBe(c);
    }
    expect(initramfsLayerMediaType('zstd')).toBe('application/vnd.irb.initramfs.layer.v1.cpio+zstd');
    expect(initramfsLayerCompression('application/vnd.oci.image.layer.v1.tar+gzip')).toBeUndefined();
    expect(initramfsLayerCompression('application/vnd.irb.initramfs.layer.v1.cpio+bz2')).toBeUndefined();
  });

  it('uses the real empty descriptor', () => {
    const digest = `sha256:${createHash('sha256').update(EMPTY_CONFIG_BYTES).digest('hex')}`;
    expect(EMPTY_CONFIG.digest).toBe(digest);
    expect(Buffer.from(EMPTY_CONFIG.data, 'base64').toString()).toBe('{}');
  });

  it('builds a manifest that is an artifact, not a runnable image, with sorted annotations', () => {
    const subject = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${'b'.repeat(64)}`,
      size: 9,
    };
    const m = initramfsManifest({
      layer,
      compression: 'gzip',
      title: 'python.cpio.gz',
      subject: { ...subject, annotations: { dropped: 'yes' } },
      annotations: {
        [INITRAMFS_ANNOTATIONS.version]: '0.1.0',
        [INITRAMFS_ANNOTATIONS.compression]: 'gzip',
        [INITRAMFS_ANNOTATIONS.created]: undefined,
        [INITRAMFS_ANNOTATIONS.platform]: 'linux/amd64',
      },
    });
    expect(m.artifactType).toBe(INITRAMFS_ARTIFACT_TYPE);
    expect(m.config.mediaType).toBe('application/vnd.oci.empty.v1+json');
    expect(m.subject).toEqual(subject);
    expect(Object.keys(m.annotations ?? {})).toEqual([
      'dev.irb.compression',
      'dev.irb.platform',
      'dev.irb.version',
    ]);
    expect(m.layers[0]?.annotations).toEqual({ 'org.opencontainers.image.title': 'python.cpio.gz' });
    expect(isInitramfsManifest(m)).toBe(true);
    expect(isInitramfsManifest({ ...m, artifactType: 'application/x' })).toBe(false);
    // The same input gives the same bytes.
    const again = initramfsManifest({
      layer,
      compression: 'gzip',
      title: 'python.cpio.gz',
      subject,
      annotations: {
        [INITRAMFS_ANNOTATIONS.platform]: 'linux/amd64',
        [INITRAMFS_ANNOTATIONS.version]: '0.1.0',
        [INITRAMFS_ANNOTATIONS.compression]: 'gzip',
      },
    });
    expect(manifestBytes(again)).toEqual(manifestBytes(m));
  });

  it('keeps a referrers index for the tag-schema fallback', () => {
    expect(referrersTag(`sha256:${'c'.repeat(64)}`)).toBe(`sha256-${'c'.repeat(64)}`);
    expect(() => referrersTag('nodigest')).toThrow(RangeError);
    const m = initramfsManifest({ layer, compression: 'zstd' });
    const bytes = manifestBytes(m);
    const d = referrerDescriptor(m, bytes);
    expect(d).toMatchObject({ artifactType: INITRAMFS_ARTIFACT_TYPE, size: bytes.length });
    const other = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${'d'.repeat(64)}`,
      size: 5,
      artifactType: 'application/vnd.dev.cosign',
    };
    const index = addReferrer(addReferrer(undefined, other), d);
    expect(index.manifests.map((x) => x.digest)).toEqual([other.digest, d.digest]);
    expect(addReferrer(index, d).manifests).toHaveLength(2);
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  });
});
