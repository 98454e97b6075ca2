import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootInitramfs, findKernel } from '@irb/boot';
import { kernelModulesDir, moduleClosure, talkWhenReady } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootMarks, linesWith, moduleEntries, writeStaticInitArchive } from './archive.ts';

// qemu-system-aarch64 under TCG on any host; scripts/ensure-env.sh unpacks Debian's arm64
// kernel and static busybox into the cache.
const BOOT = 300_000;
const cache = process.env.XDG_CACHE_HOME || join(process.env.HOME || homedir(), '.cache');
const busyboxPath = join(cache, 'irb', 'aarch64', 'bin', 'busybox');
let dir: string;
let kernel: string;
let busybox: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-init-arm64-'));
  kernel = await findKernel({ arch: 'aarch64' });
  busybox = new Uint8Array(
    await readFile(busyboxPath).catch((cause: unknown) => {
      throw new Error(`no arm64 busybox at ${busyboxPath}; run scripts/ensure-env.sh`, { cause });
    }),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('static init (aarch64) under qemu-system-aarch64 -M virt', () => {
  it(
    'runs the program as the configured user in its working directory and reports its exit status',
    async () => {
      const bb = '/bin/busybox';
      const script = [
        `echo "probe: arch=$(${bb} uname -m) ids=$(${bb} id -u):$(${bb} id -g) groups=$(${bb} id -G)"`,
        `echo "probe: cwd=$(${bb} pwd) args=$0,$1 GREETING=$GREETING"`,
        `echo "probe: proc=$(${bb} awk '$2 == "/proc" {print $3}' /proc/mounts)"`,
        'exit 42',
      ].join('\n');
      const path = await writeStaticInitArchive(dir, 'arm64.cpio', {
        arch: 'aarch64',
        busybox,
        config: {
          argv: ['busybox', 'sh', '-c', script, 'zero', 'one'],
          env: ['PATH=/bin', 'GREETING=hi there'],
          workingDir: '/work',
          uid: 1000,
          gid: 1000,
          groups: [1000, 27],
        },
        directories: [{ path: 'work', mode: 0o755 }],
      });
      const result = await bootInitramfs({ kernel, initramfs: path, arch: 'auto', timeoutMs: BOOT - 20_000 });
      const out = result.output;
      expect(result, out + result.stderr).toMatchObject({
        ok: true,
        arch: 'aarch64',
        machine: 'virt',
        accel: 'tcg',
        exitCode: 0,
      });
      expect(result.command[0]).toBe('qemu-system-aarch64');
      expect(linesWith(out, 'probe: ')).toEqual([
        'arch=aarch64 ids=1000:1000 groups=1000 27',
        'cwd=/work args=zero,one GREETING=hi there',
        'proc=proc',
      ]);
      const marks = bootMarks(out);
      expect(marks.init, out).toBeGreaterThanOrEqual(marks.runInit ?? Number.NaN);
      expect(marks.exec, out).toBeGreaterThanOrEqual(marks.init ?? Number.NaN);
      expect((marks.exec ?? 0) - (marks.runInit ?? 0)).toBeLessThan(1);
      expect(out).toMatch(/^irb: exit status 42$/m);
      expect(out).toContain('reboot: Power down');
    },
    BOOT,
  );

  it(
    "loads arm64's own virtio_net and virtio_pci modules, configures eth0 from ip=, and a host client reaches a guest server",
    async () => {
      const bb = '/bin/busybox';
      const modules = await kernelModulesDir(kernel);
      const closure = await moduleClosure(modules.dir, ['virtio_net', 'virtio_pci']);
      // virtio and virtio_ring are built into Debian's arm64 kernel: not in the list.
      expect(closure.map((p) => p.replace(/^.*\//, ''))).toEqual([
        'failover.ko',
        'net_failover.ko',
        'virtio_net.ko',
        'virtio_pci_modern_dev.ko',
        'virtio_pci_legacy_dev.ko',
        'virtio_pci.ko',
      ]);
      const mods = await moduleEntries(modules.dir, modules.release, closure);
      const script = [
        `echo "probe: addr=$(${bb} ip -4 -o addr show dev eth0 | ${bb} awk '{print $4}') route=$(${bb} ip route show default)"`,
        'echo "probe: listening"',
        `${bb} nc -l -p 7000 -e ${bb} sh -c 'read line; echo "arm64 got $line"'`,
      ].join('\n');
      const path = await writeStaticInitArchive(dir, 'arm64-net.cpio', {
        arch: 'aarch64',
        busybox,
        config: { argv: [bb, 'sh', '-c', script], env: ['PATH=/bin'], modules: mods.paths },
        extra: mods.entries,
      });
      const talk = talkWhenReady({
        ready: /^probe: listening$/m,
        message: 'ping\n',
        timeoutMs: BOOT - 20_000,
      });
      const result = await bootInitramfs({
        kernel,
        initramfs: path,
        arch: 'aarch64',
        machine: 'virt',
        accel: 'tcg',
        memoryMb: 512,
        append: ['loglevel=4', 'ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3'],
        net: { forwards: [{ hostPort: 0, guestPort: 7000 }] },
        timeoutMs: BOOT - 20_000,
        onStart: talk.onStart,
        onOutput: talk.onOutput,
      });
      const out = result.output;
      expect(await talk.answer(), out).toBe('arm64 got ping\n');
      expect(result, out).toMatchObject({ exitCode: 0, timedOut: false });
      expect(out).not.toMatch(/^irb: module /m);
      expect(out).toMatch(/^irb: net: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2$/m);
      expect(linesWith(out, 'probe: ')[0]).toBe('addr=10.0.2.15/24 route=default via 10.0.2.2 dev eth0 ');
      expect(out).toMatch(/^irb: modules \d+\.\d{6}$/m);
      expect(out).toMatch(/^irb: exit status 0$/m);
    },
    BOOT,
  );

  it(
    'reports a missing WorkingDir in one line, with status 126, and runs nothing',
    async () => {
      const path = await writeStaticInitArchive(dir, 'no-console.cpio', {
        arch: 'aarch64',
        busybox,
        config: { argv: ['/bin/busybox', 'true'], workingDir: '/no/such/dir' },
      });
      const result = await bootInitramfs({
        kernel,
        initramfs: path,
        arch: 'aarch64',
        timeoutMs: BOOT - 20_000,
      });
      const out = result.output;
      expect(result, out).toMatchObject({ ok: true, exitCode: 0 });
      expect(out).toMatch(/^irb: init \d+\.\d{6}$/m);
      expect(out).toMatch(
        /^irb-init: cannot change to WorkingDir \/no\/such\/dir: No such file or directory$/m,
      );
      expect(out).toMatch(/^irb: exit status 126$/m);
      expect(out).not.toContain('irb: exec');
      expect(out).toContain('reboot: Power down');
    },
    BOOT,
  );

  it(
    'without its parameter file, says so in one line and powers off instead of panicking',
    async () => {
      const path = await writeStaticInitArchive(dir, 'no-config.cpio', {
        arch: 'aarch64',
        busybox,
        config: undefined,
      });
      const result = await bootInitramfs({
        kernel,
        initramfs: path,
        arch: 'aarch64',
        timeoutMs: BOOT - 20_000,
      });
      const out = result.output;
      expect(result, out).toMatchObject({ ok: true, exitCode: 0, panicked: false });
      expect(out).toMatch(/^irb-init: cannot read \/irb\/init\.conf: No such file or directory$/m);
      expect(out).not.toContain('irb: exit status');
      expect(out).toContain('reboot: Power down');
    },
    BOOT,
  );
});
