import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildImage,
  buildTar,
  flipByte,
  lineChild,
  pushImage,
  type StartedRegistry,
  startRegistry,
  type TestImage,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuildSummary, InitramfsBuilder, listCache, pruneCache } from '../src/index.ts';

// What irb stored itself is checked before it is trusted: a cached member or blob that no longer
// matches its digest is a miss, built or fetched again, never a corrupt archive.

let registry: StartedRegistry;
let dir: string;
let image: string;
let pushed: TestImage;
let plain: { image: string; pushed: TestImage };
/** An image whose base member takes a while to compress (incompressible bytes). */
let big: string;
let agent: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-cache-integrity-'));
  registry = await startRegistry();
  const layer = await buildTar([
    { type: 'directory', path: 'usr/bin/' },
    { type: 'file', path: 'usr/lib/big', content: 'z'.repeat(400_000) },
    { type: 'file', path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
  ]);
  pushed = buildImage({ layers: [layer], runtime: { Cmd: ['agent'] } });
  await pushImage(registry, 'lib/integrity', 'v1', pushed);
  image = `${registry.host}/lib/integrity:v1`;
  // An uncompressed layer: a flipped byte reads as data, and only the blob's digest notices.
  const uncompressed = buildImage({ layers: [layer], compression: 'none', runtime: { Cmd: ['agent'] } });
  await pushImage(registry, 'lib/integrity-plain', 'v1', uncompressed);
  plain = { image: `${registry.host}/lib/integrity-plain:v1`, pushed: uncompressed };
  const noise = await buildTar([{ type: 'file', path: 'noise', content: randomBytes(24 * 1024 * 1024) }]);
  await pushImage(
    registry,
    'lib/integrity-big',
    'v1',
    buildImage({ layers: [noise], runtime: { Cmd: ['x'] } }),
  );
  big = `${registry.host}/lib/integrity-big:v1`;
  agent = join(dir, 'agent');
  await writeFile(agent, 'the agent');
});

afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function build(cacheDir: string, name: string, cache = true, from = image) {
  const events: string[] = [];
  const out = join(dir, name);
  const summary: BuildSummary = await new InitramfsBuilder({
    image: from,
    compression: 'zstd',
    cacheDir,
    cache,
    inject: [`${agent}:/bin/agent`],
    onProgress: (e) => events.push(e.type),
  }).build(out);
  return { bytes: await readFile(out), events, summary };
}

async function member(cacheDir: string, ext: string): Promise<string> {
  const output = join(cacheDir, 'output');
  const name = (await readdir(output)).find((n) => n.endsWith(ext));
  if (!name) throw new Error(`no ${ext} in ${output}`);
  return join(output, name);
}

