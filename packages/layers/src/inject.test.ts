import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTar } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byPath, emit, layerOf } from '../test/helpers.ts';
import { indexLayers } from './index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-inject-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const base = async () =>
  indexLayers([
    layerOf(
      await buildTar([
        { type: 'directory', path: 'opt' },
        { type: 'file', path: 'etc/x' },
      ]),
    ),
  ]);

describe('injection', () => {
  it('keeps host names that are not UTF-8, 0x80–0x9F included, and symlink targets as bytes', async () => {
    const src = join(dir, 'tree');
    const cp866 = Buffer.from('8f90888285922d', 'hex'); // "ПРИВЕТ-" in CP866
    const koi8 = Buffer.from('d0d2c9d7c5d4', 'hex'); // "привет" in KOI8-R
    await mkdir(Buffer.concat([Buffer.from(`${src}/`), cp866]), { recursive: true });
    await writeFile(
      Buffer.concat([Buffer.from(`${src}/`), cp866, Buffer.from('/'), koi8]),
      'koi8 in cp866\n',
    );
    await symlink(koi8, Buffer.concat([Buffer.from(`${src}/link-`), cp866]));
    const rootfs = await base();
    await rootfs.injectHostPath(src, '/opt');
    const out = byPath(await emit(rootfs));
    const file = out.get(
      `bytes:${Buffer.concat([Buffer.from('opt/'), cp866, Buffer.from('/'), koi8]).toString('hex')}`,
    );
    expect(file?.body?.toString()).toBe('koi8 in cp866\n');
    const link = out.get(`bytes:${Buffer.concat([Buffer.from('opt/link-'), cp866]).toString('hex')}`);
    expect(link?.entry).toMatchObject({ type: 'symlink', target: new Uint8Array(koi8) });
  });

  it('refuses a destination longer than the kernel accepts when injecting, not later', async () => {
    const rootfs = await base();
    const long = `/${Array.from({ length: 21 }, () => 'd'.repeat(200)).join('/')}`;
    expect(() => rootfs.inject(long, { bytes: new Uint8Array(1) })).toThrow(
      expect.objectContaining({ code: 'IRB_LAYER_NAME_TOO_LONG' }),
    );
    expect(rootfs.lookup(long)).toBeUndefined();
  });
});
