import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DebianPythonImage, ensureDebianPythonImage } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filesIn, runCli } from './harness.ts';

// The cached Debian bookworm minbase + python3 image (three layers, whiteouts, opaque
// directories, hard links), built once by the test harness with debootstrap and umoci.
describe('a real distribution image: Debian minbase + python3', () => {
  let fixture: DebianPythonImage;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-debian-'));
    fixture = await ensureDebianPythonImage();
  }, 900_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('builds from the OCI layout and boots into its Python program', async () => {
    const out = join(dir, 'python.cpio.gz');
    const script = join(dir, 'extra.py');
    await writeFile(
      script,
      'import os, sys\nprint("extra-script:", sys.version.split()[0], os.getcwd(), os.getuid(), flush=True)\n',
    );
    const built = await runCli([
      'build',
      fixture.ref,
      '-o',
      out,
      '--inject',
      `${script}:/opt/extra.py`,
      '--exclude',
      '/usr/share/locale/**',
      '--exclude',
      'usr/share/zoneinfo',
      '--json',
    ]);
    expect(built.code, built.stderr).toBe(0);
    const summary = JSON.parse(built.stdout);
    expect(summary.excluded).toBeGreaterThan(0);
    expect(summary.entries).toBeGreaterThan(1000);
    const booted = await runCli([
      'boot',
      out,
      '--memory',
      String(Math.max(1024, summary.recommendedMemoryMiB + 256)),
      '--timeout',
      '300',
    ]);
    expect(booted.code, booted.stdout.slice(-3000) + booted.stderr).toBe(0);
    expect(booted.stdout).toContain(fixture.marker);
    expect(booted.stdout).toContain('irb: exit status 0');
    expect(booted.stdout).not.toContain('Initramfs unpacking failed');
  }, 600_000);

  it('Ctrl-C during packing stops the build and leaves no file behind', async () => {
    const sub = await mkdtemp(join(dir, 'sigint-'));
    const result = await runCli(['build', fixture.ref, '-o', join(sub, 'x.cpio.gz'), '--level', '9'], {
      interruptWhen: (stderr) => stderr.includes('packing'),
    });
    expect(result.code, result.stderr).toBe(130);
    expect(result.stderr.trimEnd().split('\n').at(-1)).toBe('irb: interrupted; nothing was written');
    expect(await filesIn(sub)).toEqual([]);
  }, 600_000);
});
