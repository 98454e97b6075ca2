// Every archive irb writes is read whole by the standard tools: a real image (Debian minbase +
// python3, hard links included) from a real registry, built in every compression, then appended
// to once and twice. GNU cpio (after zcat, zstd -dc or lz4 -dc), bsdtar and Debian's lsinitramfs
// each list exactly what `irb ls` lists, and the kernel boots the twice-appended archive.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureDebianPythonImage, pushOciLayout, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './harness.ts';

const run = promisify(execFile);
type Format = 'gzip' | 'zstd' | 'lz4' | 'none';

const DECODE: Record<Format, string> = {
  gzip: 'zcat',
  zstd: 'zstd -dcq',
  lz4: 'lz4 -dcq',
  none: 'cat',
};

/** Lines a shell command prints (its exit status and complaints returned too). */
async function lines(command: string): Promise<{ lines: string[]; code: number; stderr: string }> {
  try {
    const { stdout, stderr } = await run('bash', ['-o', 'pipefail', '-c', command], { maxBuffer: 256 << 20 });
    return { lines: stdout.trimEnd().split('\n'), code: 0, stderr };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { lines: e.stdout.trimEnd().split('\n'), code: e.code, stderr: e.stderr };
  }
}

describe('the standard tools read every archive irb writes, built and appended', () => {
  let registry: StartedRegistry;
  let dir: string;
  let image: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-standard-tools-'));
    registry = await startRegistry();
    const fixture = await ensureDebianPythonImage();
    image = await pushOciLayout({
      layoutDir: fixture.layoutDir,
      tag: fixture.tag,
      registry: registry.host,
      repository: 'fixtures/debian-python',
    });
    await writeFile(join(dir, 'job1'), 'first-job\n');
    await writeFile(join(dir, 'job2'), 'second-job\n');
    // The second append's /init: what the guest sees of both appended members, then power off.
    await writeFile(
      join(dir, 'init'),
      [
        '#!/bin/sh',
        'mount -t proc proc /proc',
        'echo "IRB-JOBS $(cat /opt/job1) $(cat /opt/job2) $(test -x /usr/bin/python3 && echo python3)"',
        'echo o > /proc/sysrq-trigger',
        '',
      ].join('\n'),
    );
  }, 900_000);
  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  for (const format of ['gzip', 'zstd', 'lz4', 'none'] as const) {
    it(`${format}: cpio, bsdtar and lsinitramfs list what irb ls lists; the kernel boots it`, async () => {
      const built = join(dir, `built.${format}`);
      const once = join(dir, `once.${format}`);
      const twice = join(dir, `twice.${format}`);
      const build = await runCli(['build', image, '-o', built, '-c', format, '--no-cache', '-q']);
      expect(build.code, build.stderr).toBe(0);
      const first = await runCli(['append', built, '-o', once, '--inject', `${join(dir, 'job1')}:/opt/job1`]);
      expect(first.code, first.stderr).toBe(0);
      const second = await runCli([
        'append',
        once,
        '-o',
        twice,
        '--inject',
        `${join(dir, 'job2')}:/opt/job2`,
        '--init',
        join(dir, 'init'),
      ]);
      expect(second.code, second.stderr).toBe(0);

      for (const path of [built, once, twice]) {
        const listed = await runCli(['ls', '--json', path]);
        expect(listed.code, listed.stderr).toBe(0);
        const names = listed.stdout
          .trimEnd()
          .split('\n')
          .map((l) => (JSON.parse(l) as { name: string }).name);
        expect(names.length).toBeGreaterThan(1000);
        const cpio = await lines(`${DECODE[format]} '${path}' | cpio -it --quiet`);
        expect(cpio.code, cpio.stderr).toBe(0);
        expect(cpio.lines, `cpio ${path}`).toEqual(names);
        const bsdtar = await lines(`bsdtar -tf '${path}'`);
        expect(bsdtar.code, bsdtar.stderr).toBe(0);
        expect(bsdtar.lines, `bsdtar ${path}`).toEqual(names);
        // lsinitramfs walks uncompressed records with a few `dd` runs per header (about two
        // minutes for this image): for `none`, the twice-appended archive only, which holds the
        // built one.
        if (format !== 'none' || path === twice) {
          const lsinitramfs = await lines(`lsinitramfs '${path}'`);
          // On an all-uncompressed archive lsinitramfs lists everything, then runs cpio on the
          // empty compressed part it expects after the uncompressed ones (as for `cpio -o` output).
          if (format === 'none') expect(lsinitramfs.stderr.trim()).toBe('cpio: premature end of archive');
          else expect(lsinitramfs.code, lsinitramfs.stderr).toBe(0);
          expect(lsinitramfs.lines, `lsinitramfs ${path}`).toEqual(names);
        }
        if (format === 'gzip') expect((await lines(`gzip -t '${path}'`)).code).toBe(0);
        if (format === 'zstd') expect((await lines(`zstd -tq '${path}'`)).code).toBe(0);
        if (format === 'lz4') expect((await lines(`lz4 -tq '${path}'`)).code).toBe(0);
      }

      const booted = await runCli(['boot', twice, '--expect', 'IRB-JOBS', '--timeout', '400'], {
        timeoutMs: 500_000,
      });
      const context = booted.stdout.slice(-3000) + booted.stderr;
      expect(booted.code, context).toBe(0);
      expect(booted.stdout, context).toContain('IRB-JOBS first-job second-job python3');
      expect(booted.stdout).not.toContain('Initramfs unpacking failed');
    }, 900_000);
  }
});
