import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildTar, ensureDebianPythonImage, prng, type TarSpec, writeOciLayout } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { indexLayers, type LayerSource } from '../src/index.ts';
import { layerOf, MEDIA } from './helpers.ts';
import { compareTrees, fromDisk, fromEntries } from './umoci-compare.ts';

/*
 * Differential test: seeded random multi-layer images (whiteouts, opaque dirs, replaced
 * types, hard links across layers, symlinks, devices, big owners, setuid, names that are not
 * UTF-8) are unpacked by `umoci unpack` as root, and the resulting rootfs is compared entry by
 * entry with what `entries()` yields.
 */

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

type ModelKind = 'file' | 'directory' | 'symlink' | 'other';

/** Generates layers while tracking what the tree holds, so whiteouts and links hit real paths. */
function generateImage(seed: number): TarSpec[][] {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const tree = new Map<string, ModelKind>();
  const names = [
    'a',
    'b',
    'bin',
    'etc',
    'lib',
    'x y',
    'usr',
    'cfg.d',
    Buffer.from('caf\xe9', 'latin1').toString('latin1'),
  ];
  const owners = [0, 0, 0, 1, 33, 1000, 65534, 3_000_000];
  const dirModes = [0o755, 0o755, 0o700, 0o750, 0o1777, 0o2755, 0o555];
  const fileModes = [0o644, 0o644, 0o755, 0o600, 0o4755, 0o2755, 0o444, 0o6711];
  const layers: TarSpec[][] = [];
  const pathBytes = (p: string) => new Uint8Array(Buffer.from(p, 'latin1'));
  const dirs = () => ['', ...[...tree].filter(([, kind]) => kind === 'directory').map(([p]) => p)];
  const below = (p: string) => [...tree.keys()].filter((k) => k === p || k.startsWith(`${p}/`));
  const layerCount = 3 + Math.floor(random() * 3);
  for (let layer = 0; layer < layerCount; layer++) {
    const specs: TarSpec[] = [];
    const touched = new Set<string>();
    const meta = () => ({
      uid: pick(owners),
      gid: pick(owners),
      mtime: 1_000_000_000 + Math.floor(random() * 1_000_000_000),
    });
    const ops = 25 + Math.floor(random() * 30);
    for (let op = 0; op < ops; op++) {
      const roll = random();
      const parent = pick(dirs());
      const path = `${parent === '' ? '' : `${parent}/`}${pick(names)}${Math.floor(random() * 4)}`;
      const existing = tree.get(path);
      // Names this layer already wrote are left alone: a layer's tar lists each path once.
      if (touched.has(path) || touched.has(parent)) continue;
      if (layer > 0 && roll < 0.12 && existing) {
        const slash = path.lastIndexOf('/');
        specs.push({
          type: 'file',
          path: pathBytes(`${path.slice(0, slash + 1)}.wh.${path.slice(slash + 1)}`),
        });
        for (const gone of below(path)) tree.delete(gone);
        touched.add(path);
        continue;
      }
      if (layer > 0 && roll < 0.17 && existing === 'directory') {
        specs.push({ type: 'file', path: pathBytes(`${path}/.wh..wh..opq`) });
        for (const gone of below(path)) if (gone !== path) tree.delete(gone);
        touched.add(path);
        continue;
      }
      if (existing === 'directory' && roll < 0.5) continue;
      if (existing) for (const gone of below(path)) tree.delete(gone);
      touched.add(path);
      if (roll < 0.35) {
        specs.push({ type: 'directory', path: pathBytes(path), mode: pick(dirModes), ...meta() });
        tree.set(path, 'directory');
      } else if (roll < 0.7) {
        const size = random() < 0.2 ? 0 : Math.floor(random() * 3000);
        const content = new Uint8Array(size).map(() => Math.floor(random() * 256));
        specs.push({ type: 'file', path: pathBytes(path), content, mode: pick(fileModes), ...meta() });
        tree.set(path, 'file');
      } else if (roll < 0.8) {
        const files = [...tree].filter(([p, kind]) => kind === 'file' && p !== path).map(([p]) => p);
        if (files.length === 0) continue;
        specs.push({ type: 'link', path: pathBytes(path), target: pathBytes(pick(files)) });
        tree.set(path, 'file');
      } else if (roll < 0.9) {
        const target = pick([`/${pick(names)}`, `../${pick(names)}0`, pick([...tree.keys(), 'dangling'])]);
        specs.push({ type: 'symlink', path: pathBytes(path), target: pathBytes(target), ...meta() });
        tree.set(path, 'symlink');
      } else {
        const kind = pick(['char', 'block', 'fifo'] as const);
        specs.push(
          kind === 'fifo'
            ? { type: 'fifo', path: pathBytes(path), mode: 0o640, ...meta() }
            : {
                type: kind,
                path: pathBytes(path),
                major: 1 + Math.floor(random() * 250),
                minor: Math.floor(random() * 300),
                mode: 0o660,
                ...meta(),
              },
        );
        tree.set(path, 'other');
      }
    }
    layers.push(specs);
  }
  return layers;
}

