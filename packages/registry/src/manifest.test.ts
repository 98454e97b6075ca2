import { describe, expect, it } from 'vitest';
import { parseManifest, validateConfig } from './manifest.ts';

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

describe('validateConfig', () => {
  const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digest] } };

  it('takes a config with every field irb reads, and one with none of the optional ones', () => {
    const full = {
      ...config,
      variant: 'v1',
      config: { User: 'app', WorkingDir: '/', Env: ['A=1'], Entrypoint: null, Cmd: ['sh'] },
    };
    expect(validateConfig(full, 'img')).toBe(full);
    expect(validateConfig({ rootfs: { diff_ids: [] }, config: null }, 'img')).toBeDefined();
    // Go writes nil lists as null.
    const nulls = { ...config, config: { User: null, Env: null, Entrypoint: null, Cmd: null } };
    expect(validateConfig(nulls, 'img')).toBe(nulls);
  });

  it.each([
    ['not an object', null, 'img config has no rootfs.diff_ids; the image is malformed'],
    ['an array', [config], 'img config has no rootfs.diff_ids; the image is malformed'],
    [
      'architecture',
      { ...config, architecture: [] },
      'img config architecture is not a string; the image is malformed',
    ],
    ['os', { ...config, os: 1 }, 'img config os is not a string; the image is malformed'],
    ['variant', { ...config, variant: {} }, 'img config variant is not a string; the image is malformed'],
    ['config', { ...config, config: 'x' }, 'img config config is not an object; the image is malformed'],
    [
      'a string Cmd (not split into letters)',
      { ...config, config: { Cmd: 'sh -c true' } },
      'img config config.Cmd is not a list of strings; the image is malformed',
    ],
    [
      'Env',
      { ...config, config: { Env: ['A=1', 2] } },
      'img config config.Env is not a list of strings; the image is malformed',
    ],
    [
      'User',
      { ...config, config: { User: 0 } },
      'img config config.User is not a string; the image is malformed',
    ],
  ])('refuses %s of the wrong type', (_, doc, message) => {
    expect(failure(() => validateConfig(doc, 'img'))).toMatchObject({
      code: 'IRB_MANIFEST_INVALID',
      message,
    });
  });
});
