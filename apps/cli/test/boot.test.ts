import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildImage,
  buildIndex,
  buildTar,
  pushImage,
  type StartedRegistry,
  startRegistry,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, cliCommand, filesIn, runCli, runProgram } from './harness.ts';

/** The interactive shell's prompt (busybox then asks the terminal for the cursor position). */
const PROMPT = /Run \/init as init process[\s\S]*\n\/ # /;

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
    // --timeout none: no timer at all (a serving VM runs until it is stopped); this one powers off.
    const booted = await runCli(['boot', out, '--timeout', 'none']);
    // The program exits 3: the VM powers off, and `irb boot` exits with that status.
    expect(booted.code).toBe(3);
    expect(booted.stderr).toBe('irb: the guest program exited with status 3\n');
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
    // Kernel log lines may come between the program's line and the status line.
    expect(booted.stdout).toMatch(/^reboot-probe-ok\n(?:\[[^\n]*\n)*irb: exit status 0$/m);
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

  it('--platform arm64 builds an arm64 archive that irb boot runs on an aarch64 guest', async () => {
    const cache = process.env.XDG_CACHE_HOME || join(process.env.HOME || homedir(), '.cache');
    const busybox = join(cache, 'irb', 'aarch64', 'bin', 'busybox');
    const arm = buildImage({
      layers: [await busyboxLayer([], busybox)],
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      runtime: { Cmd: ['/bin/sh', '-c', 'echo "arm-probe: $(uname -m)"; exit 4'], Env: ['PATH=/bin'] },
    });
    await pushImage(registry, 'demo/arm', 'v1', buildIndex([arm]));
    const out = join(dir, 'arm.cpio.zst');
    const built = await runCli([
      'build',
      `${registry.host}/demo/arm:v1`,
      '--platform',
      'arm64',
      '-o',
      out,
      '--json',
    ]);
    expect(built.code, built.stderr).toBe(0);
    expect(JSON.parse(built.stdout)).toMatchObject({ platform: 'linux/arm64/v8', compression: 'zstd' });
    const booted = await runCli(['boot', out, '--timeout', '180']);
    expect(booted.stdout).toContain('arm-probe: aarch64');
    expect(booted.code, booted.stdout.slice(-2000) + booted.stderr).toBe(4);
  }, 300_000);

  describe('an image whose Cmd is an interactive shell', () => {
    let shell: string;

    beforeAll(async () => {
      await pushImage(
        registry,
        'demo/shell',
        'v1',
        buildImage({ layers: [await busyboxLayer()], runtime: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] } }),
      );
      shell = join(dir, 'shell.cpio.gz');
      const built = await runCli(['build', `${registry.host}/demo/shell:v1`, '-o', shell, '-q']);
      expect(built.code, built.stderr).toBe(0);
    }, 120_000);

    it('reads piped stdin, and the exit status of the shell becomes the exit code of irb', async () => {
      const booted = await runCli(['boot', shell, '--timeout', '120'], {
        input: 'echo typed-$((6*7))\nexit 7\n',
      });
      expect(booted.stdout).toContain('typed-42');
      expect(booted.stdout).toContain('irb: exit status 7');
      expect(booted.code, booted.stdout.slice(-2000) + booted.stderr).toBe(7);
      expect(booted.stderr).toBe('irb: the guest program exited with status 7\n');
    }, 300_000);

    it('on a terminal, forwards keys to the console and stops the VM on Ctrl-A x', async () => {
      const command = [...cliCommand, 'boot', shell, '--timeout', '120'].map((a) => `'${a}'`).join(' ');
      // script(1) gives irb a pseudo-terminal and copies our stdin to it, as a user would type.
      const session = await runProgram('script', ['-qefc', command, '/dev/null'], {
        answers: [
          { after: PROMPT, send: 'echo pty-$((6*7))\r' },
          { after: 'pty-42', send: '\x01x' },
        ],
      });
      expect(session.stdout).toContain('irb: console input goes to the guest; Ctrl-A x stops the VM');
      expect(session.stdout).toContain('pty-42');
      expect(session.stdout).toContain('irb: stopped with Ctrl-A x');
      expect(session.code, session.stdout.slice(-2000)).toBe(130);
    }, 300_000);

    it('SIGTERM stops QEMU and exits 143', async () => {
      const booted = await runCli(['boot', shell, '--timeout', '120'], {
        interruptWhen: (_stderr, stdout) => PROMPT.test(stdout),
        interruptSignal: 'SIGTERM',
      });
      expect(booted.code, booted.stderr).toBe(143);
      expect(booted.stderr).toBe('irb: interrupted\n');
    }, 300_000);

    it('too little --memory is named as such, with the size to use', async () => {
      const starved = await runCli(['boot', shell, '--memory', '64', '--timeout', '120']);
      expect(starved.code).toBe(1);
      expect(starved.stderr).toMatch(
        /^irb: error: boot failed: the guest ran out of memory with 64 MiB[^\n]*; give it more with --memory 512 or leave --memory out\n$/,
      );
      expect(starved.stderr).not.toContain('above');
    }, 300_000);

    it("a --kernel that is not a kernel is named as such, not in QEMU's words", async () => {
      const fake = join(dir, 'not-a-kernel');
      await writeFile(fake, Buffer.alloc(8192, 0x5a));
      const result = await runCli(['boot', shell, '--kernel', fake]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `irb: error: ${fake} is not a bootable Linux kernel (no bzImage, arm64 Image, EFI zboot, ELF or gzip header); pass a kernel image (vmlinuz) as --kernel\n`,
      );
      expect(result.stdout).toBe('');
    });
  });
});
