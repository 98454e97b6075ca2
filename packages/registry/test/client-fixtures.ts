// What the client test files share: one registry with the test images per file, temp dirs and
// clients closed after the file, and the helpers their tests use.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildImage,
  buildIndex,
  buildTar,
  pushImage,
  type StartedRegistry,
  startRegistry,
  type TestImage,
} from '@irb/test-utils';
import { afterAll, beforeAll, expect } from 'vitest';
import { createRegistryClient, type RegistryClientOptions } from '../src/index.ts';

/** The password of the test users (random per run, so a leak in a message is recognisable). */
export const PASSWORD = `pw-${randomBytes(6).toString('hex')}-S3cret`;
/** An identity (refresh) token the token server accepts for bob. */
export const REFRESH = `refresh-${randomBytes(8).toString('hex')}`;
/** Retries that keep fault tests short. */
export const fastRetry = { retries: 3, baseDelayMs: 5, maxDelayMs: 1500 };

/** Run after the file's tests, last first. */
export const cleanups: Array<() => Promise<void>> = [];

/** A temp directory removed after the file's tests. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'irb-cache-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A registry client with {@link fastRetry}, closed after the file's tests. */
export function client(options: RegistryClientOptions) {
  const c = createRegistryClient({ retry: fastRetry, ...options });
  cleanups.push(() => c.close());
  return c;
}

/** A stream's bytes, joined. */
export async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** The files under `dir`, relative and sorted. */
export async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else out.push(p.slice(dir.length + 1));
    }
  };
  await walk(dir);
  return out.sort();
}

/** The code and message a promise rejects with (fails when it resolves). */
export async function codeOf(
  promise: Promise<unknown>,
): Promise<{ code: string; message: string; error: unknown }> {
  try {
    await promise;
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message, error };
  }
  throw new Error('expected a rejection');
}

/** Pulls every layer of an image and checks it against what was pushed. */
export async function pullAndCompare(
  c: ReturnType<typeof createRegistryClient>,
  ref: string,
  expected: TestImage,
  platform?: string,
) {
  const image = await c.image(ref, platform ? { platform } : {});
  expect(await image.digest()).toBe(expected.manifest.digest);
  const layers = await image.layers();
  expect(layers.map((l) => l.digest)).toEqual(expected.layers.map((l) => l.digest));
  expect(layers.map((l) => l.diffId)).toEqual(expected.diffIds);
  expect(layers.map((l) => l.mediaType)).toEqual(expected.layers.map((l) => l.mediaType));
  for (const [i, layer] of layers.entries()) {
    const bytes = await readAll(layer.open());
    expect(bytes.equals(Buffer.from(expected.layers[i]!.bytes))).toBe(true);
  }
  return image;
}

/** The registry, and the images pushed to it, set by {@link useClientFixtures}. */
export let reg: StartedRegistry;
export let small: Uint8Array;
export let big: Uint8Array;
export let ociImage: TestImage;
export let dockerImage: TestImage;
export let plainImage: TestImage;
export let armOnly: TestImage;
export let platformImages: TestImage[];

/**
 * Starts a registry with the test images pushed (OCI/gzip, Docker/zstd, uncompressed, an
 * arm64-only image, two multi-platform indexes) before a test file's tests, and runs the
 * cleanups after them. Call it once at the top of each test file that uses the names above.
 */
export function useClientFixtures(): void {
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });
  beforeAll(async () => {
    reg = await startRegistry();
    cleanups.push(() => reg.stop());
    small = await buildTar([
      { type: 'directory', path: 'etc/' },
      { type: 'file', path: 'etc/hello', content: 'hello from irb' },
      { type: 'symlink', path: 'etc/link', target: 'hello' },
    ]);
    // Incompressible, so the blob spans many chunks and a cut lands mid-body.
    big = await buildTar([{ type: 'file', path: 'data.bin', content: new Uint8Array(randomBytes(600_000)) }]);
    ociImage = buildImage({ layers: [small, big], compression: 'gzip' });
    dockerImage = buildImage({ layers: [small, big], format: 'docker', compression: 'zstd' });
    plainImage = buildImage({ layers: [small, { tar: big, compression: 'zstd' }], compression: 'none' });
    armOnly = buildImage({ layers: [small], platform: { os: 'linux', architecture: 'arm64' } });
    platformImages = [
      buildImage({ layers: [small], platform: { os: 'linux', architecture: 'amd64' } }),
      buildImage({ layers: [small, big], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }),
      buildImage({ layers: [big], platform: { os: 'linux', architecture: 'arm', variant: 'v7' } }),
    ];
    await pushImage(reg, 'test/oci', 'v1', ociImage);
    await pushImage(reg, 'test/docker', 'v1', dockerImage);
    await pushImage(reg, 'test/plain', 'v1', plainImage);
    await pushImage(reg, 'test/arm-only', 'latest', armOnly);
    const attestation = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: armOnly.manifest.digest,
      size: armOnly.manifest.size,
      platform: { os: 'unknown', architecture: 'unknown' },
      annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
    };
    await pushImage(reg, 'test/multi', armOnly.manifest.digest, armOnly);
    await pushImage(reg, 'test/multi', 'v1', buildIndex(platformImages, { extra: [attestation] }));
    await pushImage(
      reg,
      'test/multi-docker',
      'v1',
      buildIndex(platformImages.slice(0, 2), { format: 'docker' }),
    );
  });
}
