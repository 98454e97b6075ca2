import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildImage, pushImage, type StartedRegistry, startRegistry, type TestImage } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, filesIn, runCli } from './harness.ts';

interface ListedEntry {
  kind: 'blob' | 'index' | 'output' | 'debris' | 'legacy' | 'other';
  digest: string | null;
  size: number;
  lastUsed: string;
  inUse: boolean;
  path: string;
}

/** What `irb cache prune --json` and `irb cache clear --json` print. */
interface Removal {
  root: string;
  removed: ListedEntry[];
  removedBytes: number;
  kept: number;
  keptInUse: number;
  legacyRemoved: number;
}

/** The entries of one kind. */
const kinds = (entries: ListedEntry[], kind: ListedEntry['kind']) => entries.filter((e) => e.kind === kind);

/**
 * The entries a build stores, without the small caches of kind `other`: the CLI's own compile
 * cache lives in the directory too and comes back with every run of irb.
 */
const cached = (entries: ListedEntry[]) => entries.filter((e) => e.kind !== 'other');

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

  it('ls lists the one cache directory (IRB_CACHE_DIR or --cache-dir), nothing beside it; prune trims it', async () => {
    const cacheDir = join(dir, 'one');
    const built = await build('first', cacheDir);
    expect(built.code, built.stderr).toBe(0);
    // Every cached file is inside the directory named: nothing beside it (no one-index, one-output).
    expect((await readdir(dir)).filter((name) => name.startsWith('one'))).toEqual(['one']);

    const byEnv = await runCli(['cache', 'ls', '--json'], { env: { IRB_CACHE_DIR: cacheDir } });
    expect(byEnv.code, byEnv.stderr).toBe(0);
    const listed = JSON.parse(byEnv.stdout) as { root: string; totalBytes: number; entries: ListedEntry[] };
    expect(Object.keys(listed)).toEqual(['root', 'totalBytes', 'entries']);
    expect(listed.root).toBe(cacheDir);
    expect(listed.totalBytes).toBe(listed.entries.reduce((sum, e) => sum + e.size, 0));
    for (const e of listed.entries) {
      expect(Object.keys(e)).toEqual(['kind', 'digest', 'size', 'lastUsed', 'inUse', 'path']);
      expect(e.path.startsWith(`${cacheDir}/`), e.path).toBe(true);
    }
    const blobs = kinds(listed.entries, 'blob');
    expect(blobs.map((e) => e.digest).sort()).toEqual(blobsOf(first));
    expect(blobs.every((e) => e.path.startsWith(join(cacheDir, 'blobs', 'sha256')))).toBe(true);
    expect(blobs.every((e) => !e.inUse && e.size > 0 && !Number.isNaN(Date.parse(e.lastUsed)))).toBe(true);
    expect(kinds(listed.entries, 'index').map((e) => e.digest)).toEqual([first.layers[0]!.digest]);
    // In the output cache: the base member with its tree, the overlay member with its description.
    expect(kinds(listed.entries, 'output')).toHaveLength(4);

    // What a killed build left (a temp file whose writer is gone) and files of the old layout
    // (the index cache beside the directory, blobs straight under it) are listed by path.
    const gone = spawnSync('true').pid;
    const debris = join(cacheDir, 'tmp', `.blob.irb-${gone}-0-0.0123456789ab.irb-tmp`);
    await writeFile(debris, 'partial');
    await mkdir(`${cacheDir}-index`);
    const oldIndex = join(`${cacheDir}-index`, 'sha256-abc.0123.idx');
    await writeFile(oldIndex, 'old');
    await mkdir(join(cacheDir, 'sha256'));
    const oldBlob = join(cacheDir, 'sha256', 'ab'.repeat(32));
    await writeFile(oldBlob, 'old');

    const text = await runCli(['cache', 'ls', '--cache-dir', cacheDir]);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^KIND +DIGEST OR PATH +SIZE +LAST USED$/);
    expect(text.stdout).toMatch(new RegExp(`^index +${first.layers[0]!.digest} `, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^debris +${debris} +7 B `, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^legacy +${oldIndex} +3 B `, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^legacy +${oldBlob} +3 B `, 'm'));
    expect(lines.at(-2)).toMatch(
      new RegExp(
        `^3 blobs \\(.+\\), 1 layer indexes \\(.+\\), 4 output files \\(.+\\), 1 debris files \\(7 B\\), 2 legacy files \\(6 B\\)(, \\d+ other \\(.+\\))? in ${cacheDir}; `,
      ),
    );
    expect(lines.at(-1)).toBe('debris and legacy files are never read; irb cache prune removes them');

    // A prune by age keeps every young entry and still removes the debris and the old layout.
    const young = await runCli(['cache', 'prune', '--older-than', '1d', '--cache-dir', cacheDir]);
    expect(young.code, young.stderr).toBe(0);
    expect(young.stdout).toMatch(/removed 3 entries \(13 B\), kept 8 /);
    expect(young.stdout).toContain('  1 leftovers of killed builds removed');
    expect(young.stdout).toContain("  2 files of an earlier irb's cache layout removed");
    for (const path of [debris, oldIndex, oldBlob, `${cacheDir}-index`])
      expect(existsSync(path), path).toBe(false);

    const all = await runCli(['cache', 'prune', '--max-size', '0', '--cache-dir', cacheDir, '--json']);
    expect(all.code, all.stderr).toBe(0);
    const pruned = JSON.parse(all.stdout) as Removal;
    expect(pruned).toMatchObject({ root: cacheDir, kept: 0, legacyRemoved: 0 });
    expect(pruned.removed).toHaveLength(8);
    const empty = await runCli(['cache', 'ls', '--cache-dir', cacheDir, '--json']);
    expect(cached(JSON.parse(empty.stdout).entries)).toEqual([]);
    // Bookkeeping is gone too: no lease of the finished build, no partial download.
    expect(await readdir(join(cacheDir, 'leases'))).toEqual([]);
    expect(await readdir(join(cacheDir, 'tmp'))).toEqual([]);
  });

  it('path prints the directory and its areas; clear empties it and leaves what is not irb’s', async () => {
    const cacheDir = join(dir, 'three');
    expect((await build('first', cacheDir)).code).toBe(0);
    const kernel = join(cacheDir, 'kernel', 'vmlinuz-6.1');
    await mkdir(dirname(kernel));
    await writeFile(kernel, 'a kernel');

    const text = await runCli(['cache', 'path', '--cache-dir', cacheDir]);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    // The directory alone on the first line, for $(irb cache path | head -n 1).
    expect(lines[0]).toBe(cacheDir);
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^  blobs +${join(cacheDir, 'blobs')} +verified blobs`)),
    );
    const json = JSON.parse((await runCli(['cache', 'path', '--cache-dir', cacheDir, '--json'])).stdout) as {
      root: string;
      areas: Array<{ name: string; path: string; holds: string }>;
    };
    expect(json.root).toBe(cacheDir);
    expect(json.areas.map((a) => a.name)).toEqual([
      'blobs',
      'index',
      'output',
      'spool',
      'tmp',
      'leases',
      'pruneLock',
      'schemes',
      'compileCache',
      'kvmProbe',
    ]);
    for (const area of json.areas) {
      expect(dirname(area.path)).toBe(cacheDir);
      expect(area.holds).not.toBe('');
    }
    // Where the directory is when none is named: IRB_CACHE_DIR, $XDG_CACHE_HOME/irb, ~/.cache/irb.
    const rootWith = async (env: Record<string, string | undefined>) =>
      (await runCli(['cache', 'path'], { env })).stdout.split('\n')[0];
    expect(await rootWith({ IRB_CACHE_DIR: join(dir, 'env') })).toBe(join(dir, 'env'));
    expect(await rootWith({ XDG_CACHE_HOME: join(dir, 'xdg') })).toBe(join(dir, 'xdg', 'irb'));
    expect(await rootWith({ XDG_CACHE_HOME: undefined, HOME: join(dir, 'home') })).toBe(
      join(dir, 'home', '.cache', 'irb'),
    );

    const before = cached(
      (
        JSON.parse((await runCli(['cache', 'ls', '--cache-dir', cacheDir, '--json'])).stdout) as {
          entries: ListedEntry[];
        }
      ).entries,
    );
    expect(before.length).toBeGreaterThan(0);
    const cleared = await runCli(['cache', 'clear', '--cache-dir', cacheDir, '--json']);
    expect(cleared.code, cleared.stderr).toBe(0);
    const result = JSON.parse(cleared.stdout) as Removal;
    expect(result.root).toBe(cacheDir);
    expect(result.keptInUse).toBe(0);
    expect(
      cached(result.removed)
        .map((e) => e.path)
        .sort(),
    ).toEqual(before.map((e) => e.path).sort());
    expect(result.removedBytes).toBeGreaterThanOrEqual(before.reduce((sum, e) => sum + e.size, 0));
    const after = await runCli(['cache', 'ls', '--cache-dir', cacheDir, '--json']);
    expect(cached(JSON.parse(after.stdout).entries)).toEqual([]);
    expect(await readFile(kernel, 'utf8')).toBe('a kernel');
    const again = await runCli(['cache', 'clear', '--cache-dir', cacheDir]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^cleared ${cacheDir}: removed \\d+ files \\(`));
    // The next build is a cold one: it downloads and stores again.
    expect((await build('first', cacheDir)).code).toBe(0);
    const refilled = await runCli(['cache', 'ls', '--cache-dir', cacheDir, '--json']);
    expect(kinds(JSON.parse(refilled.stdout).entries, 'blob')).toHaveLength(3);
  });

  it('after a build that stored blobs, the cache is trimmed to IRB_CACHE_MAX_SIZE, least recently used first', async () => {
    const cacheDir = join(dir, 'two');
    expect((await build('first', cacheDir)).code).toBe(0);
    const limited = await build('second', cacheDir, { IRB_CACHE_MAX_SIZE: '1K' });
    expect(limited.code, limited.stderr).toBe(0);
    const listed = await runCli(['cache', 'ls', '--cache-dir', cacheDir, '--json']);
    const entries = JSON.parse(listed.stdout) as { root: string; entries: ListedEntry[] };
    // What the second build used stays (it was in use when the limit applied); the rest went.
    expect(
      entries.entries
        .filter((e) => e.kind === 'blob')
        .map((e) => e.digest)
        .sort(),
    ).toEqual(blobsOf(second));
    expect(entries.root).toBe(cacheDir);
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
      [['cache'], /missing the action: ls, prune, clear or path/],
      [['cache', 'frob'], /unknown cache action "frob" \(actions: ls, prune, clear, path\)/],
      [['cache', 'clear', '--older-than', '1d'], /unknown option "--older-than"/],
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
    expect(help.stdout).toContain('$XDG_CACHE_HOME/irb');
    expect(help.stdout).toMatch(/^ {2}clear /m);
    expect(help.stdout).toMatch(/^ {2}path /m);
    expect(help.stdout).toContain('IRB_CACHE_MAX_SIZE');
    // The layout of earlier versions is gone from the help.
    expect(help.stdout).not.toContain('DIR-index');
    expect(help.stdout).not.toContain('.cache/irb/blobs');
  });
});
