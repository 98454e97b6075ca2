import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootInitramfs, findKernel, kernelCommandLine, qemuArguments, qemuBinary } from './index.ts';

const BOOT = 240_000;
let dir: string;
let kernel: string;
let busybox: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-boot-'));
  kernel = await findKernel();
  busybox = await readFile('/bin/busybox');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An uncompressed initramfs whose /init runs `script` (busybox sh); no /init when script is undefined. */
async function initramfs(name: string, script: string | undefined): Promise<string> {
  const text = (s: string): Uint8Array => new TextEncoder().encode(s);
  const entries: CpioEntry[] = [
    { type: 'directory', path: 'bin', mode: 0o755 },
    { type: 'file', path: 'bin/busybox', mode: 0o755, size: busybox.length, body: busybox },
    ...['sh', 'echo', 'poweroff', 'sleep'].map(
      (n): CpioEntry => ({ type: 'symlink', path: `bin/${n}`, mode: 0o777, target: 'busybox' }),
    ),
    { type: 'directory', path: 'dev', mode: 0o755 },
    { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
  ];
  if (script !== undefined) {
    const body = text(`#!/bin/sh\n${script}\n`);
    entries.push({ type: 'file', path: 'init', mode: 0o755, size: body.length, body });
  }
  const path = join(dir, name);
  await pipeline(Readable.from(packCpio(entries)), createWriteStream(path));
  return path;
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('command line', () => {
  it('adds tsc_early_khz on microvm only, user arguments last', () => {
    expect(kernelCommandLine('pc', ['quiet'])).toBe('console=ttyS0 panic=-1 rdinit=/init quiet');
    expect(kernelCommandLine('microvm')).toBe('console=ttyS0 panic=-1 rdinit=/init tsc_early_khz=2000000');
    const args = qemuArguments({ kernel: '/k', initramfs: '/i', machine: 'pc', accel: 'tcg' });
    expect(args).toEqual(expect.arrayContaining(['-nodefaults', '-no-reboot', '-accel', 'tcg', '-M', 'pc']));
    expect(args[args.indexOf('-initrd') + 1]).toBe('/i');
  });

  it('boots aarch64 on virt with a cortex-a57 under TCG and the PL011 console', () => {
    expect(kernelCommandLine('virt')).toBe('console=ttyAMA0 panic=-1 rdinit=/init');
    const args = qemuArguments({ kernel: '/k', initramfs: '/i', machine: 'virt', accel: 'tcg' });
    expect(args.slice(0, 6)).toEqual(['-accel', 'tcg', '-M', 'virt', '-cpu', 'cortex-a57']);
    const kvm = qemuArguments({ kernel: '/k', initramfs: '/i', machine: 'virt', accel: 'kvm' });
    expect(kvm.slice(0, 6)).toEqual(['-accel', 'kvm', '-M', 'virt', '-cpu', 'host']);
    expect(qemuBinary('aarch64')).toBe('qemu-system-aarch64');
    expect(qemuBinary('x86_64')).toBe('qemu-system-x86_64');
  });
});

describe('bootInitramfs', () => {
  it(
    'lets the guest power off after the marker (pc, TCG) and reports exit code 0',
    async () => {
      const path = await initramfs('poweroff', 'echo IRB-BOOT-MARKER\npoweroff -f');
      const chunks: string[] = [];
      const result = await bootInitramfs({
        kernel,
        initramfs: path,
        expect: /IRB-BOOT-(MARK)ER/g,
        stopOnMatch: false,
        machine: 'pc',
        accel: 'tcg',
        onOutput: (t) => chunks.push(t),
        timeoutMs: BOOT - 20_000,
      });
      expect(result, result.output).toMatchObject({
        ok: true,
        matched: true,
        panicked: false,
        timedOut: false,
      });
      expect(result.exitCode).toBe(0);
      expect(chunks.join('')).toBe(result.output);
      expect(result.output).toContain('Linux version');
      expect(result.output).not.toContain('\r');
      expect(alive(result.pid)).toBe(false);
    },
    BOOT,
  );

  it(
    'boots microvm under TCG (tsc_early_khz) and stops QEMU once the marker appears',
    async () => {
      const path = await initramfs('hang', 'echo IRB-MICROVM-UP\nsleep 100000');
      const result = await bootInitramfs({
        kernel,
        initramfs: path,
        expect: 'IRB-MICROVM-UP',
        machine: 'microvm',
        accel: 'tcg',
        timeoutMs: BOOT - 20_000,
      });
      expect(result.command.join(' ')).toContain('tsc_early_khz=2000000');
      expect(result, result.output + result.stderr).toMatchObject({
        ok: true,
        matched: true,
        machine: 'microvm',
      });
      expect(alive(result.pid)).toBe(false);
    },
    BOOT,
  );

  it(
    'detects a kernel panic (no /init) and QEMU exits by itself',
    async () => {
      const path = await initramfs('panic', undefined);
      const result = await bootInitramfs({
        kernel,
        initramfs: path,
        expect: 'never printed',
        accel: 'tcg',
        timeoutMs: BOOT - 20_000,
      });
      expect(result, result.output).toMatchObject({
        ok: false,
        panicked: true,
        matched: false,
        timedOut: false,
      });
      expect(alive(result.pid)).toBe(false);
    },
    BOOT,
  );

  it('kills QEMU on timeout and on abort', async () => {
    const path = await initramfs('slow', 'sleep 100000');
    const timedOut = await bootInitramfs({ kernel, initramfs: path, accel: 'tcg', timeoutMs: 1500 });
    expect(timedOut).toMatchObject({ ok: false, timedOut: true });
    expect(alive(timedOut.pid)).toBe(false);

    const controller = new AbortController();
    const pending = bootInitramfs({ kernel, initramfs: path, accel: 'tcg', signal: controller.signal });
    setTimeout(() => controller.abort(), 1000);
    await expect(pending).rejects.toThrow(/abort/i);
  }, 60_000);

  it('refuses missing files with clear errors', async () => {
    await expect(bootInitramfs({ kernel, initramfs: join(dir, 'nope') })).rejects.toMatchObject({
      code: 'IRB_BOOT_INITRAMFS_NOT_FOUND',
    });
    const path = await initramfs('x', 'true');
    await expect(bootInitramfs({ kernel: join(dir, 'no-kernel'), initramfs: path })).rejects.toMatchObject({
      code: 'IRB_BOOT_KERNEL_NOT_FOUND',
    });
    await expect(
      bootInitramfs({ kernel, initramfs: path, accel: 'tcg', qemu: 'qemu-system-does-not-exist' }),
    ).rejects.toMatchObject({ code: 'IRB_BOOT_QEMU_NOT_FOUND' });
    const arm64 = await findKernel({ arch: 'aarch64' });
    await expect(
      bootInitramfs({ kernel: arm64, initramfs: path, arch: 'aarch64', machine: 'pc', accel: 'tcg' }),
    ).rejects.toMatchObject({ code: 'IRB_OPTION_INVALID', message: expect.stringContaining('use virt') });
    // The x86 kernel is no aarch64 kernel: its header says so before the machine is looked at.
    await expect(
      bootInitramfs({ kernel, initramfs: path, arch: 'aarch64', machine: 'pc', accel: 'tcg' }),
    ).rejects.toMatchObject({ code: 'IRB_BOOT_KERNEL_ARCH_MISMATCH' });
  });
});