describe('what the cache stored is verified before it is used', () => {
  it('a flipped byte in a cached base member: the base is built again, the archive is what a cold build writes', async () => {
    const cacheDir = join(dir, 'base');
    const cold = await build(cacheDir, 'base-cold', false);
    await build(cacheDir, 'base-fill');
    await flipByte(await member(cacheDir, '.base'));
    // A new output file: the members are copied (the path that reads them).
    const repaired = await build(cacheDir, 'base-repaired');
    expect(Buffer.compare(repaired.bytes, cold.bytes)).toBe(0);
    expect(repaired.events).toContain('index');
    expect(repaired.summary.warnings.join('\n')).toMatch(
      /\.base did not match its digest.*removed and fetched or built again/,
    );
    // The entry was stored again, whole: the next build is a plain hit.
    const hit = await build(cacheDir, 'base-hit');
    expect(hit.events).not.toContain('index');
    expect(hit.events).not.toContain('compress');
    expect(hit.summary.warnings).toEqual(cold.summary.warnings);
    expect(Buffer.compare(hit.bytes, cold.bytes)).toBe(0);
    // The stream of a hit checks before its first byte, and builds again just the same.
    await flipByte(await member(cacheDir, '.base'));
    const chunks: Uint8Array[] = [];
    const stream = new InitramfsBuilder({
      image,
      compression: 'zstd',
      cacheDir,
      inject: [`${agent}:/bin/agent`],
    }).stream();
    for await (const chunk of stream) chunks.push(chunk);
    expect(Buffer.compare(Buffer.concat(chunks), cold.bytes)).toBe(0);
    expect((await stream.summary).warnings.join('\n')).toMatch(/did not match its digest/);
  });

  it('a flipped byte in a cached overlay member: the overlay is packed again on the cached base', async () => {
    const cacheDir = join(dir, 'overlay');
    const cold = await build(cacheDir, 'overlay-cold', false);
    await build(cacheDir, 'overlay-fill');
    await flipByte(await member(cacheDir, '.overlay'));
    const repaired = await build(cacheDir, 'overlay-repaired');
    expect(Buffer.compare(repaired.bytes, cold.bytes)).toBe(0);
    // The base was sound: no layer read, only the overlay compressed.
    expect(repaired.events).not.toContain('index');
    expect(repaired.events).toContain('compress');
    expect(repaired.summary.warnings.join('\n')).toMatch(/\.overlay did not match its digest/);
  });

  it('a flipped byte in a description is a miss; an output already up to date is left alone', async () => {
    const cacheDir = join(dir, 'description');
    const cold = await build(cacheDir, 'description-cold', false);
    await build(cacheDir, 'same');
    // A record made within the clock tick of the file's last change is not trusted (see
    // outputUpToDate): let the output age before the run that compares and records it.
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Recorded as holding the members: the next run uses no member byte and checks none.
    await build(cacheDir, 'same');
    await flipByte(await member(cacheDir, '.base'));
    const untouched = await build(cacheDir, 'same');
    expect(Buffer.compare(untouched.bytes, cold.bytes)).toBe(0);
    expect(untouched.summary.warnings).toEqual(cold.summary.warnings);
    await flipByte(await member(cacheDir, '.tree'));
    const rebuilt = await build(cacheDir, 'description-rebuilt');
    expect(rebuilt.events).toContain('index');
    expect(Buffer.compare(rebuilt.bytes, cold.bytes)).toBe(0);
  });

  for (const kind of ['gzip', 'uncompressed'] as const) {
    it(`a corrupt cached ${kind} layer blob is downloaded again from the registry, and the build succeeds`, async () => {
      // gzip: the decompressor fails first; uncompressed: the blob's digest check at its end.
      const { image: from, pushed: source } = kind === 'gzip' ? { image, pushed } : plain;
      const cacheDir = join(dir, `blob-${kind}`);
      const cold = await build(cacheDir, `blob-${kind}-cold`, false, from);
      await build(cacheDir, `blob-${kind}-fill`, true, from);
      // Neither the output nor the index cache may hide the blob: the build must read it.
      await rm(join(cacheDir, 'output'), { recursive: true });
      await rm(join(cacheDir, 'index'), { recursive: true });
      const layer = source.layers[0]?.digest as string;
      const blob = join(cacheDir, 'blobs', 'sha256', layer.slice(7));
      await flipByte(blob);
      const repaired = await build(cacheDir, `blob-${kind}-repaired`, true, from);
      expect(Buffer.compare(repaired.bytes, cold.bytes)).toBe(0);
      expect(repaired.summary.warnings.join('\n')).toContain(`the cached ${blob} did not match its digest`);
      expect(
        `sha256:${createHash('sha256')
          .update(await readFile(blob))
          .digest('hex')}`,
      ).toBe(layer);
    });
  }

  it('a build that fails for another reason is not retried', async () => {
    const cacheDir = join(dir, 'other-failure');
    await build(cacheDir, 'other-fill');
    await rm(join(cacheDir, 'output'), { recursive: true });
    const events: string[] = [];
    const failure = await new InitramfsBuilder({
      image,
      cacheDir,
      onProgress: (e) => {
        events.push(e.type);
        if (e.type === 'pack') throw new Error('stop packing');
      },
    })
      .build(join(dir, 'other-out'))
      .catch((e: unknown) => e);
    expect((failure as Error).message).toBe('stop packing');
    // An error that is not irb's own may come from damaged bytes: the blobs it read were checked
    // (sound), and the build ran once.
    expect(events.filter((e) => e === 'resolve')).toHaveLength(1);
  });
});

