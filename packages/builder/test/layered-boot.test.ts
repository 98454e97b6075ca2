import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
    ]);
    await pushImage(
      registry,
      'layered/agent',
      'v1',
      buildImage({ layers: [layer], runtime: { Cmd: ['/bin/agent'] } }),
    );
    image = `${registry.host}/layered/agent:v1`;
  }, 60_000);
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
      await appendOverlay(out, [`${agentC}:/bin/agent`], { output: appended, compression: 'gzip' });
      const boot = await bootInitramfs({ kernel, initramfs: appended, stopOnMatch: false, timeoutMs: BOOT });
      expect(boot.output).toContain('agent C runs');
      expect(boot.output).toContain('bin is still a symlink');
      expect(boot.output).toContain('tmp mode 1777');
      expect(boot.output).toContain('irb: exit status 0');
    },
    BOOT * 2,
  );
});
