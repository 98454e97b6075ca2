import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRegistryClient, type RegistryClient } from '@irb/registry';
import { buildImage, buildTar, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { indexLayers } from '../src/index.ts';

/*
 * The index pass hashes each layer's uncompressed tar as it reads it and compares it with the
 * config's diff_id: images from a real registry, layers stored gzip, zstd and plain.
 */

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let registry: StartedRegistry;
let client: RegistryClient;
let cacheDir: string;
let tars: Uint8Array[];
beforeAll(async () => {
  registry = await startRegistry();
  cacheDir = await mkdtemp(join(tmpdir(), 'irb-layers-diff-id-'));
  client = createRegistryClient({ cacheDir });
  tars = await Promise.all([
    buildTar([{ type: 'file', path: 'etc/os-release', content: 'ID=test\n' }]),
    buildTar([{ type: 'file', path: 'usr/bin/app', content: 'x'.repeat(100_000) }]),
    buildTar([{ type: 'file', path: 'etc/os-release', content: 'ID=upper\n' }]),
  ]);
}, 60_000);
afterAll(async () => {
  await client?.close();
  await registry?.stop();
  await rm(cacheDir, { recursive: true, force: true });
});

async function push(tag: string, diffIds?: string[]) {
  const image = buildImage({
    layers: [tars[0]!, { tar: tars[1]!, compression: 'zstd' }, { tar: tars[2]!, compression: 'none' }],
    ...(diffIds ? { diffIds } : {}),
  });
  await pushImage(registry, 'test/diff-id', tag, image);
  return client.image(`${registry.host}/test/diff-id:${tag}`);
}

describe('diff_ids', () => {
  test('layers whose tars match their diff_ids index (gzip, zstd, plain)', async () => {
    const image = await push('good');
    const rootfs = await indexLayers(await image.layers());
    expect(rootfs.lookup('/etc/os-release')?.size).toBe('ID=upper\n'.length);
  });

  test('a diff_id that is not the layer tar fails in one line naming the layer and both digests', async () => {
    // The second layer's diff_id is the first one's: a plausible digest, of another tar.
    const wrong = sha256(tars[0]!);
    const image = await push('swapped', [sha256(tars[0]!), wrong, sha256(tars[2]!)]);
    const layers = await image.layers();
    const failure = await indexLayers(layers).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'IRB_LAYER_DIFF_ID_MISMATCH' });
    const message = (failure as Error).message;
    expect(message).not.toContain('\n');
    expect(message).toBe(
      `layer 2/3 (${layers[1]!.digest.slice(0, 19)}): the uncompressed layer is ${sha256(tars[1]!)}, but the image config's diff_id is ${wrong}; the image is corrupt or was tampered with — rebuild or re-push it`,
    );
  });

  test('a diff_id that is not a sha256 or sha512 digest cannot be checked and is refused', async () => {
    const layer = (await (await push('good')).layers())[0]!;
    const failure = await indexLayers([{ ...layer, open: layer.open.bind(layer), diffId: 'md5:abc' }]).catch(
      (e: unknown) => e,
    );
    expect(failure).toMatchObject({
      code: 'IRB_LAYER_DIFF_ID_MISMATCH',
      message: expect.stringMatching(/diff_id "md5:abc" is not a sha256 or sha512 digest/),
    });
  });
});
