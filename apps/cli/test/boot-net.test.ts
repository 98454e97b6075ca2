import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exchange } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The hand-built archive of @irb/boot's network tests: busybox, Debian's modules, an /init that
// loads them and configures eth0 from ip= (as irb's init does), then runs a script.
import { debianKernel, netArchive } from '../../../packages/boot/test/net-archive.ts';
import { runCli } from './harness.ts';

const BOOT = 300_000;
/**
 * One answer to one connection on guest port 80, then the guest powers off. The request's first
 * line is read before the answer: a socket closed with unread bytes is reset, and the reset would
 * overtake the answer on its way out of QEMU's user network.
 */
const SERVE_ONCE = [
  'echo "irb-test: listening"',
  `nc -l -p 80 -e /bin/sh -c 'read line; echo HTTP/1.0 200 OK; echo; echo "hello, $line"'`,
  'echo "irb-test: served"',
  'poweroff -f',
].join('\n');

const FORWARD_LINE = /^irb: forward 127\.0\.0\.1:(\d+) -> guest port 80 \(a free port\)$/m;

/** A server on a free 127.0.0.1 port, holding it. */
function occupy(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.destroy());
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as { port: number }).port }),
    );
  });
}

// Real kernel under QEMU (TCG), Debian's x86_64 kernel and its virtio_net/virtio_pci modules.
describe('irb boot --net / --forward', () => {
  let dir: string;
  let web: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-cli-net-'));
    web = await netArchive(join(dir, 'web.cpio'), {
      arch: 'x86_64',
      modules: ['virtio_net', 'virtio_pci'],
      script: SERVE_ONCE,
    });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a malformed --forward or one with another host address is a usage error, before anything boots', async () => {
    const cases: Array<[string, RegExp]> = [
      [
        '0.0.0.0:8080:80',
        /^irb: error: --forward "0\.0\.0\.0:8080:80": host address "0\.0\.0\.0" refused, .*; write 8080:80 or 127\.0\.0\.1:8080:80; see "irb boot --help"$/,
      ],
      ['80', /^irb: error: --forward "80" is not \[127\.0\.0\.1:\]HOSTPORT:GUESTPORT/],
      ['8080:0', /^irb: error: --forward "8080:0": guest port "0" is not a port number from 1 to 65535/],
    ];
    for (const [spec, pattern] of cases) {
      const result = await runCli(['boot', join(dir, 'missing.cpio'), '--forward', spec]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(result.stderr.trimEnd()).toMatch(pattern);
    }
  });

  it('refusals before QEMU starts are bad values (exit 2): a taken host port, a kernel or modules that do not fit', async () => {
    const { server, port } = await occupy();
    try {
      const taken = await runCli(['boot', web, '--forward', `${port}:80`, '--timeout', '60']);
      expect(taken.code, taken.stderr).toBe(2);
      expect(taken.stderr).toBe(
        `irb: error: host port ${port} on 127.0.0.1 cannot be bound (EADDRINUSE); forward another host port, or 0 for a free one\n`,
      );
      expect(taken.stdout).toBe('');
    } finally {
      server.close();
    }
    // The arm64 kernel for an x86_64 archive.
    const arm64 = join(debianKernel('aarch64').root, 'boot');
    const [image] = (await readdir(arm64)).filter((name) => name.startsWith('vmlinuz-'));
    const foreign = await runCli(['boot', web, '--kernel', join(arm64, image as string)]);
    expect(foreign.code, foreign.stderr).toBe(2);
    expect(foreign.stderr).toMatch(
      /^irb: error: kernel \S+ is an aarch64 kernel \(its \S+ header says so\) but /,
    );
    // arm64's modules in an archive booted with the x86_64 kernel.
    const armModules = await netArchive(join(dir, 'arm64-modules.cpio'), {
      arch: 'x86_64',
      moduleArch: 'aarch64',
      modules: ['virtio_net'],
      script: 'poweroff -f',
    });
    const mismatch = await runCli(['boot', armModules, '--net']);
    expect(mismatch.code, mismatch.stderr).toBe(2);
    expect(mismatch.stderr).toMatch(
      /^irb: error: the archive's kernel modules are for \S+-arm64 .* but the kernel /,
    );
  });

  it(
    '--forward 0:80 prints the bound port; a client on this machine reaches the guest through it',
    async () => {
      let answer: Promise<string> | undefined;
      const booted = await runCli(['boot', web, '--forward', '0:80', '--timeout', String(BOOT / 1000)], {
        timeoutMs: BOOT + 60_000,
        interruptWhen: (stderr) => {
          const port = FORWARD_LINE.exec(stderr)?.[1];
          if (port && !answer) answer = exchange(Number(port), 'from the host\n', Date.now() + BOOT);
          return false;
        },
      });
      expect(booted.code, booted.stdout + booted.stderr).toBe(0);
      // One line per forward, on stderr, as soon as QEMU bound it.
      expect(booted.stderr.match(new RegExp(FORWARD_LINE.source, 'gm'))).toHaveLength(1);
      expect(await answer).toBe('HTTP/1.0 200 OK\n\nhello, from the host\n');
      expect(booted.stdout).toContain('irb: net: eth0 10.0.2.15');
      expect(booted.stdout).toContain('irb-test: served');
    },
    BOOT + 120_000,
  );

  it(
    '--timeline --forward: when the network answered, the port accepted and the answer came',
    async () => {
      const timeline = await runCli(
        ['boot', web, '--timeline', '--forward', '0:80', '--json', '--timeout', String(BOOT / 1000)],
        { timeoutMs: BOOT + 60_000 },
      );
      expect(timeline.code, timeline.stderr).toBe(0);
      const t = JSON.parse(timeline.stdout);
      expect(t.answerLine).toBe('HTTP/1.0 200 OK');
      for (const phase of ['netUpMs', 'acceptedMs', 'answerMs']) {
        expect(typeof t[phase], phase).toBe('number');
        expect(t.min[phase]).toBe(t[phase]);
      }
      expect(t.netUpMs).toBeLessThanOrEqual(t.acceptedMs);
      expect(t.acceptedMs).toBeLessThanOrEqual(t.answerMs);
    },
    BOOT + 120_000,
  );

  it(
    'a guest that found no network device still boots; the verdict names the modules to add',
    async () => {
      const bare = await netArchive(join(dir, 'bare.cpio'), { arch: 'x86_64', script: 'poweroff -f' });
      // The kernel without its module tree beside it: nothing tells before the boot that virtio_net
      // is a module the archive lacks, so the guest's init tells.
      const { root } = debianKernel('x86_64');
      const [image] = (await readdir(join(root, 'boot'))).filter((name) => name.startsWith('vmlinuz-'));
      await mkdir(join(dir, 'alone', 'boot'), { recursive: true });
      const kernel = join(dir, 'alone', 'boot', image as string);
      await symlink(join(root, 'boot', image as string), kernel);
      const booted = await runCli(
        ['boot', bare, '--net', '--kernel', kernel, '--timeout', String(BOOT / 1000)],
        {
          timeoutMs: BOOT + 60_000,
        },
      );
      expect(booted.code, booted.stdout + booted.stderr).toBe(0);
      expect(booted.stderr).toMatch(
        /^irb: warning: the guest found no network device eth0 after 2000 ms: the archive lacks the kernel's network driver; add the modules virtio_net and virtio_pci/m,
      );
    },
    BOOT + 120_000,
  );
});
