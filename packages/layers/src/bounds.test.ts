import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildTar, type TarSpec } from '@irb/test-utils';
import { describe, expect, test } from 'vitest';
import { byPath, emit, layerOf, MEDIA } from '../test/helpers.ts';
import { LayerApplier } from './apply.ts';
import { indexLayers } from './index.ts';
import type { LayerRecord } from './records.ts';
import { MAX_SYMLINKS, Tree } from './tree.ts';

const enc = new TextEncoder();
const GiB = 2 ** 30;

function f(path: string, body: string): TarSpec {
  return { type: 'file', path, content: body };
}

/** A layer of `count` GNU sparse files of `size` bytes each, holding 1 byte of data apiece. */
async function sparseBomb(count: number, size: number): Promise<Uint8Array> {
  const specs: TarSpec[] = [];
  for (let i = 0; i < count; i++) {
    specs.push({
      type: 'sparse',
      path: `bomb/${i}`,
      size,
      chunks: [{ offset: size - 1, data: enc.encode('x') }],
    });
  }
  return buildTar(specs, { compression: 'gzip' });
}

describe('the unpacked size is bounded as the layers are applied', () => {
  test('a sparse bomb (100 files of 4 GiB − 1 from a KB-sized layer) is refused in the index pass', async () => {
    const blob = await sparseBomb(100, 4 * GiB - 1);
    expect(blob.byteLength).toBeLessThan(16 * 1024);
    const layer = layerOf(blob, MEDIA.gzip);
    const error = await indexLayers([layer]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_LAYER_UNPACKED_TOO_LARGE' });
    const message = (error as Error).message;
    expect(message).toMatch(
      /^layer 1\/1 \(sha256:[0-9a-f]{12}\): with \/bomb\/16 the files add up to 68 GiB/,
    );
    expect(message).toContain('--max-unpacked');
    expect(message).not.toContain('\n');
    // Refused while indexing: no body was ever read, and the blob was opened once.
    expect(layer.opens).toBe(1);
  });

  test('the limit is an option, and Infinity turns it off', async () => {
    const blob = await sparseBomb(3, 1024 * 1024);
    await expect(
      indexLayers([layerOf(blob, MEDIA.gzip)], { maxUnpackedBytes: 2 * 1024 * 1024 }),
    ).rejects.toMatchObject({
      code: 'IRB_LAYER_UNPACKED_TOO_LARGE',
    });
    const rootfs = await indexLayers([layerOf(blob, MEDIA.gzip)], { maxUnpackedBytes: 3 * 1024 * 1024 });
    expect(rootfs.stats.uncompressedBytes).toBe(3 * 1024 * 1024);
    await indexLayers([layerOf(await sparseBomb(20, 4 * GiB - 1), MEDIA.gzip)], {
      maxUnpackedBytes: Infinity,
    });
  });

  test('what counts is what the image unpacks to: replaced files and hard links count once', async () => {
    const kib = 'x'.repeat(1024);
    const lower = await buildTar([f('a', kib), f('b', kib)]);
    const upper = await buildTar([
      f('a', kib), // replaces the lower a
      { type: 'link', path: 'c', target: 'b' },
      { type: 'file', path: '.wh.b' },
    ]);
    const rootfs = await indexLayers([layerOf(lower), layerOf(upper)], { maxUnpackedBytes: 2048 });
    expect(rootfs.stats.uncompressedBytes).toBe(2048);
    await expect(
      indexLayers([layerOf(lower), layerOf(upper), layerOf(await buildTar([f('d', 'y')]))], {
        maxUnpackedBytes: 2048,
      }),
    ).rejects.toMatchObject({
      code: 'IRB_LAYER_UNPACKED_TOO_LARGE',
      message: expect.stringMatching(/^layer 3\/3/),
    });
  });
});

/** Applies hand-made records to a tree, as the index pass would. */
function applyAll(
  tree: Tree,
  records: Array<Partial<LayerRecord> & Pick<LayerRecord, 'name' | 'type'>>,
): void {
  const applier = new LayerApplier(tree, 0, 'layer 1/1');
  records.forEach((record, ordinal) => {
    applier.apply({
      ordinal,
      linkname: '',
      mode: 0o755,
      uid: 0,
      gid: 0,
      mtime: 0,
      size: 0,
      devmajor: 0,
      devminor: 0,
      xattrs: [],
      ...record,
    });
  });
}

/** `l0 -> dir`, `l1 -> ././…/l0`, …: a chain of `links` symlinks whose targets are `dots` `./` long. */
function chain(links: number, dots: number): Array<Pick<LayerRecord, 'name' | 'type' | 'linkname'>> {
  const records: Array<Pick<LayerRecord, 'name' | 'type' | 'linkname'>> = [
    { name: 'dir', type: 'directory', linkname: '' },
    { name: 'l0', type: 'symlink', linkname: 'dir' },
  ];
  for (let i = 1; i < links; i++)
    records.push({ name: `l${i}`, type: 'symlink', linkname: `${'./'.repeat(dots)}l${i - 1}` });
  return records;
}

describe('symlink resolution is linear and stops at the kernel limit', () => {
  test('10 000 names below a chain of 40 links with 2 KB targets: each link is walked once', () => {
    const tree = new Tree(undefined);
    const links = chain(MAX_SYMLINKS, 1000);
    const files = Array.from({ length: 10_000 }, (_, i) => ({
      name: `l${MAX_SYMLINKS - 1}/f${i}`,
      type: 'file' as const,
    }));
    applyAll(tree, [...links, ...files]);
    expect(tree.nodeAt('dir', false)?.type).toBe('directory');
    expect(tree.analyze().stats.files).toBe(10_000);
    expect(tree.nodeAt(`dir/f9999`, false)?.type).toBe('file');
    // Without the memo each name walked 40 links of 1000 components: 400 million steps.
    // With it: the chain's components once, then a step or two per name.
    const chainParts = links.length;
    expect(tree.steps).toBeLessThan(chainParts + 4 * files.length);
  });

  test('a removed link is not remembered: the next name resolves through what is there now', async () => {
    const rootfs = await indexLayers([
      layerOf(
        await buildTar([
          { type: 'directory', path: 'one' },
          { type: 'directory', path: 'two' },
          { type: 'symlink', path: 'cur', target: 'one' },
          f('cur/a', 'a'),
        ]),
      ),
      layerOf(await buildTar([{ type: 'symlink', path: 'cur', target: 'two' }, f('cur/b', 'b')])),
    ]);
    const paths = (await emit(rootfs)).map((e) => e.path);
    expect(paths).toContain('one/a');
    expect(paths).toContain('two/b');
    expect(paths).not.toContain('one/b');
  });

  test(`${MAX_SYMLINKS} links in a path resolve, ${MAX_SYMLINKS + 1} are refused like the kernel's ELOOP`, async () => {
    const specs = (links: number): TarSpec[] => [
      ...chain(links, 3).map(
        (r): TarSpec =>
          r.type === 'directory'
            ? { type: 'directory', path: r.name }
            : { type: 'symlink', path: r.name, target: r.linkname },
      ),
      f(`l${links - 1}/file`, 'x'),
    ];
    const ok = await indexLayers([layerOf(await buildTar(specs(MAX_SYMLINKS)))]);
    expect(
      byPath(await emit(ok))
        .get('dir/file')
        ?.body?.toString(),
    ).toBe('x');
    expect(ok.lookup(`/l${MAX_SYMLINKS - 1}`, { follow: true })?.path).toBe('dir');

    const error = await indexLayers([layerOf(await buildTar(specs(MAX_SYMLINKS + 1)))]).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'IRB_LAYER_SYMLINK_LOOP' });
    expect((error as Error).message).toContain(`more than ${MAX_SYMLINKS} symlinks`);

    // A lookup through too many links finds nothing, as the guest's open() would (ELOOP).
    const tree = new Tree(undefined);
    applyAll(tree, chain(MAX_SYMLINKS + 1, 1));
    expect(tree.nodeAt(`l${MAX_SYMLINKS}`, true)).toBeUndefined();
    expect(tree.nodeAt(`l${MAX_SYMLINKS - 1}`, true)?.type).toBe('directory');
  });
});

