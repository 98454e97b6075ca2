import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootInitramfs, findKernel } from '@irb/boot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootMarks, hex, linesWith, nulList, writeStaticInitArchive } from './archive.ts';

// Real Debian kernel under QEMU (TCG): each boot takes seconds, so each boot checks many things.
const BOOT = 240_000;
const bb = '/bin/busybox';
let dir: string;
let kernel: string;
let busybox: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-init-boot-'));
  kernel = await findKernel();
  busybox = new Uint8Array(await readFile('/bin/busybox'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('static init (x86_64) booted by a real kernel, in an archive with no shell', () => {
  it(
    'runs argv with exactly the env, cwd, uid/gid/groups; mounts; reaps orphans; reports the status; powers off',
    async () => {
      const script = [
        `${bb} grep -E '^(Uid|Gid|Groups|SigBlk):' /proc/$$/status | ${bb} sed 's/^/probe: /'`,
        `echo "probe: cwd=$(${bb} readlink /proc/$$/cwd)"`,
        `echo "probe: cmdline=$(${bb} od -An -tx1 -v /proc/$$/cmdline | ${bb} tr -d ' \\n')"`,
        `echo "probe: environ=$(${bb} od -An -tx1 -v /proc/$$/environ | ${bb} tr -d ' \\n')"`,
        `echo "probe: mounts=$(${bb} awk '{printf "%s:%s,", $2, $3}' /proc/mounts)"`,
        `echo "probe: hostname=$(${bb} hostname) lo=$(${bb} cat /sys/class/net/lo/flags)"`,
        `echo "probe: links=$(for l in /dev/fd /dev/stdin /dev/stdout /dev/stderr; do printf %s, "$(${bb} readlink $l)"; done)"`,
        // An orphan: its parent exits at once, so it is reparented to PID 1, which must reap it.
        `orphan=$( ( ${bb} sleep 0.5 >/dev/null 2>&1 & echo $! ) )`,
        `echo "probe: orphan parent=$(${bb} awk '/^PPid:/{print $2}' /proc/$orphan/status)"`,
        `${bb} sleep 2`,
        `if [ -e /proc/$orphan ]; then echo "probe: orphan $(${bb} grep State /proc/$orphan/status)"; else echo "probe: orphan reaped"; fi`,
        'exit 3',
      ].join('\n');
      const argv = ['busybox', 'sh', '-c', script, 'arg zero', 'first one', "it's $(not run)"];
      const odd = new Uint8Array([...new TextEncoder().encode('BYTES=\xff'), 0xff, 0xfe, 0x01, 0x09, 0x20]);
      const env = [
        'PATH=/nonexistent:/bin',
        'HOME=/home/app',
        'GREETING=hello   spaced world',
        'my.dotted-name=x',
        'EMPTY=',
        odd,
      ];
      const path = await writeStaticInitArchive(dir, 'user.cpio', {
        arch: 'x86_64',
        busybox,
        config: {
          argv,
          env,
          workingDir: '/srv/my app',
          uid: 1000,
          gid: 1000,
          groups: [2000, 3000],
          hostname: 'probe-host',
        },
        directories: [
          { path: 'srv', mode: 0o755 },
          { path: 'srv/my app', mode: 0o750, uid: 1000, gid: 1000 },
        ],
      });
      const result = await bootInitramfs({ kernel, initramfs: path, timeoutMs: BOOT - 20_000 });
      const out = result.output;
      expect(result, out).toMatchObject({ ok: true, panicked: false, timedOut: false, exitCode: 0 });

      const probe = linesWith(out, 'probe: ');
      const field = (name: string): string | undefined =>
        probe.find((l) => l.startsWith(`${name}`))?.slice(name.length);
      expect(field('Uid:')?.trim().split(/\s+/)).toEqual(['1000', '1000', '1000', '1000']);
      expect(field('Gid:')?.trim().split(/\s+/)).toEqual(['1000', '1000', '1000', '1000']);
      expect(field('Groups:')?.trim().split(/\s+/)).toEqual(['2000', '3000']);
      // The program does not inherit init's blocked SIGTERM/SIGINT/SIGCHLD (SigIgn is not checked:
      // busybox sh ignores SIGQUIT itself).
      expect(field('SigBlk:')?.trim()).toBe('0000000000000000');
      expect(field('cwd=')).toBe('/srv/my app');
      expect(field('cmdline=')).toBe(hex(nulList(argv)));
      expect(field('environ=')).toBe(hex(nulList(env)));
      const mounts = field('mounts=') ?? '';
      for (const m of [
        '/proc:proc',
        '/sys:sysfs',
        '/dev:devtmpfs',
        '/dev/pts:devpts',
        '/dev/shm:tmpfs',
        '/run:tmpfs',
        '/tmp:tmpfs',
      ]) {
        expect(mounts).toContain(`${m},`);
      }
      // IFF_UP | IFF_LOOPBACK | IFF_RUNNING once lo is up; 0x8 while it is down.
      expect(field('hostname=')).toMatch(/^probe-host lo=0x9$/);
      expect(field('links='), out).toBe('/proc/self/fd,/proc/self/fd/0,/proc/self/fd/1,/proc/self/fd/2,');
      expect(field('orphan parent=')).toBe('1');
      expect(probe).toContain('orphan reaped');
      expect(out).toMatch(/^irb: exit status 3$/m);
      expect(out).toContain('reboot: Power down');
      expect(out).not.toContain('irb-init:');

      const marks = bootMarks(out);
      expect(marks.runInit, out).toBeDefined();
      expect(marks.init, out).toBeGreaterThanOrEqual(marks.runInit ?? Number.NaN);
      expect(marks.exec, out).toBeGreaterThanOrEqual(marks.init ?? Number.NaN);
      // Stamped in the kernel log's clock: well under a second after the kernel started /init.
      expect((marks.exec ?? 0) - (marks.runInit ?? 0)).toBeLessThan(1);
      // The markers come in order: init starts, the program starts, its output, its status.
      expect(out.indexOf('irb: init ')).toBeLessThan(out.indexOf('irb: exec '));
      expect(out.indexOf('irb: exec ')).toBeLessThan(out.indexOf('probe: '));
    },
    BOOT,
  );

  it(
    'forwards SIGTERM and SIGINT to the program (which may ignore them), reports a signal death, reboots',
    async () => {
      const script = [
        "trap '' TERM",
        `${bb} kill -TERM 1`,
        `${bb} sleep 1`,
        'echo "probe: survived TERM"',
        `trap 'echo "probe: caught INT"' INT`,
        `${bb} kill -INT 1`,
        `${bb} sleep 1`,
        `${bb} kill -KILL $$`,
      ].join('\n');
      const path = await writeStaticInitArchive(dir, 'signals.cpio', {
        arch: 'x86_64',
        busybox,
        config: { argv: [bb, 'sh', '-c', script], env: ['PATH=/bin'], onExit: 'reboot' },
      });
      const result = await bootInitramfs({ kernel, initramfs: path, timeoutMs: BOOT - 20_000 });
      const out = result.output;
      // -no-reboot turns the guest's reboot into QEMU exiting 0.
      expect(result, out).toMatchObject({ ok: true, panicked: false, timedOut: false, exitCode: 0 });
      const probe = linesWith(out, 'probe: ');
      expect(probe).toEqual(['survived TERM', 'caught INT']);
      expect(out).toMatch(/^irb: exit status 137$/m);
      expect(out).toContain('reboot: Restarting system');
      expect(out).not.toContain('reboot: Power down');
    },
    BOOT,
  );

  it(
    'reports a program it cannot find with status 127, like a shell, and still powers off',
    async () => {
      const path = await writeStaticInitArchive(dir, 'missing.cpio', {
        arch: 'x86_64',
        busybox,
        config: { argv: ['no-such-program', 'x'], env: ['PATH=/bin:/usr/bin'] },
      });
      const result = await bootInitramfs({ kernel, initramfs: path, timeoutMs: BOOT - 20_000 });
      const out = result.output;
      expect(result, out).toMatchObject({ ok: true, exitCode: 0 });
      expect(out).toMatch(/^irb-init: cannot execute no-such-program: No such file or directory$/m);
      expect(out).toMatch(/^irb: exit status 127$/m);
      expect(out).toContain('reboot: Power down');
    },
    BOOT,
  );

  it(
    'powers off only once the console has sent everything: the end of a long output and the status arrive',
    async () => {
      // 192 KiB just before the exit: the serial driver still holds the last KiB of it when the
      // program ends, and the init's status line behind them.
      const script = `${bb} yes drain-probe-line | ${bb} head -n 10000; echo drain-probe-end`;
      const path = await writeStaticInitArchive(dir, 'drain.cpio', {
        arch: 'x86_64',
        busybox,
        config: { argv: [bb, 'sh', '-c', script], env: ['PATH=/bin'] },
      });
      const result = await bootInitramfs({ kernel, initramfs: path, timeoutMs: BOOT - 20_000 });
      const out = result.output;
      expect(result, out.slice(-2000)).toMatchObject({ ok: true, exitCode: 0 });
      // (A kernel message may land inside a line of the program's, so lines are not counted.)
      expect(out).toMatch(/^drain-probe-end\r?$/m);
      expect(out).toMatch(/^irb: exit status 0\r?$/m);
      expect(out.indexOf('drain-probe-end')).toBeLessThan(out.indexOf('irb: exit status 0'));
    },
    BOOT,
  );
});
