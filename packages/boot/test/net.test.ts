import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BootResult,
  bootInitramfs,
  bootProblem,
  bootTimeline,
  type ConsoleLine,
  type ForwardProbeResult,
  findKernel,
  probeForward,
} from '../src/index.ts';
import { netArchive } from './net-archive.ts';

const BOOT = 300_000;
const WEB = 'mkdir -p /www; echo "hello from the guest" > /www/index.html';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-boot-net-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function listen(): Promise<{ server: Server; port: number; connections: () => number }> {
  let count = 0;
  return new Promise((resolve) => {
    const server = createServer((socket) => {
      count++;
      socket.destroy();
    });
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as { port: number }).port, connections: () => count }),
    );
  });
}

/** Lines of console output with the host time they arrived, in ms since QEMU started. */
function consoleClock(): {
  lines: ConsoleLine[];
  start: (ms: number) => void;
  onOutput: (text: string) => void;
} {
  let origin = performance.now();
  let partial = '';
  const lines: ConsoleLine[] = [];
  return {
    lines,
    start: (ms) => {
      origin = ms;
    },
    onOutput: (text) => {
      const parts = (partial + text).split('\n');
      partial = parts.pop() ?? '';
      for (const part of parts) lines.push({ text: part, hostMs: performance.now() - origin });
    },
  };
}

