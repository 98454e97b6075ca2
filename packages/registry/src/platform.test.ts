import { describe, expect, it } from 'vitest';
import { checkConfigPlatform, formatPlatform, parsePlatform, selectManifest } from './platform.ts';
import type { Descriptor, ImageConfigFile, ImageIndex } from './types.ts';

function desc(n: number, os: string, architecture: string, variant?: string): Descriptor {
  return {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
    size: 100 + n,
    platform: variant ? { os, architecture, variant } : { os, architecture },
  };
}

const index: ImageIndex = {
  schemaVersion: 2,
  manifests: [
    desc(1, 'linux', 'amd64'),
    desc(2, 'linux', 'arm64', 'v8'),
    desc(3, 'linux', 'arm', 'v6'),
    desc(4, 'unknown', 'unknown'),
    desc(5, 'linux', 'arm', 'v7'),
  ],
};

describe('platforms', () => {
  it('parses and normalizes like containerd', () => {
    expect(parsePlatform(undefined)).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/aarch64')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/armhf')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(parsePlatform('linux/arm')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(parsePlatform('Linux/ARM/7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(formatPlatform({ os: 'linux', architecture: 'aarch64' })).toBe('linux/arm64');
  });

  it.each(['linux', 'linux/', 'a/b/c/d', 'linux/amd 64'])('refuses %j', (input) => {
    expect(() => parsePlatform(input)).toThrow(/expected os\/arch\[\/variant\]/);
  });

  it('selects from an index', () => {
    expect(selectManifest(index, parsePlatform('linux/amd64')).digest).toBe(index.manifests[0]!.digest);
    expect(selectManifest(index, parsePlatform('linux/arm64')).digest).toBe(index.manifests[1]!.digest);
    expect(selectManifest(index, parsePlatform('linux/aarch64/v8')).digest).toBe(index.manifests[1]!.digest);
    // exact v7 preferred over the compatible v6 listed first
    expect(selectManifest(index, parsePlatform('linux/arm/v7')).digest).toBe(index.manifests[4]!.digest);
    expect(selectManifest(index, parsePlatform('linux/arm/v6')).digest).toBe(index.manifests[2]!.digest);
  });

  it('lists the platforms an image has when none matches', () => {
    expect(() => selectManifest(index, parsePlatform('linux/s390x'), 'docker.io/library/x:1')).toThrow(
      'docker.io/library/x:1 has no linux/s390x image; it has linux/amd64, linux/arm64, linux/arm/v6, linux/arm/v7. Ask for one of those with the `platform` option',
    );
    expect(() => selectManifest(index, parsePlatform('linux/arm/v5'))).toThrow(/IRB|no linux\/arm\/v5/);
  });

  it('refuses a single-platform image for another platform', () => {
    const config: ImageConfigFile = {
      os: 'linux',
      architecture: 'arm64',
      rootfs: { type: 'layers', diff_ids: [] },
    };
    expect(() => checkConfigPlatform(config, parsePlatform('linux/arm64/v8'))).not.toThrow();
    expect(() => checkConfigPlatform(config, parsePlatform('linux/amd64'), 'img')).toThrow(
      /img is a single-platform linux\/arm64 image, not linux\/amd64\. Ask for linux\/arm64 with the `platform` option/,
    );
  });
});
