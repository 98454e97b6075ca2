import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootInitramfs, findKernel } from '@irb/boot';
import type { CpioEntry } from '@irb/cpio';
import { kernelModulesDir, moduleClosure, talkWhenReady } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJobConfig, jobConfigPath, type StaticInitConfig } from '../src/index.ts';
import { fileEntry, linesWith, moduleEntries, writeStaticInitArchive } from './archive.ts';

// The real Debian kernel and its real modules under QEMU (TCG): virtio_net, virtio_pci and vsock
// are modules there, and CONFIG_IP_PNP is off, so the init does what the kernel would not.
const BOOT = 240_000;
const bb = '/bin/busybox';
let dir: string;
let kernel: string;
let modules: { dir: string; release: string };
let busybox: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-init-net-'));
  kernel = await findKernel();
  modules = await kernelModulesDir(kernel);
  busybox = new Uint8Array(await readFile('/bin/busybox'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The markers' times, by name, in seconds. */
function markers(output: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of output.matchAll(/^irb: (init|modules|net|exec) (\d+\.\d{6})$/gm))
    out[m[1] as string] = Number(m[2]);
  return out;
}

/** Boots an archive to its power-off; the console. */
async function boot(initramfs: string, append: string[]): Promise<string> {
  const result = await bootInitramfs({ kernel, initramfs, append, timeoutMs: BOOT - 20_000 });
  expect(result, result.output).toMatchObject({ ok: true, exitCode: 0 });
  return result.output;
}

/**
 * Boots with QEMU's user network and a forward to the guest's port 8080, with no `ip=` but the
 * one in `append` (the init's own configuration is under test); once the guest prints
 * `probe: listening`, the host sends `ping` and keeps the answer.
 */
async function serve(initramfs: string, append: string[]) {
  const talk = talkWhenReady({ ready: /^probe: listening$/m, message: 'ping\n', timeoutMs: BOOT - 20_000 });
  const result = await bootInitramfs({
    kernel,
    initramfs,
    machine: 'pc',
    accel: 'tcg',
    memoryMb: 512,
    append,
    net: { forwards: [{ hostPort: 0, guestPort: 8080 }], ip: false },
    timeoutMs: BOOT - 20_000,
    onStart: talk.onStart,
    onOutput: talk.onOutput,
  });
  return { ...result, answer: await talk.answer() };
}

async function archive(
  name: string,
  config: StaticInitConfig,
  extra: Parameters<typeof writeStaticInitArchive>[2]['extra'] = [],
) {
  return writeStaticInitArchive(dir, name, { arch: 'x86_64', busybox, config, extra });
}

describe('static init (x86_64): kernel modules and the network', () => {
  it(
    'loads virtio_net and its transport, configures eth0 from ip= (over the baked value), and a host client reaches a guest server',
    async () => {
      const closure = await moduleClosure(modules.dir, ['virtio_net', 'virtio_pci']);
      // What modules.dep says for Debian's 6.1: dependencies first, the transport beside the driver.
      expect(closure.map((p) => p.replace(/^.*\//, ''))).toEqual([
        'virtio_ring.ko',
        'virtio.ko',
        'failover.ko',
        'net_failover.ko',
        'virtio_net.ko',
        'virtio_pci_modern_dev.ko',
        'virtio_pci_legacy_dev.ko',
        'virtio_pci.ko',
      ]);
      const mods = await moduleEntries(modules.dir, modules.release, closure);
      const script = [
        `echo "probe: addr=$(${bb} ip -4 -o addr show dev eth0 | ${bb} awk '{print $4}')"`,
        `echo "probe: route=$(${bb} ip route show default)"`,
        `echo "probe: resolv=$(${bb} tr '\\n' ';' < /etc/resolv.conf)"`,
        `echo "probe: host=$(${bb} hostname) domain=$(${bb} cat /proc/sys/kernel/domainname)"`,
        `echo "probe: params=$(${bb} cat /sys/module/virtio_net/parameters/napi_tx) $(${bb} cat /sys/module/virtio_net/parameters/gso)"`,
        'echo "probe: listening"',
        `${bb} nc -l -p 8080 -e ${bb} sh -c 'read line; echo "guest got $line from $(${bb} hostname)"'`,
        'echo "probe: served"',
      ].join('\n');
      const path = await archive(
        'net.cpio',
        {
          argv: [bb, 'sh', '-c', script],
          env: ['PATH=/bin'],
          modules: mods.paths,
          // The kernel command line's ip= wins: with this address the forward would find nobody.
          net: { address: '10.0.2.99', prefix: 24 },
        },
        mods.entries,
      );
      const result = await serve(path, [
        'loglevel=4',
        'ip=10.0.2.15::10.0.2.2:255.255.255.0:guest.example:eth0:off:10.0.2.3',
        // Module parameters on the kernel command line reach the module, as modprobe passes them.
        'virtio_net.napi_tx=0',
        'virtio-net.gso=0',
      ]);
      const out = result.output;
      expect(result.command.join(' ')).toMatch(
        /-netdev user,id=net0,restrict=on,hostfwd=tcp:127\.0\.0\.1:\d+-:8080 -device virtio-net-pci,netdev=net0 /,
      );
      expect(result.answer, out).toBe('guest got ping from guest\n');
      expect(result, out).toMatchObject({ exitCode: 0, timedOut: false });
      expect(out).toMatch(/^irb: net: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2$/m);
      expect(out).not.toMatch(/^irb: module /m);
      expect(linesWith(out, 'probe: ')).toEqual([
        'addr=10.0.2.15/24',
        'route=default via 10.0.2.2 dev eth0 ',
        'resolv=nameserver 10.0.2.3;',
        'host=guest domain=example',
        'params=N N',
        'listening',
        'served',
      ]);
      expect(out).toMatch(/^irb: exit status 0$/m);
      const t = markers(out);
      expect(t.init, out).toBeLessThanOrEqual(t.modules as number);
      expect(t.modules, out).toBeLessThanOrEqual(t.net as number);
      expect(t.net, out).toBeLessThanOrEqual(t.exec as number);
    },
    BOOT,
  );

  it(
    'reports a module that fails in one line and still starts the program; a loaded one twice is fine; no device in time is one line',
    async () => {
      const failover = (await moduleClosure(modules.dir, ['failover']))[0] as string;
      const mods = await moduleEntries(modules.dir, modules.release, [failover]);
      const path = await archive(
        'bad-module.cpio',
        {
          argv: [
            bb,
            'sh',
            '-c',
            `echo "probe: ran"; ${bb} grep -o '^failover ' /proc/modules | ${bb} sed 's/^/probe: /'`,
          ],
          env: ['PATH=/bin'],
          modules: ['/bogus.ko', mods.paths[0] as string, mods.paths[0] as string, '/missing.ko.zst'],
          net: { address: '10.0.2.15', prefix: 24, device: 'eth0' },
          netWaitMs: 300,
        },
        [fileEntry('bogus.ko', 'not an ELF file at all'), ...mods.entries],
      );
      const out = await boot(path, ['loglevel=4']);
      expect(linesWith(out, 'irb: module ')).toEqual([
        'bogus: Exec format error',
        'missing: No such file or directory',
      ]);
      expect(out).toMatch(/^irb: net: no device eth0 after 300 ms$/m);
      expect(linesWith(out, 'probe: ')).toEqual(['ran', 'failover ']);
      const t = markers(out);
      expect(t.modules, out).toBeDefined();
      expect(t.net).toBeUndefined();
      expect(out).toMatch(/^irb: exit status 0$/m);
    },
    BOOT,
  );

  it(
    'vsock_loopback: a guest program listens and connects on CID 1',
    async () => {
      const program = join(dir, 'vsock-echo');
      const cc = spawnSync(
        'gcc',
        ['-static', '-Os', '-o', program, join(import.meta.dirname, 'vsock-echo.c')],
        {
          encoding: 'utf8',
        },
      );
      expect(cc.status, cc.stderr).toBe(0);
      const closure = await moduleClosure(modules.dir, ['vsock_loopback']);
      expect(closure.map((p) => p.replace(/^.*\//, ''))).toEqual([
        'vsock.ko',
        'vmw_vsock_virtio_transport_common.ko',
        'vsock_loopback.ko',
      ]);
      const mods = await moduleEntries(modules.dir, modules.release, closure);
      const path = await archive('vsock.cpio', { argv: ['/vsock-echo'], modules: mods.paths }, [
        ...mods.entries,
        fileEntry('vsock-echo', new Uint8Array(await readFile(program)), 0o755),
      ]);
      const out = await boot(path, ['loglevel=4']);
      expect(linesWith(out, 'vsock: ').sort()).toEqual(['client got pong', 'server got ping']);
      expect(out).not.toMatch(/^irb: module /m);
      expect(out).toMatch(/^irb: exit status 0$/m);
    },
    BOOT,
  );
});

describe('static init (x86_64): per-job files', () => {
  const users: CpioEntry[] = [
    { type: 'directory', path: 'etc', mode: 0o755 },
    fileEntry('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n'),
    fileEntry('etc/group', 'root:x:0:\napp:x:1000:\nstaff:x:50:other,app\naudio:x:29:other\n'),
  ];
  const base = (script: string): StaticInitConfig => ({
    // Entrypoint: busybox sh -c SCRIPT zero; Cmd: base
    argv: [bb, 'sh', '-c', script, 'zero', 'base'],
    entrypointLength: 5,
    env: ['PATH=/bin', 'MODE=base', 'HOME=/root'],
    homeFromUser: true,
  });

  it(
    'applies /irb/job.d in name order, each changing only what it names; a user by name resolves from the guest',
    async () => {
      const script = [
        'echo "probe: args=$0|$*"',
        `echo "probe: ids=$(${bb} id -u):$(${bb} id -g):$(${bb} id -G)"`,
        `echo "probe: cwd=$(${bb} pwd)"`,
        'echo "probe: env MODE=$MODE JOB=$JOB KEEP=$KEEP HOME=$HOME"',
      ].join('\n');
      const jobs = [
        // The agent's append: a new Cmd and variables.
        [jobConfigPath(100), encodeJobConfig({ cmd: ['job-a', 'job b'], env: ['MODE=one', 'KEEP=1'] })],
        // The job's append, later: its variables win; its directory and user.
        [
          jobConfigPath(2000),
          encodeJobConfig({ env: ['MODE=two', 'JOB=42'], workingDir: '/srv', user: 'app' }),
        ],
      ] as const;
      const path = await archive('jobs.cpio', base(script), [
        ...users,
        { type: 'directory', path: 'srv', mode: 0o755 },
        { type: 'directory', path: 'irb/job.d', mode: 0o755 },
        ...jobs.map(([p, bytes]) => fileEntry(p.slice(1), bytes, 0o600)),
        fileEntry('irb/job.d/notes.txt', 'not a job file: ignored'),
      ]);
      // The last ip= counts, as for the kernel; what follows "--" is init's, not the kernel's.
      const out = await boot(path, ['loglevel=4', 'ip=10.0.0.5::::::off', 'ip=dhcp', '--', 'ip=10.9.9.9']);
      expect(linesWith(out, 'probe: ')).toEqual([
        'args=zero|job-a job b',
        'ids=1000:1000:1000 50',
        'cwd=/srv',
        'env MODE=two JOB=42 KEEP=1 HOME=/home/app',
      ]);
      expect(out).not.toContain('irb: net: no device');
      expect(out).toMatch(
        /^irb: net: ip=dhcp asks for DHCP, BOOTP or RARP; irb's init configures static addresses only: ip=<client>::<gateway>:<netmask>::<device>:off$/m,
      );
      expect(out).toMatch(/^irb: exit status 0$/m);
    },
    BOOT,
  );

  it(
    'loads the modules and configures the network a job file brings (an appended modules member), with neither in init.conf nor ip=',
    async () => {
      const closure = await moduleClosure(modules.dir, ['virtio_net', 'virtio_pci']);
      const mods = await moduleEntries(modules.dir, modules.release, closure);
      const script = [
        `echo "probe: addr=$(${bb} ip -4 -o addr show dev eth0 | ${bb} awk '{print $4}') JOB=$JOB"`,
        'echo "probe: listening"',
        `${bb} nc -l -p 8080 -e ${bb} sh -c 'read line; echo "job got $line"'`,
      ].join('\n');
      const path = await archive('job-net.cpio', { argv: [bb, 'sh', '-c', script], env: ['PATH=/bin'] }, [
        ...mods.entries,
        { type: 'directory', path: 'irb/job.d', mode: 0o755 },
        // Two appends: the first brings half the modules, the second the rest, a variable and the network.
        fileEntry(jobConfigPath(10).slice(1), encodeJobConfig({ modules: mods.paths.slice(0, 3) }), 0o600),
        fileEntry(
          jobConfigPath(20).slice(1),
          encodeJobConfig({
            env: ['JOB=9'],
            modules: mods.paths.slice(3),
            net: { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2' },
          }),
          0o600,
        ),
      ]);
      const result = await serve(path, ['loglevel=4']);
      const out = result.output;
      // The network is the job file's: the kernel command line has no ip= to override it.
      expect(result.command.at(-1)).not.toMatch(/\bip=/);
      expect(result.answer, out).toBe('job got ping\n');
      expect(out).not.toMatch(/^irb: module /m);
      expect(out).toMatch(/^irb: net: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2$/m);
      expect(linesWith(out, 'probe: ')).toEqual(['addr=10.0.2.15/24 JOB=9', 'listening']);
      expect(out).toMatch(/^irb: exit status 0$/m);
    },
    BOOT,
  );

  it(
    'refuses to run a job whose user the guest does not know, in one line, with status 126',
    async () => {
      const path = await archive('bad-job.cpio', base('echo "probe: ran"'), [
        ...users,
        { type: 'directory', path: 'irb/job.d', mode: 0o755 },
        fileEntry('irb/job.d/1.conf', encodeJobConfig({ entrypoint: '/bin/busybox', cmd: ['true'] })),
        fileEntry('irb/job.d/2.conf', encodeJobConfig({ user: 'nobody2:staff' })),
      ]);
      const out = await boot(path, ['loglevel=4']);
      expect(out).toMatch(
        /^irb-init: user nobody2 is not in \/etc\/passwd; give a numeric id, or add it to the image$/m,
      );
      expect(out).not.toContain('probe: ran');
      expect(out).not.toContain('irb: exec');
      expect(out).toMatch(/^irb: exit status 126$/m);
    },
    BOOT,
  );
});
