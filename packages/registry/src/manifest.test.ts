import { describe, expect, it } from 'vitest';
import { parseManifest } from './manifest.ts';

const enc = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const digest = `sha256:${'a'.repeat(64)}`;
const descriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: 2 };

function failure(run: () => unknown): { code?: string; message: string } {
  try {
    run();
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('expected a throw');
}

// Found by the fuzz harness (test/documents.fuzz.test.ts): fields of the wrong type were
// TypeErrors deep in platform matching or in the shape guess, not one-line irb errors.
describe('parseManifest refuses fields of the wrong type', () => {
  it('an index entry whose platform is not an object of strings', () => {
    for (const platform of [
      [],
      5,
      'linux/amd64',
      { os: 'linux', architecture: 7 },
      { os: 'linux', architecture: 'arm', variant: 7 },
    ]) {
      const index = {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1, platform }],
      };
      expect(failure(() => parseManifest('img', enc(index), digest, undefined))).toMatchObject({
        code: 'IRB_MANIFEST_INVALID',
        message:
          'img index entry 1 has a malformed platform (needs os and architecture as strings, and a string variant if any)',
      });
    }
  });

  it('a manifest without a media type whose config media type is not a string', () => {
    const manifest = { schemaVersion: 2, config: { ...descriptor, mediaType: [] }, layers: [] };
    expect(failure(() => parseManifest('img', enc(manifest), digest, 'application/json'))).toMatchObject({
      code: 'IRB_MANIFEST_INVALID',
      message: 'img config has a malformed descriptor (needs mediaType, digest, size)',
    });
  });
});
