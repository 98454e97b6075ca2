import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  buildImage,
  buildIndex,
  buildTar,
  pushImage,
  type StartedRegistry,
  startRegistry,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, filesIn, runCli } from './harness.ts';

const run = promisify(execFile);

/** An error the CLI printed: exactly one line, in the documented form, after any progress lines. */
function expectOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  const errors = lines.filter((l) => l.startsWith('irb: '));
  expect(errors, stderr).toHaveLength(1);
  expect(lines.at(-1)).toBe(errors[0]);
  expect(errors[0]).toMatch(/^irb: error: /);
  expect(errors[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('irb CLI against a real registry (no VM)', () => {
  let registry: StartedRegistry;
  let locked: StartedRegistry;
  let dir: string;
  let image: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-cli-'));
    [registry, locked] = await Promise.all([
      startRegistry(),
      startRegistry({ auth: { htpasswd: { user: 'alice', pass: 'right-password' } } }),
    ]);
    const layer = await busyboxLayer();
    const runtime = { Env: ['PATH=/bin'], Cmd: ['/bin/sh', '-c', 'echo hi'] };
    await pushImage(registry, 'tools/busybox', 'v1', buildImage({ layers: [layer], runtime }));
    await pushImage(locked, 'private/busybox', 'v1', buildImage({ layers: [layer], runtime }));
    const arm = buildImage({
      layers: [await buildTar([{ type: 'file', path: 'arch', content: 'arm64' }])],
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      runtime: { Cmd: ['/arch'], User: '1000:1000' },
    });
    await pushImage(registry, 'multi/app', 'v2', buildIndex([buildImage({ layers: [layer], runtime }), arm]));
    image = `${registry.host}/tools/busybox:v1`;
  });

  afterAll(async () => {
    await Promise.all([registry?.stop(), locked?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('prints version and help', async () => {
    const v = await runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^irb \d+\.\d+\.\d+/);
    const h = await runCli(['build', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('Usage: irb build IMAGE');
  });

  it('builds, then lists the archive like lsinitramfs', async () => {
    const out = join(dir, 'ok.cpio.gz');
    const built = await runCli(['build', image, '-o', out, '--no-cache', '--json']);
    expect(built.code, built.stderr).toBe(0);
    const summary = JSON.parse(built.stdout);
    expect(Object.keys(summary)).toEqual([
      'output',
      'image',
      'manifestDigest',
      'configDigest',
      'platform',
      'compression',
      'init',
      'initKind',
      'command',
      'entries',
      'excluded',
      'filtered',
      'uncompressedBytes',
      'compressedBytes',
      'unpackedBytes',
      'recommendedMemoryMiB',
      'lostXattrs',
      'warnings',
      'durationMs',
    ]);
    expect(summary).toMatchObject({
      output: out,
      platform: 'linux/amd64',
      compression: 'gzip',
      init: 'generated',
    });
    expect(summary.recommendedMemoryMiB).toBeGreaterThan((2 * summary.unpackedBytes) / 2 ** 20);
    // gzip -t and GNU cpio agree with what irb ls shows of both members (there is no trailer
    // between them for GNU cpio to stop at); the overlay member brings /init.
    await run('gzip', ['-t', out]);
    const { stdout: gnu } = await run('sh', ['-c', `gzip -dc '${out}' | cpio -it --quiet`]);
    const ls = await runCli(['ls', out]);
    expect(ls.code).toBe(0);
    const [baseListing = '', overlayListing = ''] = ls.stdout.split('--- archive member 2\n');
    expect(overlayListing).toMatch(/ init$/m);
    const names = `${baseListing}${overlayListing}`
      .trimEnd()
      .split('\n')
      .map((l) => l.replace(/^.*? \d{4}-\d\d-\d\d \d\d:\d\d /, '').replace(/ -> .*/, ''));
    expect(names).toEqual(gnu.trimEnd().split('\n'));
    expect(ls.stdout).toMatch(/^-rwxr-xr-x +1 0 +0 +\d+ \S+ \S+ init$/m);
    expect(ls.stdout).toMatch(/^crw------- +1 0 +0 +5, 1 \S+ \S+ dev\/console$/m);
    expect(ls.stdout).toMatch(/^lrwxrwxrwx .* bin\/sh -> busybox$/m);
    expect(ls.stdout).toMatch(/^drwxr-xr-x .* home\/app$/m);
  });

  it('writes the archive to stdout with -o - and the summary to stderr', async () => {
    const file = join(dir, 'file.cpio.zst');
    expect((await runCli(['build', image, '-c', 'zstd', '-o', file, '-q'])).code).toBe(0);
    // --verbose says once which zstd library wrote the bytes (they depend on it).
    const verbose = await runCli(['build', image, '-c', 'zstd', '-o', join(dir, 'v.cpio.zst'), '--verbose']);
    expect(verbose.code, verbose.stderr).toBe(0);
    expect(verbose.stderr.match(/^irb: zstd backend: (zstd-napi|node:zlib)$/gm)).toHaveLength(1);
    const piped = await runCli(['build', image, '-c', 'zstd', '-o', '-', '--json']);
    expect(piped.code, piped.stderr).toBe(0);
    expect(Buffer.compare(Buffer.from(piped.stdoutBytes), await readFile(file))).toBe(0);
    expect(JSON.parse(piped.stderr.slice(piped.stderr.indexOf('{')))).toMatchObject({
      output: '-',
      compressedBytes: piped.stdoutBytes.byteLength,
    });
  });

  it('lists an archive of two concatenated members (gzip + plain) with both members', async () => {
    const first = join(dir, 'first.cpio.gz');
    expect((await runCli(['build', image, '-o', first, '-q'])).code).toBe(0);
    const extra = join(dir, 'extra');
    await run('sh', ['-c', `mkdir -p '${extra}/opt' && echo x > '${extra}/opt/extra.txt'`]);
    const both = join(dir, 'both.cpio');
    await run('sh', [
      '-c',
      `cat '${first}' > '${both}' && (cd '${extra}' && printf 'opt\\nopt/extra.txt\\n' | cpio -o -H newc --quiet | zstd -q) >> '${both}'`,
    ]);
    const ls = await runCli(['ls', both]);
    expect(ls.code, ls.stderr).toBe(0);
    // irb's two members (the image, then /init), then the appended one.
    expect(ls.stdout).toContain('--- archive member 3\n');
    expect(ls.stdout).toMatch(/opt\/extra\.txt\n$/);
    expect(ls.stdout.indexOf('init\n')).toBeLessThan(ls.stdout.indexOf('--- archive member 3'));
  });

  it('inspects a multi-platform image and selects a platform', async () => {
    const ref = `${registry.host}/multi/app:v2`;
    const all = await runCli(['inspect', ref]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/^ {2}\* linux\/amd64 +sha256:/m);
    expect(all.stdout).toMatch(/^ {4}linux\/arm64\/v8 +sha256:/m);
    const arm = await runCli(['inspect', ref, '--platform', 'linux/arm64', '--json']);
    expect(arm.code, arm.stderr).toBe(0);
    const info = JSON.parse(arm.stdout);
    expect(info.platform).toBe('linux/arm64/v8');
    expect(info.config).toMatchObject({ Cmd: ['/arch'], User: '1000:1000' });
    expect(info.platforms).toHaveLength(2);
    // The same index copied into an OCI layout lists the same platforms.
    const layout = join(dir, 'multi-layout');
    await run('skopeo', [
      'copy',
      '--quiet',
      '--all',
      '--src-tls-verify=false',
      `docker://${ref}`,
      `oci:${layout}:v2`,
    ]);
    const fromLayout = await runCli([
      'inspect',
      `oci:${layout}:v2`,
      '--platform',
      'linux/arm64/v8',
      '--json',
    ]);
    expect(fromLayout.code, fromLayout.stderr).toBe(0);
    const layoutInfo = JSON.parse(fromLayout.stdout);
    expect(layoutInfo.platforms.map((p: { platform: string }) => p.platform).sort()).toEqual([
      'linux/amd64',
      'linux/arm64/v8',
    ]);
    expect(layoutInfo.platform).toBe('linux/arm64/v8');
    const layers = await runCli(['list-layers', ref, '--json']);
    expect(JSON.parse(layers.stdout)[0].digest).toMatch(/^sha256:/);
  });

  it('reads the same image from a docker save archive and an OCI layout', async () => {
    const archive = join(dir, 'busybox.tar');
    const layout = join(dir, 'layout');
    await run('skopeo', [
      'copy',
      '--quiet',
      '--src-tls-verify=false',
      `docker://${image}`,
      `docker-archive:${archive}:tools/busybox:v1`,
    ]);
    await run('skopeo', [
      'copy',
      '--quiet',
      '--src-tls-verify=false',
      `docker://${image}`,
      `oci:${layout}:v1`,
    ]);
    const fromArchive = await runCli([
      'build',
      `docker-archive:${archive}`,
      '-o',
      join(dir, 'da.cpio'),
      '-c',
      'none',
      '--json',
    ]);
    expect(fromArchive.code, fromArchive.stderr).toBe(0);
    const fromLayout = await runCli([
      'build',
      `oci:${layout}:v1`,
      '-o',
      join(dir, 'oci.cpio'),
      '-c',
      'none',
      '--json',
    ]);
    expect(fromLayout.code, fromLayout.stderr).toBe(0);
    const fromRegistry = await runCli(['build', image, '-o', join(dir, 'reg.cpio'), '-c', 'none', '--json']);
    // Same layers and config, so the same archive, whatever the source.
    const a = JSON.parse(fromArchive.stdout);
    const b = JSON.parse(fromLayout.stdout);
    const c = JSON.parse(fromRegistry.stdout);
    expect(a.configDigest).toBe(c.configDigest);
    expect(b.manifestDigest).toBe(c.manifestDigest);
    const { stdout: same } = await run('sh', [
      '-c',
      `cmp '${join(dir, 'oci.cpio')}' '${join(dir, 'reg.cpio')}' && cmp '${join(dir, 'da.cpio')}' '${join(dir, 'reg.cpio')}' && echo same`,
    ]);
    expect(same.trim()).toBe('same');
  });

  // A usage error or a bad value exits 2: also a value the library refuses (a path that does not
  // exist or cannot be written); a failure of the work (an image that is not there) exits 1.
  describe('bad inputs: one clear line, the right exit code, no output file', () => {
    const cases: Array<{ name: string; args: (out: string) => string[]; code: number; message: RegExp }> = [
      {
        name: 'unknown image',
        args: (out) => ['build', `${registry.host}/no/such:image`, '-o', out],
        code: 1,
        message: /no\/such/,
      },
      {
        name: 'wrong platform',
        args: (out) => ['build', image, '--platform', 'linux/s390x', '-o', out],
        code: 1,
        message: /linux\/s390x/,
      },
      {
        name: 'wrong password',
        args: (out) => ['build', `${locked.host}/private/busybox:v1`, '-o', out],
        code: 1,
        message: /(denied|unauthori[sz]ed|credentials|password|401)/i,
      },
      {
        name: 'unwritable output',
        args: () => ['build', image, '-o', '/proc/irb-out.cpio.gz'],
        code: 2,
        message: /cannot write the output .*-o FILE/,
      },
      {
        name: 'output in a missing directory',
        args: (out) => ['build', image, '-o', join(out, 'missing', 'x.cpio.gz')],
        code: 2,
        message: /directory does not exist/,
      },
      {
        name: 'bad compression',
        args: (out) => ['build', image, '-c', 'xz', '-o', out],
        code: 2,
        message: /-c must be/,
      },
      {
        name: 'bad level',
        args: (out) => ['build', image, '--level', '42', '-o', out],
        code: 2,
        message: /--level/,
      },
      {
        name: 'unknown flag',
        args: (out) => ['build', image, '--frob', '-o', out],
        code: 2,
        message: /--frob/,
      },
      {
        name: 'missing --init file',
        args: (out) => ['build', image, '--init', '/no/such/init', '-o', out],
        code: 2,
        message: /--init \/no\/such\/init: .*does not exist/,
      },
      {
        name: 'missing --inject source',
        args: (out) => ['build', image, '--inject', '/no/agent:/usr/bin/agent', '-o', out],
        code: 2,
        message: /\/no\/agent/,
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const sub = await mkdtemp(join(dir, 'bad-'));
        const out = join(sub, 'out.cpio.gz');
        const env =
          c.name === 'wrong password'
            ? { [`IRB_AUTH_${locked.host.replace(/[.:]/g, '_')}`]: 'alice:s3cr3t-wrong-pw' }
            : {};
        const result = await runCli(c.args(c.name === 'output in a missing directory' ? sub : out), { env });
        expect(result.code, result.stderr).toBe(c.code);
        expectOneLineError(result.stderr, c.message);
        expect(result.stderr).not.toContain('s3cr3t-wrong-pw');
        expect(await filesIn(sub)).toEqual([]);
      });
    }

    it('--verbose adds the cause chain', async () => {
      const result = await runCli([
        'build',
        `${registry.host}/no/such:image`,
        '-o',
        join(dir, 'v.gz'),
        '--verbose',
      ]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^ {2}code: IRB_/m);
    });
  });

  it('--keychain loads a custom auth package and asks it first', async () => {
    const module = join(dir, 'acme-keychain.mjs');
    await writeFile(
      module,
      [
        'export function createKeychain() {',
        '  return {',
        "    name: 'acme',",
        '    async resolve({ registry }) {',
        `      return registry === ${JSON.stringify(locked.host)}`,
        "        ? { kind: 'basic', username: 'alice', password: 'right-password' }",
        '        : undefined;',
        '    },',
        '  };',
        '}',
        'export const broken = 42;',
      ].join('\n'),
    );
    const locked1 = `${locked.host}/private/busybox:v1`;
    const without = await runCli(['list-layers', locked1]);
    expect(without.code).toBe(1);
    const listed = await runCli(['list-layers', locked1, '--keychain', module, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toHaveLength(1);
    const out = join(dir, 'acme.cpio.gz');
    const built = await runCli(['build', locked1, '--keychain', module, '-o', out, '--no-cache', '-q']);
    expect(built.code, built.stderr).toBe(0);
    expect((await readFile(out)).length).toBeGreaterThan(0);
    // A --keychain that is not a keychain is a bad value: exit 2.
    const wrongExport = await runCli(['inspect', locked1, '--keychain', `${module}#broken`]);
    expect(wrongExport.code).toBe(2);
    expectOneLineError(wrongExport.stderr, /keychain module .*#broken: broken is not a Keychain/);
    const missing = await runCli(['inspect', locked1, '--keychain', './no-such-keychain.mjs']);
    expect(missing.code).toBe(2);
    expectOneLineError(missing.stderr, /keychain module \.\/no-such-keychain\.mjs: cannot be loaded/);
  });

  it('an image that has its own /init is refused unless asked', async () => {
    const layer = await busyboxLayer([
      { type: 'file', path: 'init', content: '#!/bin/sh\necho own\n', mode: 0o755 },
    ]);
    await pushImage(
      registry,
      'tools/own-init',
      'v1',
      buildImage({ layers: [layer], runtime: { Cmd: ['/bin/sh'] } }),
    );
    const ref = `${registry.host}/tools/own-init:v1`;
    const sub = await mkdtemp(join(dir, 'own-'));
    const refused = await runCli(['build', ref, '-o', join(sub, 'a.gz')]);
    expect(refused.code).toBe(1);
    expectOneLineError(refused.stderr, /--replace-init/);
    expect(await filesIn(sub)).toEqual([]);
    const kept = await runCli(['build', ref, '-o', join(sub, 'kept.gz'), '--keep-init', '--json']);
    expect(JSON.parse(kept.stdout).init).toBe('image');
    const replaced = await runCli([
      'build',
      ref,
      '-o',
      join(sub, 'replaced.gz'),
      '--replace-init',
      '--init-kind',
      'sh',
      '--json',
    ]);
    expect(JSON.parse(replaced.stdout)).toMatchObject({ init: 'generated', initKind: 'sh' });
    // The image's /init stays in the base member; the generated one comes in the overlay member,
    // which the kernel unpacks last (GNU cpio reads both members and prints both, in that order).
    const { stdout: both } = await run('sh', [
      '-c',
      `gzip -dc '${join(sub, 'replaced.gz')}' | cpio -i --to-stdout --quiet init`,
    ]);
    expect(both).toMatch(/^#!\/bin\/sh\necho own\n#!\/bin\/sh\n# \/init generated by irb/);
    const ls = await runCli(['ls', join(sub, 'replaced.gz')]);
    expect(ls.stdout.split('--- archive member 2\n')[1]).toMatch(/ init$/m);
    const { stdout: count } = await run('sh', [
      '-c',
      `gzip -dc '${join(sub, 'replaced.gz')}' | grep -ac 'generated by irb' || true`,
    ]);
    expect(Number(count)).toBeGreaterThan(0);
  });

  it('an image without a shell gets the static /init; the sh /init asks for --init', async () => {
    const layer = await buildTar([{ type: 'file', path: 'app', content: 'x', mode: 0o755 }]);
    await pushImage(
      registry,
      'tools/no-shell',
      'v1',
      buildImage({ layers: [layer], runtime: { Cmd: ['/app'] } }),
    );
    const sub = await mkdtemp(join(dir, 'noshell-'));
    const ref = `${registry.host}/tools/no-shell:v1`;
    const refused = await runCli(['build', ref, '--init-kind', 'sh', '-o', join(sub, 'x.gz')]);
    expect(refused.code).toBe(1);
    expectOneLineError(refused.stderr, /no \/bin\/sh.*--init\b/);
    expect(refused.stderr).not.toContain('`');
    expect(await filesIn(sub)).toEqual([]);
    const generated = await runCli(['build', ref, '-o', join(sub, 'static.gz'), '--json']);
    expect(generated.code, generated.stderr).toBe(0);
    expect(JSON.parse(generated.stdout)).toMatchObject({ init: 'generated', initKind: 'static' });
    await rm(join(sub, 'static.gz'));
    const init = join(dir, 'static-init');
    await writeFile(init, 'not really a program');
    await chmod(init, 0o755);
    const ok = await runCli([
      'build',
      `${registry.host}/tools/no-shell:v1`,
      '-o',
      join(sub, 'x.gz'),
      '--init',
      init,
      '-q',
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await filesIn(sub)).toEqual(['x.gz']);
  });
});
