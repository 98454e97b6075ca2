import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, pushImage, type StartedRegistry, startRegistry, type TestImage } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, filesIn, runCli } from './harness.ts';

interface ListedEntry {
  kind: 'blob' | 'index' | 'output';
  digest: string | null;
  size: number;
  lastUsed: string;
  inUse: boolean;
}

/** Every blob of an image: manifest, config, layers. */
function blobsOf(image: TestImage): string[] {
  return [image.manifest.digest, image.config.digest, ...image.layers.map((l) => l.digest)].sort();
}

describe('irb cache', () => {
  let registry: StartedRegistry;
  let dir: string;
  let first: TestImage;
  let second: TestImage;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-cli-cache-'));
    registry = await startRegistry();
    const runtime = { Env: ['PATH=/bin'], Cmd: ['/bin/sh', '-c', 'echo hi'] };
    first = buildImage({ layers: [await busyboxLayer()], runtime });
    second = buildImage({
      layers: [await busyboxLayer([{ type: 'file', path: 'etc/second', content: 'two' }])],
      runtime,
    });
    await pushImage(registry, 'cache/first', 'v1', first);
    await pushImage(registry, 'cache/second', 'v1', second);
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const build = (
    name: string,
    cacheDir: string,
    env: Record<string, string> = {},
    output = `${name}.cpio.gz`,
  ) =>
    runCli(
      ['build', `${registry.host}/cache/${name}:v1`, '-o', join(dir, output), '--cache-dir', cacheDir, '-q'],
      {
        env,
      },
    );

  it('ls lists blobs and layer indexes (IRB_CACHE_DIR or --cache-dir); prune trims them', async () => {
    const cacheDir = join(dir, 'one', 'blobs');
    const built = await build('first', cacheDir);
    expect(built.code, built.stderr).toBe(0);

    const byEnv = await runCli(['cache', 'ls', '--json'], { env: { IRB_CACHE_DIR: cacheDir } });
    expect(byEnv.code, byEnv.stderr).toBe(0);
    const listed = JSON.parse(byEnv.stdout) as { cacheDir: string; indexDir: string; entries: ListedEntry[] };
    expect(listed.cacheDir).toBe(cacheDir);
    // The index directory sits beside a directory named blobs.
    expect(listed.indexDir).toBe(join(dir, 'one', 'index'));
    const blobs = listed.entries.filter((e) => e.kind === 'blob');
    expect(blobs.map((e) => e.digest).sort()).toEqual(blobsOf(first));
    expect(blobs.every((e) => !e.inUse && e.size > 0 && !Number.isNaN(Date.parse(e.lastUsed)))).toBe(true);
    expect(listed.entries.filter((e) => e.kind === 'index').map((e) => e.digest)).toEqual([
      first.layers[0]!.digest,
    ]);

    const text = await runCli(['cache', 'ls', '--cache-dir', cacheDir]);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^KIND +DIGEST +SIZE +LAST USED$/);
    // 3 blobs, 1 layer index, and in the output cache the base member with its tree and the
    // overlay member with its description.
    expect(listed.entries.filter((e) => e.kind === 'output')).toHaveLength(4);
    expect(lines).toHaveLength(1 + 8 + 1);
    expect(text.stdout).toMatch(new RegExp(`^index +${first.layers[0]!.digest} `, 'm'));
    expect(lines.at(-1)).toMatch(
      new RegExp(
        `^3 blobs \\(.+\\) in ${cacheDir}, 1 layer indexes \\(.+\\) in ${join(dir, 'one', 'index')}, 4 output files \\(.+\\) in ${join(dir, 'one', 'output')}; `,
      ),
    );

    const young = await runCli(['cache', 'prune', '--older-than', '1d', '--cache-dir', cacheDir]);
    expect(young.code, young.stderr).toBe(0);
    expect(young.stdout).toMatch(/removed 0 entries \(0 B\), kept 8/);

    const all = await runCli(['cache', 'prune', '--max-size', '0', '--cache-dir', cacheDir, '--json']);
    expect(all.code, all.stderr).toBe(0);
    const pruned = JSON.parse(all.stdout) as { removed: ListedEntry[]; kept: number };
    expect(pruned.removed).toHaveLength(8);
    expect(pruned.kept).toBe(0);
    const empty = await runCli(['cache', 'ls', '--cache-dir', cacheDir, '--json']);
    expect(JSON.parse(empty.stdout).entries).toEqual([]);
    // Bookkeeping is gone too: no lease of the finished build, no lock, no partial download.
    expect(await readdir(join(cacheDir, '.leases'))).toEqual([]);
    expect(await readdir(join(cacheDir, '.tmp'))).toEqual([]);
  });

  it('after a build that stored blobs, the cache is trimmed to IRB_CACHE_MAX_SIZE, least recently used first', async () => {
    const cacheDir = join(dir, 'two');
    expect((await build('first', cacheDir)).code).toBe(0);
    const limited = await build('second', cacheDir, { IRB_CACHE_MAX_SIZE: '1K' });
    expect(limited.code, limited.stderr).toBe(0);
    const listed = await runCli(['cache', 'ls', '--cache-dir', cacheDir, '--json']);
    const entries = JSON.parse(listed.stdout) as { indexDir: string; entries: ListedEntry[] };
    // What the second build used stays (it was in use when the limit applied); the rest went.
    expect(
      entries.entries
        .filter((e) => e.kind === 'blob')
        .map((e) => e.digest)
        .sort(),
    ).toEqual(blobsOf(second));
    expect(entries.indexDir).toBe(`${cacheDir}-index`);
    const bad = await build('second', cacheDir, { IRB_CACHE_MAX_SIZE: 'lots' });
    // A bad value, if in the environment: exit 2, as a usage error.
    expect(bad.code).toBe(2);
    expect(bad.stderr.trimEnd()).toMatch(
      /^irb: error: IRB_CACHE_MAX_SIZE="lots" is not a size; use e\.g\. 10G/,
    );
  });

  it('a cache directory that cannot be created fails at once, in one line naming the option', async () => {
    await writeFile(join(dir, 'regular-file'), 'x');
    const targets = [join(dir, 'regular-file', 'cache')];
    // /proc/self is the irb process itself: private, and nothing can be created there.
    if (existsSync('/proc/self')) targets.push('/proc/self/irb-nope/blobs');
    for (const target of targets) {
      const result = await build('first', target, {}, 'bad-cache.cpio.gz');
      expect(result.signal, `${target} hung`).toBeNull();
      expect(result.code, result.stderr).toBe(1);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^irb: error: cannot create the blob cache at ${target}: .*(cache-dir|cacheDir)`),
      );
    }
    expect((await filesIn(dir)).filter((name) => name.includes('bad-cache'))).toEqual([]);
  });

  it('refuses unknown actions and bad sizes or durations as usage errors', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['cache', 'frob'], /unknown cache action "frob" \(actions: ls, prune\)/],
      [['cache', 'prune', '--max-size', 'lots'], /--max-size wants a size such as 5G/],
      [['cache', 'prune', '--older-than', '3y'], /--older-than wants a duration such as 30d/],
      [['cache', 'ls', '--max-size', '1G'], /unknown option "--max-size"/],
      [['cache', 'prune', '--max-szie', '1G'], /unknown option "--max-szie" \(did you mean --max-size\?\)/],
      [['cache', 'prnue'], /unknown cache action "prnue" \(did you mean "prune"\?\)/],
    ];
    for (const [args, pattern] of cases) {
      const result = await runCli(args);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(pattern);
      expect(result.stderr).toMatch(/see "irb cache --help"/);
    }
    const help = await runCli(['cache', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('DIR-index');
    expect(help.stdout).toContain('IRB_CACHE_MAX_SIZE');
  });
});