describe('what a kill -9 leaves', () => {
  it('is listed as debris and removed by the next prune', async () => {
    const cacheDir = join(dir, 'killed');
    const child = lineChild(
      fileURLToPath(new URL('./killed-build-child.ts', import.meta.url)),
      big,
      cacheDir,
      join(dir, 'killed.cpio.zst'),
    );
    try {
      expect(await child.next()).toBe('writing');
    } finally {
      await child.kill();
    }
    const debris = (await listCache(cacheDir)).filter((e) => e.kind === 'debris');
    // The base member's temp file with the bytes written so far, and the killed process's lease.
    const where = debris.map((e) => e.path.slice(cacheDir.length + 1).split('/')[0]).sort();
    expect(where).toEqual(['leases', 'tmp']);
    expect(debris.find((e) => e.path.startsWith(join(cacheDir, 'tmp')))?.size).toBeGreaterThan(0);
    const pruned = await pruneCache(cacheDir, {});
    expect(pruned.orphansRemoved).toBe(debris.length);
    expect((await listCache(cacheDir)).filter((e) => e.kind === 'debris')).toEqual([]);
    expect(await readdir(join(cacheDir, 'tmp'))).toEqual([]);
  });
});

describe('one directory', () => {
  it('a cacheDir holds every file irb caches: removing it makes the next build cold', async () => {
    const parent = await mkdtemp(join(dir, 'parent-'));
    const cacheDir = join(parent, 'cache');
    const out = join(dir, 'one');
    const options = { image, compression: 'gzip' as const, cacheDir, inject: [`${agent}:/bin/agent`] };
    await new InitramfsBuilder(options).build(out);
    expect(await readdir(parent)).toEqual(['cache']);
    const warm: string[] = [];
    await new InitramfsBuilder({ ...options, onProgress: (e) => warm.push(e.type) }).build(out);
    expect(warm).not.toContain('index');
    await rm(cacheDir, { recursive: true });
    const cold: string[] = [];
    await new InitramfsBuilder({ ...options, onProgress: (e) => cold.push(e.type) }).build(out);
    expect(cold).toContain('index');
    expect(cold.filter((e) => e === 'blob').length).toBeGreaterThan(0);
  });

  it('the sibling layout of earlier versions is read as a miss, and a prune removes it', async () => {
    const fresh = join(dir, 'fill');
    await build(fresh, 'old-fill');
    // What an earlier version kept for `cacheDir: old`: index and output caches beside it.
    const siblings = async (old: string) => {
      await cp(join(fresh, 'output'), `${old}-output`, { recursive: true });
      await cp(join(fresh, 'index'), `${old}-index`, { recursive: true });
    };
    const left = async () => (await readdir(dir)).filter((n) => /^old-.*-(index|output)$/.test(n));
    const listed = join(dir, 'old-listed');
    await siblings(listed);
    const legacy = (await listCache(listed)).filter((e) => e.kind === 'legacy');
    expect(legacy.map((e) => e.path.slice(dir.length + 1).replace(/[0-9a-f]{64}/, 'KEY')).sort()).toEqual(
      [
        'old-listed-index/IDX',
        'old-listed-output/KEY.base',
        'old-listed-output/KEY.meta',
        'old-listed-output/KEY.overlay',
        'old-listed-output/KEY.tree',
      ].map((p) => (p.endsWith('IDX') ? expect.stringMatching(/^old-listed-index\/sha256-.*\.idx$/) : p)),
    );
    expect((await pruneCache(listed, {})).legacyRemoved).toBe(5);
    expect(await left()).toEqual([]);
    // A build does not read them; the automatic limit, applied when it stored its entries, removes them.
    const built = join(dir, 'old-built');
    await siblings(built);
    expect((await build(built, 'old-first')).events).toContain('index');
    expect(await left()).toEqual([]);
  });
});
