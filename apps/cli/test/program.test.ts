// The flags that make an archive's program hear the host, through the real CLI process: kernel
// modules, the network and docker-run overrides on build and append, `irb config` reading back
// what the archive runs, and each bad input as exit 2 with one line and no output left behind.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findKernel } from '@irb/builder';
import {
  buildImage,
  kernelModulesDir,
  pushImage,
  type StartedRegistry,
  startRegistry,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, runCli } from './harness.ts';

describe('irb build/append --modules --net --env …, and irb config', () => {
  let registry: StartedRegistry;
  let dir: string;
  let image: string;
  let modules: string;
  let cacheDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-cli-program-'));
    cacheDir = join(dir, 'cache');
    registry = await startRegistry();
    const runtime = { Env: ['PATH=/bin'], Cmd: ['/bin/sh', '-c', 'echo hi'] };
    await pushImage(registry, 'tools/busybox', 'v1', buildImage({ layers: [await busyboxLayer()], runtime }));
    image = `${registry.host}/tools/busybox:v1`;
    modules = (await kernelModulesDir(await findKernel())).dir;
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('builds with the modules, the network and the overrides; irb config shows them; append adds a job', async () => {
    const out = join(dir, 'agent.cpio.zst');
    const built = await runCli([
      'build',
      image,
      '-o',
      out,
      '--cache-dir',
      cacheDir,
      '--kernel-modules',
      modules,
      '--modules',
      'net',
      '--net',
      '10.0.2.15/24,gw=10.0.2.2',
      '--entrypoint',
      '/bin/busybox',
      '--cmd',
      'httpd',
      '--cmd',
      '-f',
      '--env',
      'MODE=agent',
      '--json',
    ]);
    expect(built.code, built.stderr).toBe(0);
    const summary = JSON.parse(built.stdout);
    expect(summary).toMatchObject({
      command: ['/bin/busybox', 'httpd', '-f'],
      net: '10.0.2.15::10.0.2.2:255.255.255.0:::off',
      modules: { names: expect.arrayContaining(['virtio_net', 'virtio_pci']) },
    });

    const config = await runCli(['config', out, '--json']);
    expect(config.code, config.stderr).toBe(0);
    expect(JSON.parse(config.stdout)).toMatchObject({
      init: 'static',
      entrypoint: ['/bin/busybox'],
      cmd: ['httpd', '-f'],
      env: ['PATH=/bin', 'MODE=agent', 'HOSTNAME=irb', 'HOME=/root'],
      modules: summary.modules.loadList,
      net: summary.net,
      jobs: [],
    });

    const job = join(dir, 'job.cpio.zst');
    const appended = await runCli([
      'append',
      out,
      '-o',
      job,
      '--env',
      'JOB=7',
      '--cmd',
      '-p',
      '--cmd',
      '8080',
    ]);
    expect(appended.code, appended.stderr).toBe(0);
    expect(appended.stdout).toMatch(/; job file \/irb\/job\.d\/\d{20}\.conf\n$/);
    // Text, from stdin.
    const shown = await runCli(['config', '-'], { input: await readFile(job) });
    expect(shown.code, shown.stderr).toBe(0);
    const lines = shown.stdout.trimEnd().split('\n');
    expect(lines).toContain('cmd         -p 8080');
    expect(lines).toContain('            JOB=7');
    expect(lines.at(-1)).toMatch(/^jobs {8}\/irb\/job\.d\/\d{20}\.conf: cmd -p 8080; env JOB=7$/);
  });

  it('refuses an unknown module (with the nearest names) and a tree without modules.dep: exit 2, one line, no output', async () => {
    const noDep = join(dir, 'nodep', '6.1.0-test');
    await mkdir(join(noDep, 'kernel'), { recursive: true });
    await copyFile(join(modules, 'kernel/drivers/net/virtio_net.ko'), join(noDep, 'kernel/virtio_net.ko'));
    const cases: Array<[string[], RegExp]> = [
      [
        ['--kernel-modules', modules, '--modules', 'net,virtio_nett'],
        /"virtio_nett" is no module.*did you mean virtio_net\?/,
      ],
      [['--kernel-modules', noDep, '--modules', 'net'], /no modules\.dep.*depmod/],
      [['--kernel-modules', join(dir, 'missing'), '--modules', 'net'], /--kernel-modules .* does not exist/],
    ];
    for (const [flags, pattern] of cases) {
      const out = join(dir, 'refused.cpio.gz');
      const result = await runCli(['build', image, '-o', out, '--cache-dir', cacheDir, '-q', ...flags]);
      expect(result.code, result.stderr).toBe(2);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^irb: error: /);
      expect(lines[0]).toMatch(pattern);
      expect(existsSync(out)).toBe(false);
    }
  });
});
