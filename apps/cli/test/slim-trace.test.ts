// irb build --slim/--keep-only/--keep, irb analyze, irb trace and irb boot --timeline through the
// real bin, against a real registry; the boots use QEMU (TCG), so there are few of them.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, filesIn, runCli } from './harness.ts';

let registry: StartedRegistry;
let dir: string;
let image: string;

const README = 'r'.repeat(20_000);
const COPY = 'same bytes in two files\n'.repeat(100);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-slim-trace-'));
  registry = await startRegistry();
  const layer = await busyboxLayer([
    { type: 'directory', path: 'usr/' },
    { type: 'directory', path: 'usr/share/' },
    { type: 'directory', path: 'usr/share/doc/' },
    { type: 'directory', path: 'usr/share/doc/tool/' },
    { type: 'file', path: 'usr/share/doc/tool/README', content: README },
    { type: 'file', path: 'usr/share/doc/tool/copyright', content: 'MIT\n' },
    { type: 'file', path: 'etc/motd', content: 'hello from motd\n' },
    { type: 'file', path: 'etc/unused.conf', content: COPY },
    { type: 'file', path: 'etc/unused-copy.conf', content: COPY },
    { type: 'directory', path: 'etc/keep.d/' },
    { type: 'file', path: 'etc/keep.d/extra', content: 'kept by --keep\n' },
  ]);
  await pushImage(
    registry,
    'demo/slim',
    'latest',
    // The static init runs the command; busybox's sh is just a program here.
    buildImage({
      layers: [layer],
      runtime: { Cmd: ['/bin/sh', '-c', 'cat /etc/motd; echo trace-marker-5d1'] },
    }),
  );
  image = `${registry.host}/demo/slim:latest`;
});

afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('irb build --slim and the new summary fields', () => {
  it('--slim docs leaves out docs but keeps copyright files; --json has filtered, command, initKind, warnings', async () => {
    const out = join(dir, 'slim.cpio.gz');
    const built = await runCli(['build', image, '--slim', 'docs', '-o', out, '--json', '--no-cache']);
    expect(built.code, built.stderr).toBe(0);
    const summary = JSON.parse(built.stdout);
    expect(summary).toMatchObject({
      filtered: 1,
      initKind: 'static',
      command: ['/bin/sh', '-c', 'cat /etc/motd; echo trace-marker-5d1'],
      warnings: [],
    });
    const listed = await runCli(['ls', out]);
    expect(listed.stdout).toContain('usr/share/doc/tool/copyright');
    expect(listed.stdout).not.toContain('usr/share/doc/tool/README');

    const text = await runCli([
      'build',
      image,
      '--slim',
      'all',
      '-o',
      join(dir, 'all.cpio.gz'),
      '--no-cache',
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      /entries +\d+ \(1 left out by --slim\/--keep-only\), \/init generated \(static\)/,
    );
    expect(text.stdout).toContain("command   /bin/sh -c 'cat /etc/motd; echo trace-marker-5d1'");
  });

  it('prints a warning the build noticed, in CLI words, in the text summary and in --json', async () => {
    const args = ['build', image, '--exclude', '/bin/busybox', '--no-cache'];
    const text = await runCli([...args, '-o', join(dir, 'nobin.cpio.gz')]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/\n {2}warning: .*"\/bin\/sh".*--exclude/);
    expect(text.stdout).not.toContain('`');
    const json = await runCli([...args, '-o', join(dir, 'nobin2.cpio.gz'), '--json']);
    const warnings: string[] = JSON.parse(json.stdout).warnings;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('--exclude');
    const quiet = await runCli([...args, '-o', join(dir, 'nobin3.cpio.gz'), '-q']);
    expect(quiet.stdout).toBe('');
    expect(quiet.stderr).toMatch(/^irb: warning: .*--exclude/);
  });

  it('refuses an unknown preset and --keep without --keep-only before any download', async () => {
    const typo = await runCli(['build', image, '--slim', 'docs,locale']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe(
      'irb: error: unknown slim preset "locale" (did you mean "locales"?); see "irb build --help"\n',
    );
    const keep = await runCli(['build', image, '--keep', '/etc/**']);
    expect(keep.code).toBe(2);
    expect(keep.stderr).toMatch(/--keep adds paths to what a trace keeps; give the trace with --keep-only/);
    const notTrace = join(dir, 'not-a-trace.json');
    await writeFile(notTrace, '{"files": []}');
    const bad = await runCli(['build', image, '--keep-only', notTrace, '-o', join(dir, 'never.cpio.gz')]);
    // A file that is not a trace is a bad value: exit 2, as a usage error.
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      `irb: error: --keep-only ${notTrace} is not an irb trace (version 1); write one with irb trace\n`,
    );
    expect(await filesIn(dir)).not.toContain('never.cpio.gz');
  });
});

describe('irb analyze', () => {
  it('analyses an archive file and an image reference: directories, kinds, largest, duplicates, presets', async () => {
    const archive = join(dir, 'full.cpio.zst');
    expect((await runCli(['build', image, '-o', archive, '-q', '--no-cache'])).code).toBe(0);
    const json = await runCli(['analyze', archive, '--json', '--top', '3']);
    expect(json.code, json.stderr).toBe(0);
    const a = JSON.parse(json.stdout);
    expect(a.archive).toBe(archive);
    expect(a.largest).toHaveLength(3);
    expect(a.largest[0]).toMatchObject({ path: '/bin/busybox', kind: 'executables' });
    expect(a.duplicates[0]).toMatchObject({
      paths: ['/etc/unused-copy.conf', '/etc/unused.conf'],
      wastedBytes: COPY.length,
    });
    expect(a.presets.find((p: { name: string }) => p.name === 'docs')).toMatchObject({
      bytes: README.length,
      files: 1,
    });

    const text = await runCli(['analyze', image, '--no-cache', '-q']);
    expect(text.code, text.stderr).toBe(0);
    const out = text.stdout;
    expect(out).toMatch(
      /^127\.0\.0\.1:\d+\/demo\/slim:latest: [\d.]+ MiB in \d+ files, \d+ directories, \d+ symlinks/,
    );
    for (const heading of ['by directory', 'by kind', 'largest files', 'slim presets']) {
      expect(out).toContain(`\n${heading}`);
    }
    expect(out).toMatch(/\n {2}\/bin +[\d.]+ MiB +\d+\.\d% +█+/);
    expect(out).toMatch(/identical files that are not hard links: 2\.3 KiB wasted/);
    expect(out).toContain('/etc/unused-copy.conf, /etc/unused.conf');
    expect(out).toMatch(/\n {2}docs +19\.5 KiB +\d+\.\d% +█+ +\/usr\/share\/\{doc,man,info\}/);
    expect(text.stderr).toBe('');
  });

  it('reads an archive from stdin with -', async () => {
    const archive = join(dir, 'piped.cpio.gz');
    expect((await runCli(['build', image, '-o', archive, '-q', '--no-cache'])).code).toBe(0);
    const piped = await runCli(['analyze', '-', '--json'], { input: await readFile(archive) });
    expect(piped.code, piped.stderr).toBe(0);
    const fromFile = await runCli(['analyze', archive, '--json']);
    const { archive: _a, ...a } = JSON.parse(piped.stdout);
    const { archive: _b, ...b } = JSON.parse(fromFile.stdout);
    expect(a).toEqual(b);
  });

  it('tells a missing file from an image, and refuses a directory', async () => {
    const missing = await runCli(['analyze', './nowhere.cpio.gz']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^irb: error: \.\/nowhere\.cpio\.gz: no such file/);
    const directory = await runCli(['analyze', dir]);
    expect(directory.stderr).toContain(`give an archive file, or oci:${dir} for an OCI image layout`);
  });
});

describe('irb trace mistakes, before any boot', () => {
  it('an image with its own /init asks for --replace-init; a missing -o directory fails first', async () => {
    const layer = await busyboxLayer([{ type: 'file', path: 'init', content: '#!/bin/sh\n', mode: 0o755 }]);
    await pushImage(
      registry,
      'demo/own-init',
      'latest',
      buildImage({ layers: [layer], runtime: { Cmd: ['/bin/sh'] } }),
    );
    const own = `${registry.host}/demo/own-init:latest`;
    const refused = await runCli(['trace', own, '-o', join(dir, 'own.json'), '--no-cache']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /irb: error: the image has its own \/init; irb trace runs the program with irb's init, so add --replace-init/,
    );
    expect(await filesIn(dir)).not.toContain('own.json');
    const nowhere = await runCli(['trace', own, '-o', join(dir, 'no', 'such', 't.json')]);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toContain('its directory does not exist; choose another path');
  });
});

// One trace boot, one boot of the traced archive, two timeline boots.
describe('irb trace → irb build --keep-only → irb boot', () => {
  it('traces the program, keeps only what it used (plus --keep), and the result still runs', async () => {
    const traceFile = join(dir, 'slim.trace.json');
    const traced = await runCli(['trace', image, '-o', traceFile, '--no-cache'], { timeoutMs: 600_000 });
    expect(traced.code, traced.stderr).toBe(0);
    // The program's output is shown while it runs; the trace list and kernel log are not.
    expect(traced.stderr).toContain('trace-marker-5d1');
    expect(traced.stderr).not.toContain('irb-trace:');
    expect(traced.stdout).toContain(`wrote ${traceFile}`);
    expect(traced.stdout).toMatch(/ended +exit status 0/);
    expect(traced.stdout).toContain(`next: irb build ${image} --keep-only ${traceFile}`);
    const trace = JSON.parse(await readFile(traceFile, 'utf8'));
    expect(trace).toMatchObject({ irbTrace: 1, exitStatus: 0, stopped: false });
    expect(trace.files).toEqual(expect.arrayContaining(['/bin/busybox', '/etc/motd']));
    expect(trace.files).not.toContain('/etc/unused.conf');
    expect(trace.symlinks).toContain('/bin/sh');
    expect(await filesIn(dir)).not.toContainEqual(expect.stringMatching(/irb-tmp/));

    const kept = join(dir, 'kept.cpio.lz4');
    const built = await runCli([
      'build',
      image,
      '--keep-only',
      traceFile,
      '--keep',
      '/etc/keep.d/**',
      '-o',
      kept,
      '--json',
      '--no-cache',
    ]);
    expect(built.code, built.stderr).toBe(0);
    expect(JSON.parse(built.stdout)).toMatchObject({ warnings: [] });
    expect(JSON.parse(built.stdout).filtered).toBeGreaterThan(15);
    const names = (await runCli(['ls', kept])).stdout;
    expect(names).toContain(' etc/motd\n');
    expect(names).toContain(' etc/keep.d/extra\n');
    expect(names).not.toContain('etc/unused.conf');
    expect(names).not.toContain('usr/share/doc');

    const booted = await runCli(['boot', kept, '--expect', 'irb: exit status 0']);
    expect(booted.code, booted.stdout + booted.stderr).toBe(0);
    expect(booted.stdout).toContain('hello from motd');
    expect(booted.stdout).toContain('trace-marker-5d1');

    const timeline = await runCli(['boot', kept, '--timeline', '--runs', '2', '--json']);
    expect(timeline.code, timeline.stderr).toBe(0);
    const t = JSON.parse(timeline.stdout);
    expect(Object.keys(t)).toEqual([
      'archive',
      'runs',
      'unpackStartMs',
      'unpackedMs',
      'initMs',
      'modulesMs',
      'netMs',
      'execMs',
      'firstLineMs',
      'endMs',
      'wallMs',
      'netUpMs',
      'acceptedMs',
      'answerMs',
      'answerLine',
      'min',
      'max',
      'exitStatus',
    ]);
    expect(t).toMatchObject({ runs: 2, exitStatus: 0 });
    // The spread of each phase beside its median.
    for (const phase of ['unpackStartMs', 'firstLineMs', 'wallMs']) {
      expect(t.min[phase]).toBeLessThanOrEqual(t[phase]);
      expect(t.max[phase]).toBeGreaterThanOrEqual(t[phase]);
    }
    // The phases come in boot order on the guest's clock.
    const order = [t.unpackStartMs, t.unpackedMs, t.initMs, t.execMs, t.firstLineMs, t.endMs];
    for (const v of order) expect(typeof v).toBe('number');
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(timeline.stderr).toBe('irb: boot 1 of 2…\nirb: boot 2 of 2…\n');
  }, 900_000);
});
