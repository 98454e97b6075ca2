// The net preset's modules, packed as their own member after a base member, loaded by busybox
// insmod in the resolved order under Debian's amd64 kernel in QEMU (TCG): eth0 appears, with
// the NIC on PCI (-M pc) and on virtio-mmio (-M microvm).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qemuArguments, qemuBinary } from '@irb/boot';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directoryModuleSource } from '../src/directory.ts';
import { resolveModules } from '../src/resolve.ts';
import type { ResolvedModules } from '../src/types.ts';
import { debianKernel, memberBytes } from './helpers.ts';

const BOOT = 240_000;
const kernel = debianKernel('amd64');
let dir: string;
let busybox: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-kmod-boot-'));
  busybox = await readFile('/bin/busybox');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const INIT = `#!/bin/busybox sh
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
echo "KMOD-LIB $($bb readlink /lib) $($bb ls /lib/modules)"
while read m; do $bb insmod "$m" || echo "KMOD-FAIL $m"; done < /etc/modules.load
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do $bb sleep 0.1; i=$((i+1)); done
echo "KMOD-NET $($bb ls /sys/class/net | $bb tr '\\n' ' ')"
[ -e /sys/class/net/eth0 ] && echo "KMOD-DRIVER $($bb basename $($bb readlink /sys/class/net/eth0/device/driver))"
echo "KMOD-LOADED $($bb cut -d' ' -f1 /proc/modules | $bb sort | $bb tr '\\n' ' ')"
$bb poweroff -f
`;

/** A base member like a merged-/usr image's (`lib -> usr/lib`), with busybox, this /init and the load list. */
function baseEntries(loadList: readonly string[]): CpioEntry[] {
  const text = (s: string) => new TextEncoder().encode(s);
  const file = (path: string, body: Uint8Array, mode = 0o644): CpioEntry => ({
    type: 'file',
    path,
    mode,
    size: body.length,
    body,
  });
  return [
    { type: 'directory', path: 'bin', mode: 0o755 },
    file('bin/busybox', busybox, 0o755),
    { type: 'directory', path: 'dev', mode: 0o755 },
    { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    { type: 'directory', path: 'etc', mode: 0o755 },
    file('etc/modules.load', text(loadList.map((p) => `${p}\n`).join(''))),
    file('init', text(INIT), 0o755),
    { type: 'symlink', path: 'lib', mode: 0o777, target: 'usr/lib' },
    { type: 'directory', path: 'proc', mode: 0o755 },
    { type: 'directory', path: 'sys', mode: 0o755 },
    { type: 'directory', path: 'usr', mode: 0o755 },
    { type: 'directory', path: 'usr/lib', mode: 0o755 },
  ];
}

/** QEMU's x86 machines and their virtio NIC: PCI on `pc`, MMIO (described by ACPI) on `microvm`. */
const NIC = { pc: 'virtio-net-pci', microvm: 'virtio-net-device' } as const;

async function bootWith(
  set: ResolvedModules,
  name: string,
  machine: keyof typeof NIC = 'pc',
): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of packCpio(baseEntries(set.loadList))) chunks.push(chunk);
  chunks.push(await memberBytes(set));
  const initramfs = join(dir, `${name}.cpio`);
  await writeFile(initramfs, Buffer.concat(chunks));
  const args = [
    ...qemuArguments({
      kernel: kernel.vmlinuz,
      initramfs,
      machine,
      accel: 'tcg',
      append: ['loglevel=4'],
    }),
    // User networking that reaches nothing: the guest only needs a virtio NIC to appear.
    '-netdev',
    'user,id=n0,restrict=on',
    '-device',
    `${NIC[machine]},netdev=n0`,
  ];
  return new Promise((resolve, reject) => {
    const qemu = spawn(qemuBinary('x86_64'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    qemu.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
    });
    qemu.stderr.on('data', (d: Buffer) => {
      out += d.toString('latin1');
    });
    const timer = setTimeout(() => qemu.kill('SIGKILL'), BOOT - 20_000);
    qemu.on('error', reject);
    qemu.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

const line = (out: string, tag: string) =>
  out
    .split(/\r?\n/)
    .find((l) => l.startsWith(`${tag} `))
    ?.slice(tag.length + 1);

describe('the net preset under QEMU', () => {
  it(
    "loads in the resolved order and virtio_net finds the PCI NIC: eth0 appears; the member leaves the base's lib -> usr/lib link alone",
    async () => {
      const set = await resolveModules(directoryModuleSource(kernel.tree), { modules: ['net'] });
      expect(set.release).toBe(kernel.release);
      const out = await bootWith(set, 'net');
      expect(out, out).not.toContain('KMOD-FAIL');
      expect(line(out, 'KMOD-LIB'), out).toBe(`usr/lib ${set.release}`);
      expect(line(out, 'KMOD-NET')?.trim().split(' '), out).toEqual(['eth0', 'lo']);
      expect(line(out, 'KMOD-DRIVER'), out).toBe('virtio_net');
      expect(line(out, 'KMOD-LOADED')?.trim().split(' '), out).toEqual(set.modules.map((m) => m.name).sort());
    },
    BOOT,
  );

  it(
    'on a microvm (virtio-mmio devices, as Firecracker has) virtio_mmio finds the NIC through ACPI: eth0 appears',
    async () => {
      const set = await resolveModules(directoryModuleSource(kernel.tree), { modules: ['net'] });
      const out = await bootWith(set, 'net-mmio', 'microvm');
      expect(out, out).not.toContain('KMOD-FAIL');
      expect(line(out, 'KMOD-NET')?.trim().split(' '), out).toEqual(['eth0', 'lo']);
      expect(line(out, 'KMOD-DRIVER'), out).toBe('virtio_net');
    },
    BOOT,
  );

  it(
    'without the transports that modules.dep does not name, virtio_net loads and finds no device',
    async () => {
      const set = await resolveModules(directoryModuleSource(kernel.tree), { modules: ['virtio_net'] });
      expect(set.modules.map((m) => m.name)).not.toContain('virtio_pci');
      const out = await bootWith(set, 'no-transport');
      expect(out, out).not.toContain('KMOD-FAIL');
      expect(line(out, 'KMOD-LOADED')?.trim().split(' '), out).toContain('virtio_net');
      expect(line(out, 'KMOD-NET')?.trim(), out).toBe('lo');
    },
    BOOT,
  );
});