describe.skipIf(!isRoot)('differential against umoci unpack (as root)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-layers-umoci-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test.each(Array.from({ length: Number(process.env.IRB_UMOCI_SEEDS ?? 6) }, (_, i) => i + 1))(
    'seed %i: every path, type, mode, owner, mtime, target, content and link group match',
    async (seed) => {
      const layers = await Promise.all(generateImage(seed).map((specs) => buildTar(specs)));
      const layout = join(dir, `layout-${seed}`);
      const bundle = join(dir, `bundle-${seed}`);
      await writeOciLayout(layout, [{ tag: 'test', images: [{ layers, compression: 'gzip' }] }]);
      const started = Math.floor(Date.now() / 1000) - 2;
      await run('umoci', ['unpack', '--image', `${layout}:test`, bundle]);
      const theirs = fromDisk(join(bundle, 'rootfs'));

      const rootfs = await indexLayers(layers.map((tar) => layerOf(tar, MEDIA.tar)));
      const ours = await fromEntries(rootfs.entries());

      expect(ours.size).toBeGreaterThan(20);
      compareTrees(ours, theirs, started);
    },
  );

  // Building the cached fixture (debootstrap + apt) takes a few minutes on a fresh machine.
  test('the real Debian bookworm + python3 image (whiteout, opaque and hard-link layer on top)', async () => {
    const image = await ensureDebianPythonImage();
    const bundle = join(dir, 'bundle-debian');
    const started = Math.floor(Date.now() / 1000) - 2;
    await run('umoci', ['unpack', '--image', `${image.layoutDir}:${image.tag}`, bundle], {
      maxBuffer: 1 << 24,
    });
    const theirs = fromDisk(join(bundle, 'rootfs'));

    const blob = (digest: string) => join(image.layoutDir, 'blobs', 'sha256', digest.slice('sha256:'.length));
    const index = JSON.parse(await readFile(join(image.layoutDir, 'index.json'), 'utf8'));
    const entry = index.manifests.find(
      (m: { annotations?: Record<string, string> }) =>
        m.annotations?.['org.opencontainers.image.ref.name'] === image.tag,
    );
    const manifest = JSON.parse(await readFile(blob(entry.digest), 'utf8'));
    const layers: LayerSource[] = manifest.layers.map(
      (d: { digest: string; mediaType: string; size: number }) => ({
        digest: d.digest,
        mediaType: d.mediaType,
        size: d.size,
        open: () => createReadStream(blob(d.digest)),
      }),
    );
    const rootfs = await indexLayers(layers);
    const ours = await fromEntries(rootfs.entries());

    expect(ours.size).toBeGreaterThan(5000);
    expect(rootfs.stats.hardlinks).toBeGreaterThan(0);
    compareTrees(ours, theirs, started);
  }, 900_000);
});
