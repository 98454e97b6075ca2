import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chooseAccel, findKernel } from '@irb/builder';
import {
  buildImage,
  buildIndex,
  buildTar,
  pushImage,
  type StartedRegistry,
  startRegistry,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultMemoryMiB } from '../src/commands/boot.ts';
import { busyboxLayer, cliCommand, filesIn, repoRoot, runCli, runProgram } from './harness.ts';

const run = promisify(execFile);

/** A usage or runtime error: exactly one stderr line, in the documented form. */
function expectOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^irb: error: /);
  expect(lines[0]).toMatch(pattern);
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

// The sharp edges a new user meets (issue 15, issue 9 part 2), each through the real bin.
describe('irb CLI conventions and edges (no VM)', () => {
  let registry: StartedRegistry;
  let dir: string;
  let image: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-edges-'));
    registry = await startRegistry();
    const layer = await busyboxLayer();
    const runtime = { Env: ['PATH=/bin'], Cmd: ['/bin/sh', '-c', 'echo hi'] };
    await pushImage(registry, 'tools/busybox', 'v1', buildImage({ layers: [layer], runtime }));
    const arm = buildImage({
      layers: [await buildTar([{ type: 'file', path: 'arch', content: 'arm64' }])],
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      runtime: { Cmd: ['/arch'] },
    });
    await pushImage(registry, 'multi/app', 'v2', buildIndex([buildImage({ layers: [layer], runtime }), arm]));
    image = `${registry.host}/tools/busybox:v1`;
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('on an old Node, the bin says which Node it needs in one line before importing anything', async () => {
    const pkg = JSON.parse(await readFile(join(repoRoot, 'apps/cli/package.json'), 'utf8'));
    const entry = join(repoRoot, 'apps/cli/src/bin.ts');
    const source = await readFile(entry, 'utf8');
    expect(pkg.engines.node).toBe(`>=${/const MINIMUM = '([\d.]+)'/.exec(source)?.[1]}`);
    const oldNode = '/usr/bin/node';
    if (!existsSync(oldNode)) return;
    const { stdout: found } = await run(oldNode, ['--version']);
    const [major = 0, minor = 0] = found.trim().slice(1).split('.').map(Number);
    if (major > 22 || (major === 22 && minor >= 19)) return;
    // The entry compiled by tsc alone, types stripped, `./run.ts` rewritten to `./run.js` (the
    // bundle that ships is checked the same way in bundle.test.ts).
    const out = await mkdtemp(join(dir, 'bin-'));
    await run(join(repoRoot, 'node_modules/.bin/tsc'), [
      '--outDir',
      out,
      '--module',
      'nodenext',
      '--target',
      'es2023',
      '--rewriteRelativeImportExtensions',
      '--allowImportingTsExtensions',
      '--noCheck',
      '--noResolve',
      '--ignoreConfig',
      entry,
    ]);
    const compiled = join(out, 'bin.js');
    expect(await readFile(compiled, 'utf8')).toContain("import('./run.js')");
    for (const args of [['--help'], ['build', 'alpine', '-o', join(out, 'x.gz')]]) {
      const result = await runProgram(oldNode, [compiled, ...args]);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(
        `irb needs Node >= 22.19, found ${found.trim()}; install Node 22.19 or newer (https://nodejs.org/en/download, or "nvm install 24") and run irb with it\n`,
      );
    }
    expect(await filesIn(out)).toEqual(['bin.js']);
  });

  it('--version prints the package version; with --verbose Node, QEMU, KVM and zstd', async () => {
    const pkg = JSON.parse(await readFile(join(repoRoot, 'apps/cli/package.json'), 'utf8'));
    const plain = await runCli(['--version']);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe(`irb ${pkg.version}\n`);
    const verbose = await runCli(['--version', '--verbose']);
    expect(verbose.code, verbose.stderr).toBe(0);
    const lines = verbose.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`irb ${pkg.version}`);
    expect(lines).toContain(`node      ${process.version} (irb needs ${pkg.engines.node})`);
    const { stdout: qemu } = await run('qemu-system-x86_64', ['--version']);
    expect(lines).toContain(`qemu x86_64 ${qemu.split('\n')[0]!.trim()}`);
    // The accelerator a boot will really use, not whether /dev/kvm opens (a probe boot decides).
    const kvm = /^kvm {7}(.*)$/m.exec(verbose.stdout)?.[1] ?? '';
    const kernel = await findKernel().catch(() => undefined);
    if (kernel !== undefined && !/^no \/dev\/kvm|not usable/.test(kvm)) {
      const accel = await chooseAccel({ kernel });
      expect(kvm).toMatch(
        accel === 'kvm' ? /irb boot uses KVM$/ : /irb boot uses software emulation \(TCG\)$/,
      );
    }
    const forcedTcg = await runCli(['--version', '--verbose'], { env: { IRB_ACCEL: 'tcg' } });
    expect(forcedTcg.stdout).toMatch(/^kvm {7}IRB_ACCEL=tcg: irb boot uses software emulation \(TCG\)$/m);
    expect(verbose.stdout).toMatch(/^zstd {6}(zstd-napi|node:zlib)$/m);
    const forced = await runCli(['--version', '--verbose'], { env: { IRB_ZSTD_BACKEND: 'node' } });
    expect(forced.stdout).toMatch(/^zstd {6}node:zlib$/m);
  });

  it('a HOME where the compile cache cannot be made only means no compile cache', async () => {
    // Node's recursive mkdir retries forever under /proc; irb must still answer at once.
    const result = await runCli(['--version'], {
      env: { HOME: '/proc/1/x', XDG_CACHE_HOME: undefined, NODE_COMPILE_CACHE: undefined },
      timeoutMs: 30_000,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^irb \S+\n$/);
  });

  it('the compile cache lives in the cache directory --cache-dir names; --no-cache and -- keep it out', async () => {
    const noCompileEnv = { NODE_COMPILE_CACHE: undefined, NODE_DISABLE_COMPILE_CACHE: undefined };
    const home = join(dir, 'compile-home');
    const env = { ...noCompileEnv, HOME: home, XDG_CACHE_HOME: undefined };
    const named = join(dir, 'compile-named');
    const listed = await runCli(['cache', 'ls', '--cache-dir', named], { env });
    expect(listed.code, listed.stderr).toBe(0);
    expect((await filesIn(join(named, 'compile-cache'))).length).toBeGreaterThan(0);
    const equals = join(dir, 'compile-equals');
    expect((await runCli(['cache', 'ls', `--cache-dir=${equals}`], { env })).code).toBe(0);
    expect(existsSync(join(equals, 'compile-cache'))).toBe(true);
    // Neither named directory is the default one: nothing went to ~/.cache/irb.
    expect(existsSync(join(home, '.cache'))).toBe(false);
    // --no-cache: no cache at all, the compiled code included.
    const uncached = await runCli(
      ['build', image, '-o', join(dir, 'compile-uncached.cpio.gz'), '--no-cache', '-q'],
      {
        env,
      },
    );
    expect(uncached.code, uncached.stderr).toBe(0);
    expect(existsSync(join(home, '.cache'))).toBe(false);
    // After --, the words are the guest kernel's: they choose no cache directory.
    const kernelWords = join(dir, 'compile-kernel-words');
    const boot = await runCli(['boot', join(dir, 'missing.cpio'), '--', `--cache-dir=${kernelWords}`], {
      env,
    });
    expect(boot.code).toBe(2);
    expect(existsSync(kernelWords)).toBe(false);
    expect(existsSync(join(home, '.cache', 'irb', 'compile-cache'))).toBe(true);
  });

  it('boot --help, the README and the code agree on the memory default', async () => {
    const help = await runCli(['boot', '--help']);
    expect(help.stdout).toMatch(/default: what the archive needs to unpack \+ 256, at\s+least 512\)/);
    const readme = await readFile(join(repoRoot, 'apps/cli/README.md'), 'utf8');
    expect(readme).toContain(
      '`--memory` defaults to what the archive needs to unpack plus 256 MiB, and at least 512 MiB.',
    );
    expect(defaultMemoryMiB(0)).toBe(512);
    expect(defaultMemoryMiB(300)).toBe(556);
  });

  it('unknown commands and flags get a "did you mean", exit 2', async () => {
    const command = await runCli(['buidl', image]);
    expect(command.code).toBe(2);
    expectOneLine(
      command.stderr,
      /^irb: error: unknown command "buidl" \(did you mean "build"\?\); see "irb --help"$/,
    );
    const flag = await runCli(['build', image, '--exlude', '/usr/**', '-o', join(dir, 'typo.gz')]);
    expect(flag.code).toBe(2);
    expectOneLine(
      flag.stderr,
      /unknown option "--exlude" \(did you mean --exclude\?\); see "irb build --help"$/,
    );
    expect(existsSync(join(dir, 'typo.gz'))).toBe(false);
    const help = await runCli(['help', 'bot']);
    expect(help.code).toBe(2);
    expectOneLine(help.stderr, /no help for "bot" \(did you mean "boot"\?\)/);
  });

  it('a relative --inject DEST is refused before anything is pulled', async () => {
    const agent = join(dir, 'agent');
    await writeFile(agent, '#!/bin/sh\n');
    const sub = await mkdtemp(join(dir, 'inject-'));
    const result = await runCli([
      'build',
      image,
      '--inject',
      `${agent}:usr/bin/agent`,
      '-o',
      join(sub, 'x.gz'),
    ]);
    expect(result.code).toBe(2);
    expectOneLine(
      result.stderr,
      /DEST must be an absolute path in the image, e\.g\. .*agent:\/usr\/bin\/agent/,
    );
    expect(await filesIn(sub)).toEqual([]);
  });

  it('a missing --inject source and an output directory that does not exist are usage errors (exit 2)', async () => {
    const sub = await mkdtemp(join(dir, 'bad-values-'));
    const inject = await runCli([
      'build',
      image,
      '-q',
      '--inject',
      '/nonexistent:/x',
      '-o',
      join(sub, 'x.gz'),
    ]);
    expect(inject.code).toBe(2);
    expectOneLine(inject.stderr, /^irb: error: --inject \/nonexistent:\/x: \/nonexistent does not exist/);
    const output = await runCli(['build', image, '-q', '-o', join(sub, 'no/such/dir/x.gz')]);
    expect(output.code).toBe(2);
    expectOneLine(output.stderr, /^irb: error: cannot write the output .*no\/such\/dir\/x\.gz/);
    expect(await filesIn(sub)).toEqual([]);
  });

  it('--platform arm64 means linux/arm64', async () => {
    const ref = `${registry.host}/multi/app:v2`;
    const inspected = await runCli(['inspect', ref, '--platform', 'arm64', '--json']);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(JSON.parse(inspected.stdout).platform).toBe('linux/arm64/v8');
    // The arm64 image has no shell for a generated /init; a file stands in for its own init.
    const init = join(dir, 'arm-init');
    await writeFile(init, 'stand-in for a static arm64 init');
    const built = await runCli([
      'build',
      ref,
      '--platform',
      'arm64',
      '--init',
      init,
      '-o',
      join(dir, 'arm.cpio'),
      '--json',
    ]);
    expect(built.code, built.stderr).toBe(0);
    expect(JSON.parse(built.stdout)).toMatchObject({ platform: 'linux/arm64/v8', compression: 'none' });
  });

  it('an arm64 build whose program is an x86_64 ELF fails in one line naming --allow-arch-mismatch; with it, a warning', async () => {
    const layer = await busyboxLayer();
    const runtime = { Env: ['PATH=/bin'], Cmd: ['/bin/sh', '-c', 'echo hi'] };
    const variant = (architecture: string) =>
      buildImage({ layers: [layer], runtime, platform: { os: 'linux', architecture } });
    await pushImage(registry, 'multi/broken', 'v1', buildIndex([variant('amd64'), variant('arm64')]));
    const ref = `${registry.host}/multi/broken:v1`;
    const out = join(dir, 'broken.cpio.gz');
    const refused = await runCli(['build', ref, '--platform', 'arm64', '-o', out, '--no-cache', '-q']);
    expect(refused.code).toBe(1);
    expectOneLine(
      refused.stderr,
      /^irb: error: the image's command "\/bin\/sh" \(\/bin\/busybox\) is built for amd64, but the image is arm64: the arm64 kernel cannot run it \(exit 126 at boot\); build another --platform of the image or fix the image, or set --allow-arch-mismatch to build anyway$/,
    );
    expect(existsSync(out)).toBe(false);
    const allowed = await runCli([
      'build',
      ref,
      '--platform',
      'arm64',
      '-o',
      out,
      '--no-cache',
      '--allow-arch-mismatch',
      '--json',
    ]);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(JSON.parse(allowed.stdout).warnings).toEqual([
      'the image\'s command "/bin/sh" (/bin/busybox) is built for amd64, but the image is arm64: the arm64 kernel cannot run it (exit 126 at boot); built anyway, as --allow-arch-mismatch is set',
    ]);
  });

  it('inspect --json and build --json share one vocabulary; inspect carries User and Env', async () => {
    const inspected = await runCli(['inspect', image, '--json']);
    expect(inspected.code, inspected.stderr).toBe(0);
    const info = JSON.parse(inspected.stdout);
    expect(info).not.toHaveProperty('digest');
    expect(info.config).toMatchObject({
      Entrypoint: null,
      Cmd: ['/bin/sh', '-c', 'echo hi'],
      Env: ['PATH=/bin'],
      WorkingDir: '/',
      User: 'root',
    });
    const built = await runCli(['build', image, '-o', join(dir, 'vocab.cpio.gz'), '--json', '--no-cache']);
    const summary = JSON.parse(built.stdout);
    expect(info.manifestDigest).toBe(summary.manifestDigest);
    expect(info.configDigest).toBe(summary.configDigest);
    const text = await runCli(['inspect', image]);
    expect(text.stdout).toContain(`manifest  ${summary.manifestDigest}\n`);
    expect(text.stdout).toContain('  User        root\n');
    const multi = JSON.parse((await runCli(['inspect', `${registry.host}/multi/app:v2`, '--json'])).stdout);
    expect(multi.indexDigest).toMatch(/^sha256:/);
    expect(multi.platforms[0]).toEqual({ platform: 'linux/amd64', manifestDigest: multi.manifestDigest });
  });

  it('with -o - --json, stdout is the archive and stderr is nothing but the JSON summary', async () => {
    const file = join(dir, 'same.cpio.zst');
    expect((await runCli(['build', image, '-o', file, '-q'])).code).toBe(0);
    const piped = await runCli(['build', image, '-c', 'zstd', '-o', '-', '--json']);
    expect(piped.code, piped.stderr).toBe(0);
    expect(Buffer.compare(Buffer.from(piped.stdoutBytes), await readFile(file))).toBe(0);
    const summary = JSON.parse(piped.stderr);
    expect(summary).toMatchObject({
      output: '-',
      compression: 'zstd',
      compressedBytes: piped.stdoutBytes.byteLength,
    });
    expect(piped.stderr.endsWith('}\n')).toBe(true);
  });

  it('irb build … -o - | irb ls - lists what was built', async () => {
    const file = join(dir, 'listed.cpio.gz');
    expect((await runCli(['build', image, '-o', file, '-q'])).code).toBe(0);
    const cli = cliCommand.map(shellQuote).join(' ');
    const piped = await runProgram('bash', [
      '-c',
      `set -o pipefail; ${cli} build ${shellQuote(image)} -o - -q | ${cli} ls -`,
    ]);
    expect(piped.code, piped.stderr).toBe(0);
    const fromFile = await runCli(['ls', file]);
    expect(piped.stdout).toBe(fromFile.stdout);
    expect(piped.stdout).toMatch(/ init\n/);
    const bytes = await readFile(file);
    const fed = await runCli(['ls', '-', '--json'], { input: bytes });
    expect(fed.code, fed.stderr).toBe(0);
    expect(
      fed.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).name),
    ).toContain('dev/console');
    const garbage = await runCli(['ls', '-'], { input: 'not an archive at all, just text\n' });
    expect(garbage.code).toBe(1);
    expectOneLine(garbage.stderr, /the input stream/);
  });

  it('the -o ending decides the compression, and a contradicting -c is refused', async () => {
    const sub = await mkdtemp(join(dir, 'ext-'));
    const zst = join(sub, 'x.cpio.zst');
    const built = await runCli(['build', image, '-o', zst, '--json']);
    expect(built.code, built.stderr).toBe(0);
    expect(JSON.parse(built.stdout).compression).toBe('zstd');
    expect([...(await readFile(zst)).subarray(0, 4)]).toEqual([0x28, 0xb5, 0x2f, 0xfd]);
    await run('sh', ['-c', `zstd -dc ${shellQuote(zst)} | cpio -it --quiet >/dev/null`]);
    const plain = join(sub, 'x.cpio');
    expect((await runCli(['build', image, '-o', plain, '-q'])).code).toBe(0);
    expect((await readFile(plain)).subarray(0, 6).toString()).toBe('070701');
    const mismatch = await runCli(['build', image, '-o', join(sub, 'y.cpio.zst'), '-c', 'gzip']);
    expect(mismatch.code).toBe(2);
    expectOneLine(
      mismatch.stderr,
      /-o .*y\.cpio\.zst names zstd but -c gzip was given; drop -c or rename the output/,
    );
    const lz4 = join(sub, 'x.cpio.lz4');
    const legacy = await runCli(['build', image, '-o', lz4, '--json']);
    expect(legacy.code, legacy.stderr).toBe(0);
    expect(JSON.parse(legacy.stdout).compression).toBe('lz4');
    // The kernel's legacy lz4 format, which the lz4 tool reads too.
    expect([...(await readFile(lz4)).subarray(0, 4)]).toEqual([0x02, 0x21, 0x4c, 0x18]);
    await run('sh', ['-c', `lz4 -dc ${shellQuote(lz4)} | cpio -it --quiet >/dev/null`]);
    const xz = await runCli(['build', image, '-o', join(sub, 'y.cpio.xz')]);
    expect(xz.code).toBe(2);
    expectOneLine(xz.stderr, /irb does not write xz; name the file \.gz, \.zst, \.lz4 or \.cpio/);
    expect(await filesIn(sub)).toEqual(['x.cpio', 'x.cpio.lz4', 'x.cpio.zst']);
  });

  it('a cache directory that cannot be created names --cache-dir and --no-cache, not library options', async () => {
    const sub = await mkdtemp(join(dir, 'cache-'));
    // A private regular file where the cache directory's parent should be.
    const blocker = join(sub, 'not-a-directory');
    await writeFile(blocker, 'x');
    const result = await runCli(
      ['build', image, '--cache-dir', join(blocker, 'blobs'), '-o', join(sub, 'x.gz')],
      {
        timeoutMs: 60_000,
      },
    );
    expect(result.code, result.stderr).toBe(1);
    const line = result.stderr.trimEnd().split('\n').at(-1)!;
    expect(line).toMatch(/^irb: error: .*--cache-dir/);
    expect(line).toContain('--no-cache');
    expect(line).not.toMatch(/cacheDir|`|free space|IRB_CACHE_DIR \//);
    expect(await filesIn(sub)).toEqual(['not-a-directory']);
  });
});
