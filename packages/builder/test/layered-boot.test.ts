import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, buildTar, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendOverlay, bootInitramfs, findKernel, InitramfsBuilder } from '../src/index.ts';

const BOOT = 300_000;

/** An agent script that says who it is and what it sees of the base. */
const agent = (name: string) =>
  [
    '#!/bin/busybox sh',
    `echo "agent ${name} runs"`,
    '[ -L /bin ] && echo "bin is still a symlink"',
    'echo "tmp mode $(/bin/busybox stat -c %a /tmp)"',
    '/bin/busybox grep -q "agent A" /usr/lib/agent-a && echo "the hard link still has agent A"',
    '[ -f /etc/job/sub/x ] && echo "job: $(/bin/busybox cat /etc/job/top.txt) $(/bin/busybox cat /etc/job/sub/x)"',
    '[ -f /new/deep/agent ] && echo "new parents are there"',
    'exit 0',
    '',
  ].join('\n');

// The kernel sees the overlay: the image (the base) has agent A; a rebuild on the cached base and
// an `irb append` onto a built archive run agent B and C, and the base's /bin symlink and /tmp's
// mode survive the overlay.
describe('layered archives boot with the overlay on top of the base', () => {
  let registry: StartedRegistry;
  let dir: string;
  let kernel: string;
  let image: string;

  beforeAll(async () => {
    registry = await startRegistry();
    dir = await mkdtemp(join(tmpdir(), 'irb-layered-boot-'));
    kernel = await findKernel();
    const busybox = await readFile('/bin/busybox');
    const layer = await buildTar([
      { type: 'directory', path: 'usr/' },
      { type: 'directory', path: 'usr/bin/' },
      { type: 'file', path: 'usr/bin/busybox', mode: 0o755, content: busybox },
      { type: 'file', path: 'usr/bin/agent', mode: 0o755, content: agent('A') },
      // A second name of agent A: replacing /bin/agent must not rewrite it.
      { type: 'directory', path: 'usr/lib/' },
      { type: 'link', path: 'usr/lib/agent-a', target: 'usr/bin/agent' },
      { type: 'symlink', path: 'bin', target: 'usr/bin' },
      { type: 'directory', path: 'tmp/', mode: 0o1777 },
      // Not a mount point of the init (as /tmp is): an overlay must keep its mode.
      { type: 'directory', path: 'srv/', mode: 0o750 },
    ]);
    await pushImage(
      registry,
      'layered/agent',
      'v1',
      buildImage({ layers: [layer], runtime: { Cmd: ['/bin/agent'] } }),
    );
    image = `${registry.host}/layered/agent:v1`;
  }, 60_000);
  /** A host directory to inject: files, a nested directory, relative and absolute symlinks. */
  const jobTree = async () => {
    const job = join(dir, 'job');
    await mkdir(join(job, 'sub', 'deep'), { recursive: true });
    await writeFile(join(job, 'top.txt'), 'top');
    await writeFile(join(job, 'sub', 'x'), 'x');
    await writeFile(join(job, 'sub', 'deep', 'y'), 'y');
    await symlink('top.txt', join(job, 'rel')).catch(() => {});
    await symlink('/usr/bin/busybox', join(job, 'sub', 'abs')).catch(() => {});
    return job;
  };

  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'a rebuild on the cached base runs the injected agent B; an append onto it runs agent C',
    async () => {
      const cacheDir = join(dir, 'cache');
      const agentB = join(dir, 'agent-b');
      await writeFile(agentB, agent('B'), { mode: 0o755 });
      // The first build stores the base member; the second reuses it (no layer is read).
      const options = { image, compression: 'zstd' as const, cacheDir, inject: [`${agentB}:/bin/agent`] };
      await new InitramfsBuilder(options).build(join(dir, 'first.cpio.zst'));
      const events: string[] = [];
      const out = join(dir, 'rebuilt.cpio.zst');
      await new InitramfsBuilder({ ...options, onProgress: (e) => events.push(e.type) }).build(out);
      expect(events).not.toContain('index');

      const rebuilt = await bootInitramfs({ kernel, initramfs: out, stopOnMatch: false, timeoutMs: BOOT });
      expect(rebuilt.output).toContain('agent B runs');
      expect(rebuilt.output).not.toContain('agent A runs');
      expect(rebuilt.output).toContain('bin is still a symlink');
      expect(rebuilt.output).toContain('tmp mode 1777');
      expect(rebuilt.output).toContain('the hard link still has agent A');
      expect(rebuilt.output).toContain('irb: exit status 0');

      // Append agent C as a gzip member after the zstd archive: BASE is not read, the kernel
      // unpacks the new member last.
      const agentC = join(dir, 'agent-c');
      await writeFile(agentC, agent('C'), { mode: 0o755 });
      const appended = join(dir, 'appended.cpio');
      // The image has no /etc and no /new: append creates the parents, and /etc/job itself.
      const job = await jobTree();
      await appendOverlay(
        out,
        [`${agentC}:/bin/agent`, `${job}:/etc/job`, `${job}:/tmp`, `${agentC}:/new/deep/agent`],
        { output: appended, compression: 'gzip', cacheDir },
      );
      const boot = await bootInitramfs({ kernel, initramfs: appended, stopOnMatch: false, timeoutMs: BOOT });
      expect(boot.output).toContain('agent C runs');
      expect(boot.output).toContain('bin is still a symlink');
      expect(boot.output).toContain('tmp mode 1777');
      expect(boot.output).toContain('job: top x');
      expect(boot.output).toContain('new parents are there');
      expect(boot.output).toContain('irb: exit status 0');
    },
    BOOT * 2,
  );

  it(
    'the guest sees the same tree from a build with injects as from an append of them onto a build without',
    async () => {
      const cacheDir = join(dir, 'cache-tree');
      const lister = join(dir, 'lister');
      // Every path outside the kernel's file systems, with its type, mode, owner and link target.
      await writeFile(
        lister,
        [
          '#!/bin/busybox sh',
          'echo "listing start"',
          '/bin/busybox find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -print | /bin/busybox sort | while read -r f; do /bin/busybox stat -c \'%A %u:%g %N\' "$f"; done',
          'echo "listing end"',
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      const job = await jobTree();
      const specs = [
        `${lister}:/bin/agent`,
        `${job}:/etc/job`,
        `${job}:/srv`,
        `${job}:/usr/lib`,
        `${lister}:/usr/lib/agent-a`,
        `${lister}:/new/deep/agent`,
      ];
      const built = join(dir, 'tree-built.cpio.gz');
      const plain = join(dir, 'tree-plain.cpio.gz');
      const appended = join(dir, 'tree-appended.cpio.gz');
      await new InitramfsBuilder({ image, cacheDir, inject: specs }).build(built);
      await new InitramfsBuilder({ image, cacheDir }).build(plain);
      await appendOverlay(plain, specs, { output: appended, cacheDir });
      const listing = async (path: string) => {
        const boot = await bootInitramfs({ kernel, initramfs: path, stopOnMatch: false, timeoutMs: BOOT });
        const text = boot.output.replace(/\r/g, '');
        const start = text.indexOf('listing start\n');
        const end = text.indexOf('listing end');
        expect(start, text).toBeGreaterThan(-1);
        expect(end, text).toBeGreaterThan(start);
        return text
          .slice(start, end)
          .split('\n')
          .filter((line) => /^[-dlcbps][-rwxsStT]{9} /.test(line));
      };
      const fromBuild = await listing(built);
      expect(fromBuild, fromBuild.join('\n')).toContain('drwxr-x--- 0:0 /srv');
      expect(fromBuild).toContain('-rwxr-xr-x 0:0 /srv/sub/deep/y');
      expect(fromBuild.some((l) => l.includes("'/etc/job/sub/abs' -> '/usr/bin/busybox'"))).toBe(true);
      expect(await listing(appended)).toEqual(fromBuild);
    },
    BOOT * 2,
  );
});
