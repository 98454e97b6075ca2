import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { bootInitramfs, findKernel } from '@irb/boot';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { encodeJobConfig, jobConfigPath } from '@irb/init';
import { fileEntry, kernelModulesDir, moduleClosure, moduleFiles, talkWhenReady } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planInit } from '../src/init.ts';
import { fakeRootfs, type Node } from './fake-rootfs.ts';

// The generated shell /init on x86_64 and arm64, with irb's static init as its helper, under the
// real Debian kernels and their modules: what the script does with busybox, the helper does with
// system calls (modules, the network from ip=, job files, the user switch).
const BOOT = 240_000;
let dir: string;
const cache = process.env.XDG_CACHE_HOME || join(process.env.HOME || homedir(), '.cache');
/** Each guest: its kernel, a static busybox for it, QEMU's machine. */
const guests = [
  { arch: 'x86_64', platform: 'amd64', busybox: '/bin/busybox', machine: 'pc' },
  {
    arch: 'aarch64',
    platform: 'arm64',
    busybox: join(cache, 'irb', 'aarch64', 'bin', 'busybox'),
    machine: 'virt',
  },
] as const;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-sh-net-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const text = (s: string) => new TextEncoder().encode(s);

describe.each(guests)('the shell init with its helper ($arch)', (guest) => {
  it(
    "loads the modules (one bogus, the rest from a job file), configures eth0 from ip= (over the job's network), applies a job file with a user by name, and serves the host",
    async () => {
      const kernel = await findKernel({ arch: guest.arch });
      const modules = await kernelModulesDir(kernel);
      const found = await moduleFiles(
        modules.dir,
        modules.release,
        await moduleClosure(modules.dir, ['virtio_net', 'virtio_pci']),
      );
      const passwd = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n';
      const group = 'root:x:0:\napp:x:1000:\nstaff:x:50:app\n';
      const applets = ['sh', 'mount', 'mkdir', 'ln', 'poweroff', 'sleep'];
      // The image as planInit sees it: busybox and its links, passwd and group.
      const nodes: Record<string, Node> = {
        '/bin': { type: 'directory' },
        '/bin/busybox': { type: 'file' },
        '/etc': { type: 'directory' },
        '/etc/passwd': { type: 'file', text: passwd },
        '/etc/group': { type: 'file', text: group },
        '/srv': { type: 'directory' },
      };
      for (const a of applets) nodes[`/bin/${a}`] = { type: 'symlink', target: 'busybox' };
      const script = [
        'echo "probe: addr=$(busybox ip -4 -o addr show dev eth0 | busybox awk \'{print $4}\') resolv=$(busybox cat /etc/resolv.conf)"',
        'echo "probe: listening"',
        'busybox nc -l -p 8080 -e /bin/busybox sh -c \'read line; echo "sh init got $line as $(busybox id -un):$(busybox id -G) in $(busybox pwd) for job $JOB"\'',
      ].join('\n');
      const plan = await planInit(
        fakeRootfs(nodes),
        { Entrypoint: ['/bin/busybox', 'sh', '-c', script], Env: ['PATH=/bin'] },
        // The script's own list has the bogus module; the job file (an appended modules member)
        // brings the real ones, and a network that the kernel command line's ip= overrides.
        { architecture: guest.platform, modules: ['/lib/modules/bogus.ko'], netWaitMs: 3000 },
      );
      expect(plan.helper?.arch).toBe(guest.arch);
      const job = jobConfigPath(123_456);
      const entries: CpioEntry[] = [
        { type: 'directory', path: 'bin', mode: 0o755 },
        fileEntry('bin/busybox', new Uint8Array(await readFile(guest.busybox)), 0o755),
        ...applets.map(
          (a): CpioEntry => ({ type: 'symlink', path: `bin/${a}`, mode: 0o777, target: 'busybox' }),
        ),
        { type: 'directory', path: 'dev', mode: 0o755 },
        { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
        { type: 'directory', path: 'etc', mode: 0o755 },
        fileEntry('etc/passwd', text(passwd)),
        fileEntry('etc/group', text(group)),
        { type: 'directory', path: 'srv', mode: 0o755 },
        ...plan.directories.map((d): CpioEntry => ({ type: 'directory', path: d.slice(1), mode: 0o755 })),
        fileEntry('init', text(plan.script), 0o755),
        { type: 'directory', path: 'irb', mode: 0o755 },
        fileEntry('irb/init', plan.helper?.binary ?? new Uint8Array(), 0o755),
        // What a job's `irb append --env JOB=7 --user app --workdir /srv` carries.
        { type: 'directory', path: 'irb/job.d', mode: 0o755 },
        fileEntry(
          job.slice(1),
          encodeJobConfig({
            env: ['JOB=7'],
            user: 'app',
            workingDir: '/srv',
            modules: found.paths,
            net: { address: '10.0.2.99', prefix: 24 },
          }),
          0o600,
        ),
        ...found.directories.map((d): CpioEntry => ({ type: 'directory', path: d, mode: 0o755 })),
        fileEntry('lib/modules/bogus.ko', text('not a module')),
        ...found.files.map((f) => fileEntry(f.path, f.body)),
      ];
      const path = join(dir, `sh-net-${guest.arch}.cpio`);
      await pipeline(Readable.from(packCpio(entries)), createWriteStream(path));

      const talk = talkWhenReady({
        ready: /^probe: listening$/m,
        message: 'ping\n',
        timeoutMs: BOOT - 20_000,
      });
      const result = await bootInitramfs({
        kernel,
        initramfs: path,
        arch: guest.arch,
        machine: guest.machine,
        accel: 'tcg',
        memoryMb: 512,
        append: ['ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3'],
        net: { forwards: [{ hostPort: 0, guestPort: 8080 }] },
        timeoutMs: BOOT - 20_000,
        onStart: talk.onStart,
        onOutput: talk.onOutput,
      });
      const out = result.output;
      expect(await talk.answer(), out).toBe('sh init got ping as app:1000 50 in /srv for job 7\n');
      expect(result, out).toMatchObject({ exitCode: 0, timedOut: false });
      expect(out).toMatch(/^irb: module bogus: Exec format error$/m);
      expect(out).toMatch(/^irb: net: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2$/m);
      expect(out).toMatch(/^probe: addr=10\.0\.2\.15\/24 resolv=nameserver 10\.0\.2\.3$/m);
      expect(out).toMatch(/^irb: exit status 0$/m);
      // The script's markers go through the kernel log; the helper's carry their time.
      const at = (re: RegExp) => Number(re.exec(out)?.[1]);
      const init = at(/^\[\s*(\d+\.\d+)\] irb: init$/m);
      const mods = at(/^irb: modules (\d+\.\d{6})$/m);
      const net = at(/^irb: net (\d+\.\d{6})$/m);
      const exec = at(/^\[\s*(\d+\.\d+)\] irb: exec$/m);
      expect(init, out).toBeLessThanOrEqual(mods);
      expect(mods).toBeLessThanOrEqual(net);
      expect(net).toBeLessThanOrEqual(exec);
    },
    BOOT,
  );
});