describe('the number of entries is bounded', () => {
  test('maxEntries refuses an image with more tar members, naming the layer and the fix', async () => {
    const specs = Array.from({ length: 3000 }, (_, i) => f(`d/${i}`, ''));
    const layers = [
      layerOf(await buildTar(specs.slice(0, 1500))),
      layerOf(await buildTar(specs.slice(1500))),
    ];
    const error = await indexLayers(layers, { maxEntries: 2000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_LAYER_TOO_MANY_ENTRIES' });
    expect((error as Error).message).toMatch(/^layer 2\/2 .*more than 2000 tar members.*--max-entries/);
    expect((await indexLayers(layers, { maxEntries: 3000 })).stats.files).toBe(3000);
  });

  test('an index larger than the heap fails in one line, not a V8 crash', () => {
    // 400 000 members in a process with a 48 MiB heap: the heap check must stop it (at about 250 000).
    const script = `
      import { indexLayers } from './src/index.ts';
      import { manyEntriesTar } from '@irb/test-utils';
      const layer = { digest: 'sha256:${'0'.repeat(64)}', mediaType: 'application/vnd.oci.image.layer.v1.tar', size: 0,
        open: async function* () { yield* manyEntriesTar(400_000); } };
      try { await indexLayers([layer], { maxEntries: Infinity }); console.log('built'); }
      catch (error) { console.log(error.code, error.message); process.exitCode = 1; }`;
    const child = spawnSync(
      process.execPath,
      ['--max-old-space-size=48', '--conditions=@irb/source', '--input-type=module', '-e', script],
      { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8', timeout: 400_000 },
    );
    expect(child.stderr).not.toContain('heap out of memory');
    expect(child.status).toBe(1);
    expect(child.stdout).toMatch(/^IRB_LAYER_TOO_MANY_ENTRIES layer 1\/1 .* heap; .*--max-old-space-size/);
  }, 420_000);
});