describe('a boot with a network (x86_64, pc, TCG, Debian kernel and modules)', () => {
  it(
    'forwards a picked 127.0.0.1 port to the guest, which reaches nothing outside',
    async () => {
      const archive = await netArchive(join(dir, 'web.cpio'), {
        arch: 'x86_64',
        modules: ['virtio_net', 'virtio_pci'],
        script: [
          WEB,
          // restrict=on: the host's 127.0.0.1 is 10.0.2.2 to a guest without it, and must not answer.
          'port=$(cat /proc/cmdline | tr " " "\\n" | sed -n "s/^irbtest.port=//p")',
          'if echo x | nc -w 3 10.0.2.2 $port; then echo "outside: reached"; else echo "outside: blocked"; fi',
          'sleep 2',
          'echo "irb: serving"',
          'exec httpd -f -p 80 -h /www',
        ].join('\n'),
      });
      const outside = await listen();
      const clock = consoleClock();
      const stop = new AbortController();
      let probe: Promise<ForwardProbeResult> | undefined;
      let body: Promise<string> | undefined;
      let result: BootResult;
      try {
        result = await bootInitramfs({
          initramfs: archive,
          arch: 'auto',
          net: { forwards: ['127.0.0.1:0:80', '0:1'] },
          append: [`irbtest.port=${outside.port}`],
          timeoutMs: BOOT,
          stopSignal: stop.signal,
          onOutput: clock.onOutput,
          onStart: ({ startMs, forwards }) => {
            clock.start(startMs);
            const [web, closed] = forwards;
            probe = probeForward({ port: web!.hostPort, closedPort: closed!.hostPort, originMs: startMs });
            body = probe.then(async () => {
              const response = await fetch(`http://127.0.0.1:${web!.hostPort}/`);
              return response.text();
            });
            void body.then(
              () => stop.abort(),
              () => stop.abort(),
            );
          },
        });
      } finally {
        outside.server.close();
      }
      expect(result, result.output + result.stderr).toMatchObject({
        ok: true,
        stopped: true,
        machine: 'pc',
        kernelRelease: '6.1.0-57-amd64',
      });
      expect(await body).toBe('hello from the guest\n');
      expect(result.output).toContain('irb: net: eth0 10.0.2.15');
      expect(result.output).toContain('outside: blocked');
      expect(outside.connections()).toBe(0);
      const command = result.command.join(' ');
      expect(command).toMatch(
        /-netdev user,id=net0,restrict=on,hostfwd=tcp:127\.0\.0\.1:\d+-:80,hostfwd=tcp:127\.0\.0\.1:\d+-:1 /,
      );
      expect(command).toContain('-device virtio-net-pci,netdev=net0');
      expect(command).toContain('ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3');
      expect(result.forwards[0]).toMatchObject({ host: '127.0.0.1', guestPort: 80, picked: true });

      // The probe is not fooled by slirp, which accepts on the host at once: the guest's network
      // answered after /init ran, and the guest accepted only once httpd was about to listen.
      const seen = (await probe) as ForwardProbeResult;
      const at = (text: string): number =>
        clock.lines.find((l) => l.text.includes(text))?.hostMs ?? Number.NaN;
      expect(seen.answerLine).toBe('HTTP/1.1 200 OK');
      expect(seen.netUpMs).toBeGreaterThan(at('Run /init as init process'));
      expect(seen.acceptedMs).toBeGreaterThan(seen.netUpMs as number);
      expect(seen.acceptedMs).toBeGreaterThan(at('irb: serving') - 250);
      expect(seen.answerMs).toBeGreaterThanOrEqual(seen.acceptedMs as number);
    },
    BOOT,
  );

  it(
    'times VM start → network → accepted → first answer in the timeline, then stops the VM',
    async () => {
      const archive = await netArchive(join(dir, 'timeline.cpio'), {
        arch: 'x86_64',
        modules: ['virtio_net', 'virtio_pci'],
        script: `${WEB}\nsleep 1\nexec httpd -f -p 80 -h /www`,
      });
      const report = await bootTimeline({
        initramfs: archive,
        arch: 'auto',
        net: { forwards: ['0:80'] },
        timeoutMs: BOOT,
      });
      const [run] = report.runs;
      expect(report.last, report.last.output).toMatchObject({ ok: true, stopped: true });
      expect(run?.answerLine).toBe('HTTP/1.1 200 OK');
      const order = [run?.netUpMs, run?.acceptedMs, run?.answerMs, run?.wallMs];
      for (const value of order) expect(value).toBeTypeOf('number');
      expect([...(order as number[])].sort((a, b) => a - b)).toEqual(order);
      expect(run?.initMs).toBeTypeOf('number');
      expect(report.median.answerMs).toBe(run?.answerMs);
      // The probe's closed port is forwarded too, from a picked host port.
      expect(report.last.forwards.map((f) => f.guestPort)).toEqual([80, 1]);
    },
    BOOT,
  );

  it(
    "reports the init's missing network device, naming the modules to add",
    async () => {
      const archive = await netArchive(join(dir, 'no-driver.cpio'), {
        arch: 'x86_64',
        script: 'poweroff -f',
      });
      // A kernel module tree without modules.builtin: no check before the boot, the init tells.
      const result = await bootInitramfs({
        initramfs: archive,
        net: true,
        kernelModules: dir,
        timeoutMs: BOOT,
      });
      expect(result.noNetDevice).toMatchObject({ device: 'eth0', afterMs: 2000 });
      expect(bootProblem(result)).toBe(
        "the guest found no network device eth0 after 2000 ms: the archive lacks the kernel's network driver; add the modules virtio_net and virtio_pci for 6.1.0-57-amd64 (irb build --kernel-modules … --modules net)",
      );
    },
    BOOT,
  );

  it(
    'names the timeout, not the kernel, when the console was still empty',
    async () => {
      const init = new TextEncoder().encode('#!/bin/sh\nsleep 600\n');
      const busybox = await readFile('/bin/busybox');
      const entries: CpioEntry[] = [
        { type: 'directory', path: 'bin', mode: 0o755 },
        { type: 'file', path: 'bin/busybox', mode: 0o755, size: busybox.length, body: busybox },
        { type: 'symlink', path: 'bin/sh', mode: 0o777, target: 'busybox' },
        { type: 'symlink', path: 'bin/sleep', mode: 0o777, target: 'busybox' },
        { type: 'directory', path: 'dev', mode: 0o755 },
        { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
        { type: 'file', path: 'init', mode: 0o755, size: init.length, body: init },
      ];
      const archive = join(dir, 'silent.cpio');
      await pipeline(Readable.from(packCpio(entries)), createWriteStream(archive));
      // loglevel=0 keeps the kernel off the console, as a boot slower than the timeout would.
      const result = await bootInitramfs({ initramfs: archive, append: ['loglevel=0'], timeoutMs: 5000 });
      expect(result).toMatchObject({ timedOut: true, output: '' });
      expect(result.firstOutputMs).toBeUndefined();
      expect(bootProblem(result)).toMatch(
        /^the timeout \(5 s\) passed with nothing on the console yet: .*; raise the timeout$/,
      );
    },
    BOOT,
  );
});

describe('refused before QEMU starts', () => {
  const started = (): { onStart: () => void; count: () => number } => {
    let n = 0;
    return { onStart: () => void n++, count: () => n };
  };

  it('a network boot whose archive lacks virtio_net and virtio_pci', async () => {
    const archive = await netArchive(join(dir, 'bare.cpio'), { arch: 'x86_64', script: 'poweroff -f' });
    const spy = started();
    await expect(
      bootInitramfs({ initramfs: archive, net: true, onStart: spy.onStart }),
    ).rejects.toMatchObject({
      code: 'IRB_BOOT_NET_DRIVER_MISSING',
      message: expect.stringMatching(
        /lacks them under lib\/modules\/6\.1\.0-57-amd64\/; add virtio_net, virtio_pci /,
      ),
    });
    // With the transport alone, the driver is what is missing.
    const half = await netArchive(join(dir, 'half.cpio'), {
      arch: 'x86_64',
      modules: ['virtio_pci'],
      script: '',
    });
    await expect(bootInitramfs({ initramfs: half, net: true, onStart: spy.onStart })).rejects.toThrow(
      /kernel 6\.1\.0-57-amd64 has virtio_net as modules, not built in, and the archive lacks it/,
    );
    expect(spy.count()).toBe(0);
  });

  it('modules whose vermagic names another release, and arm64 modules with the x86 kernel', async () => {
    const patched = await netArchive(join(dir, 'vermagic.cpio'), {
      arch: 'x86_64',
      modules: ['virtio_net'],
      script: '',
      patch: (path, body) => {
        if (!path.endsWith('/virtio_net.ko')) return body;
        const at = Buffer.from(body).indexOf('vermagic=6.1.0-57-amd64');
        expect(at).toBeGreaterThan(0);
        const out = Uint8Array.from(body);
        out.set(new TextEncoder().encode('vermagic=6.1.0-99-amd64'), at);
        return out;
      },
    });
    const spy = started();
    await expect(
      bootInitramfs({ initramfs: patched, arch: 'auto', onStart: spy.onStart }),
    ).rejects.toMatchObject({
      code: 'IRB_BOOT_MODULES_MISMATCH',
      message: expect.stringMatching(
        /module lib\/modules\/6\.1\.0-57-amd64\/kernel\/drivers\/net\/virtio_net\.ko was built for 6\.1\.0-99-amd64 \(its vermagic\) but the kernel \S+vmlinuz-6\.1\.0-57-amd64 is 6\.1\.0-57-amd64;/,
      ),
    });
    const arm64Modules = await netArchive(join(dir, 'arm64-modules.cpio'), {
      arch: 'x86_64',
      modules: ['virtio_net'],
      script: '',
      moduleArch: 'aarch64',
    });
    await expect(
      bootInitramfs({ initramfs: arm64Modules, arch: 'auto', onStart: spy.onStart }),
    ).rejects.toThrow(
      /^the archive's kernel modules are for 6\.1\.0-57-arm64 \(lib\/modules\/6\.1\.0-57-arm64\/\) but the kernel \S+ is 6\.1\.0-57-amd64; /,
    );
    expect(spy.count()).toBe(0);
  });

  it('an aarch64 archive with an x86 kernel, and the reverse, from the kernel image header', async () => {
    const arm = await netArchive(join(dir, 'arm.cpio'), { arch: 'aarch64', script: '' });
    const x86 = await netArchive(join(dir, 'x86.cpio'), { arch: 'x86_64', script: '' });
    const x86Kernel = await findKernel({ arch: 'x86_64' });
    const armKernel = await findKernel({ arch: 'aarch64' });
    const spy = started();
    await expect(
      bootInitramfs({ initramfs: arm, kernel: x86Kernel, arch: 'auto', onStart: spy.onStart }),
    ).rejects.toMatchObject({
      code: 'IRB_BOOT_KERNEL_ARCH_MISMATCH',
      message: `kernel ${x86Kernel} is an x86_64 kernel (its bzImage header says so) but the archive's /init is aarch64; boot it with an aarch64 kernel, or without one to use the aarch64 kernel irb finds`,
    });
    await expect(
      bootInitramfs({ initramfs: x86, kernel: armKernel, arch: 'auto', onStart: spy.onStart }),
    ).rejects.toThrow(/is an aarch64 kernel \(its \S+ header says so\) but the archive's \/init is x86_64/);
    await expect(
      bootInitramfs({ initramfs: x86, kernel: armKernel, arch: 'x86_64', onStart: spy.onStart }),
    ).rejects.toThrow(/but the guest architecture asked for is x86_64/);
    expect(spy.count()).toBe(0);
  });

  it('a forward from another host address', async () => {
    const x86 = await netArchive(join(dir, 'x86-fwd.cpio'), { arch: 'x86_64', script: '' });
    await expect(
      bootInitramfs({ initramfs: x86, net: { forwards: ['0.0.0.0:8080:80'] } }),
    ).rejects.toMatchObject({
      code: 'IRB_OPTION_INVALID',
      message:
        'forward "0.0.0.0:8080:80": host address "0.0.0.0" refused, a forward binds 127.0.0.1 only so that nothing outside this machine reaches the guest; write 8080:80 or 127.0.0.1:8080:80',
    });
  });
});

describe("virtio-net on each machine bus, with the guest kernel's own modules (TCG)", () => {
  it.each([
    {
      machine: 'microvm',
      arch: 'x86_64',
      transport: 'virtio_mmio',
      device: 'virtio-net-device',
      release: '6.1.0-57-amd64',
    },
    {
      machine: 'virt',
      arch: 'aarch64',
      transport: 'virtio_pci',
      device: 'virtio-net-pci',
      release: '6.1.0-57-arm64',
    },
  ] as const)(
    '$arch on $machine: $device, with $transport, answers through the forward',
    async (c) => {
      const archive = await netArchive(join(dir, `${c.machine}-web.cpio`), {
        arch: c.arch,
        modules: ['virtio_net', c.transport],
        script: `${WEB}\nexec httpd -f -p 80 -h /www`,
      });
      const report = await bootTimeline({
        initramfs: archive,
        arch: 'auto',
        machine: c.machine,
        accel: 'tcg',
        net: { forwards: ['0:80'] },
        timeoutMs: BOOT,
      });
      expect(report.last, report.last.output).toMatchObject({
        ok: true,
        arch: c.arch,
        machine: c.machine,
        kernelRelease: c.release,
      });
      expect(report.last.command.join(' ')).toContain(`-device ${c.device},netdev=net0`);
      expect(report.runs[0]?.answerLine).toBe('HTTP/1.1 200 OK');
    },
    BOOT,
  );
});
