import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, buildTar, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, filesIn, runCli } from './harness.ts';

// Real kernel under QEMU (TCG): each boot takes seconds, so these run one after another.
describe('irb build + irb boot: images booted by a real kernel', () => {
  let registry: StartedRegistry;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-boot-'));
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('busybox image + injected agent + custom init: boots and prints the agent marker', async () => {
    await pushImage(
      registry,
      'demo/busybox',
      'latest',
      buildImage({ layers: [await busyboxLayer()], runtime: { Cmd: ['/bin/sh'] } }),
    );
    const agent = join(dir, 'agent');
    await writeFile(agent, '#!/bin/sh\necho "agent-marker-7f3: pid $$ uid $(id -u) kernel $(uname -r)"\n');
    await chmod(agent, 0o755);
    const init = join(dir, 'my-init');
    await writeFile(
      init,
      [
        '#!/bin/sh',
        'mount -t proc proc /proc',
        'echo "custom init running"',
        '/usr/bin/agent',
        'echo o > /proc/sysrq-trigger',
        'while :; do sleep 1; done',
        '',
      ].join('\n'),
    );
    const out = join(dir, 'agent.cpio.gz');
    const built = await runCli([
      'build',
      `${registry.host}/demo/busybox:latest`,
      '--inject',
      `${agent}:/usr/bin/agent`,
      '--init',
      init,
      '-o',
      out,
      '--json',
    ]);
    expect(built.code, built.stderr).toBe(0);
    expect(JSON.parse(built.stdout).init).toBe('file');
    const booted = await runCli(['boot', out, '--expect', 'agent-marker-7f3', '--timeout', '120']);
    expect(booted.code, booted.stdout + booted.stderr).toBe(0);
    expect(booted.stdout).toContain('custom init running');
    expect(booted.stdout).toMatch(/agent-marker-7f3: pid \d+ uid 0 kernel \d/);
  }, 300_000);

  it('generated /init runs Entrypoint + Cmd with Env, WorkingDir and User, then reports the status', async () => {
    const script = [
      'echo "probe: cwd=$(pwd) ids=$(id -u):$(id -g) groups=$(id -G)"',
      'echo "probe: args=[$0] [$1] [$2]"',
      'echo "probe: GREETING=[$GREETING] QUOTE=[$QUOTE] HOME=[$HOME] HOSTNAME=[$HOSTNAME] TERM=[$' +
        '{TERM-unset}]"',
      'echo "probe: mounts=$(while read -r _ m t _; do printf "%s:%s," "$m" "$t"; done < /proc/mounts)"',
      'echo "probe: console=$(ls -l /dev/console >/dev/null 2>&1 && echo yes)"',
      'exit 3',
    ].join('\n');
    const runtime = {
      Entrypoint: ['/bin/sh', '-c', script, 'arg zero'],
      Cmd: ['first one', "it's $(second)"],
      Env: ['PATH=/bin', 'GREETING=hello   spaced world', 'QUOTE=it\'s "quoted" $HOME `x`'],
      WorkingDir: '/srv/app data',
      User: 'app',
    };
    await pushImage(registry, 'demo/probe', 'v1', buildImage({ layers: [await busyboxLayer()], runtime }));
    const out = join(dir, 'probe.cpio.zst');
    const built = await runCli(['build', `${registry.host}/demo/probe:v1`, '-c', 'zstd', '-o', out, '-q']);
    expect(built.code, built.stderr).toBe(0);
    const booted = await runCli(['boot', out, '--timeout', '120']);
    // The program exits 3: the VM powers off, and `irb boot` fails with that status.
    expect(booted.code).toBe(1);
    expect(booted.stderr).toContain('the guest program exited with status 3');
    const o = booted.stdout;
    expect(o).toContain('probe: cwd=/srv/app data ids=1000:1000 groups=1000 44');
    expect(o).toContain("probe: args=[arg zero] [first one] [it's $(second)]");
    expect(o).toContain(
      `probe: GREETING=[hello   spaced world] QUOTE=[it's "quoted" $HOME \`x\`] HOME=[/home/app] HOSTNAME=[irb] TERM=[unset]`,
    );
    for (const m of [
      '/proc:proc',
      '/sys:sysfs',
      '/dev:devtmpfs',
      '/dev/pts:devpts',
      '/dev/shm:tmpfs',
      '/run:tmpfs',
      '/tmp:tmpfs',
    ]) {
      expect(o).toContain(`${m},`);
    }
    expect(o).toContain('probe: console=yes');
    expect(o).toContain('irb: exit status 3');
    expect(await filesIn(dir)).toContain('probe.cpio.zst');
  }, 300_000);

  it('--on-exit reboot ends the VM with a reboot (what Firecracker needs)', async () => {
    const runtime = { Cmd: ['/bin/sh', '-c', 'echo reboot-probe-ok'] };
    await pushImage(registry, 'demo/reboot', 'v1', buildImage({ layers: [await busyboxLayer()], runtime }));
    const out = join(dir, 'reboot.cpio');
    const built = await runCli([
      'build',
      `${registry.host}/demo/reboot:v1`,
      '-c',
      'none',
      '--on-exit',
      'reboot',
      '-o',
      out,
      '-q',
    ]);
    expect(built.code, built.stderr).toBe(0);
    const booted = await runCli(['boot', out, '--timeout', '120']);
    expect(booted.code, booted.stdout.slice(-2000) + booted.stderr).toBe(0);
    expect(booted.stdout).toContain('reboot-probe-ok\nirb: exit status 0');
    expect(booted.stdout).toMatch(/sysrq: Resetting|reboot: Restarting system/);
  }, 300_000);

  it('a kernel panic and an expected text that never comes fail the boot with a clear line', async () => {
    const layer = await buildTar([{ type: 'file', path: 'app', content: 'x', mode: 0o755 }]);
    await pushImage(registry, 'demo/junk', 'v1', buildImage({ layers: [layer], runtime: { Cmd: ['/app'] } }));
    const junkInit = join(dir, 'junk-init');
    await writeFile(junkInit, 'this is not a program\n');
    await chmod(junkInit, 0o755);
    const out = join(dir, 'junk.cpio.gz');
    const built = await runCli([
      'build',
      `${registry.host}/demo/junk:v1`,
      '--init',
      junkInit,
      '-o',
      out,
      '-q',
    ]);
    expect(built.code, built.stderr).toBe(0);
    const panicked = await runCli(['boot', out, '--timeout', '120']);
    expect(panicked.code).toBe(1);
    expect(panicked.stdout).toContain('Kernel panic');
    expect(panicked.stderr.trim()).toMatch(/^irb: error: boot failed: the kernel panicked; /);

    const missing = await runCli([
      'boot',
      join(dir, 'reboot.cpio'),
      '--expect',
      'text-that-never-comes',
      '-q',
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr.trim()).toBe(
      'irb: error: boot failed: "text-that-never-comes" did not appear before the VM stopped; check the console above',
    );
  }, 300_000);
});
