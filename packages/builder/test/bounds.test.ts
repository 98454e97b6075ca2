import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTar, type TarSpec, writeOciLayout } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InitramfsBuilder } from '../src/index.ts';

/*
 * The bounds of @irb/layers reach a build: options pass through, the build fails in one line
 * before anything is packed, and no output appears.
 */

const GiB = 2 ** 30;
const enc = new TextEncoder();

describe('a build is bounded in unpacked size and entries', () => {
  let dir: string;
  let bomb: string;
  let many: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-bounds-'));
    const sparse: TarSpec[] = Array.from({ length: 100 }, (_, i) => ({
      type: 'sparse',
      path: `bomb/${i}`,
      size: 4 * GiB - 1,
      chunks: [{ offset: 4 * GiB - 2, data: enc.encode('x') }],
    }));
    bomb = join(dir, 'bomb');
    await writeOciLayout(bomb, [{ tag: 'v1', images: [{ layers: [await buildTar(sparse)] }] }]);
    many = join(dir, 'many');
    const files: TarSpec[] = Array.from({ length: 500 }, (_, i) => ({ type: 'file', path: `d/${i}` }));
    await writeOciLayout(many, [
      { tag: 'v1', images: [{ layers: [await buildTar(files)], runtime: { Cmd: ['/d/0'] } }] },
    ]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses 400 GiB of sparse files from a small layer, naming the layer and the option', async () => {
    const out = join(dir, 'bomb.cpio.zst');
    const packed: string[] = [];
    const build = new InitramfsBuilder({
      image: `oci:${bomb}:v1`,
      cacheDir: join(dir, 'cache'),
      onProgress: (event) => {
        if (event.type === 'pack') packed.push(event.type);
      },
    }).build(out);
    await expect(build).rejects.toMatchObject({
      code: 'IRB_LAYER_UNPACKED_TOO_LARGE',
      message: expect.stringMatching(/^layer 1\/1 \(sha256:[0-9a-f]{12}\): .*68 GiB.*--max-unpacked/),
    });
    expect(packed).toEqual([]);
    await expect(access(out)).rejects.toThrow();
  });

  it('takes its limits as options', async () => {
    const image = `oci:${many}:v1`;
    await expect(
      new InitramfsBuilder({ image, cache: false, maxEntries: 100 }).build(join(dir, 'many.cpio')),
    ).rejects.toMatchObject({ code: 'IRB_LAYER_TOO_MANY_ENTRIES' });
    const summary = await new InitramfsBuilder({ image, cache: false, maxEntries: 501 }).build(
      join(dir, 'many.cpio'),
    );
    expect(summary.entries).toBeGreaterThan(500);
    await expect(
      new InitramfsBuilder({ image, cache: false, maxEntries: 0 }).build(join(dir, 'x.cpio')),
    ).rejects.toMatchObject({ code: 'IRB_OPTION_INVALID' });
    await expect(
      new InitramfsBuilder({ image, cache: false, maxUnpackedBytes: -1 }).build(join(dir, 'x.cpio')),
    ).rejects.toMatchObject({ code: 'IRB_OPTION_INVALID' });
  });
});
