import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootInitramfs, findKernel, initramfsArch } from '../src/index.ts';

// Debian's arm64 kernel and static busybox, unpacked into the cache by scripts/ensure-env.sh.
const cache = process.env.XDG_CACHE_HOME || join(process.env.HOME || homedir(), '.cache');
const busyboxPath = join(cache, 'irb', 'aarch64', 'bin', 'busybox');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-boot-arm64-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('aarch64 guest', () => {
  it('boots an arm64 archive with a shell /init, its architecture read from the archive', async () => {
    const busybox = await readFile(busyboxPath).catch((cause: unknown) => {
      throw new Error(`no arm64 busybox at ${busyboxPath}; run scripts/ensure-env.sh`, { cause });
    });
    const init = new TextEncoder().encode(
      [
        '#!/bin/sh',
        'mount -t proc proc /proc',
        'echo "probe: $(uname -m) $(awk \'$2 == "/proc" {print $3}\' /proc/mounts)"',
        'poweroff -f',
        '',
      ].join('\n'),
    );
    const entries: CpioEntry[] = [
      { type: 'directory', path: 'bin', mode: 0o755 },
      { type: 'file', path: 'bin/busybox', mode: 0o755, size: busybox.length, body: busybox },
      ...['sh', 'mount', 'uname', 'awk', 'poweroff'].map(
        (n): CpioEntry => ({ type: 'symlink', path: `bin/${n}`, mode: 0o777, target: 'busybox' }),
      ),
      { type: 'directory', path: 'dev', mode: 0o755 },
      { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
      { type: 'directory', path: 'proc', mode: 0o755 },
      { type: 'file', path: 'init', mode: 0o755, size: init.length, body: init },
    ];
    const path = join(dir, 'arm64.cpio');
    await pipeline(Readable.from(packCpio(entries)), createWriteStream(path));
    expect(await initramfsArch(path)).toBe('aarch64');

    const result = await bootInitramfs({
      kernel: await findKernel({ arch: 'aarch64' }),
      initramfs: path,
      arch: 'auto',
      timeoutMs: 240_000,
    });
    expect(result, result.output + result.stderr).toMatchObject({
      ok: true,
      arch: 'aarch64',
      machine: 'virt',
      exitCode: 0,
      panicked: false,
    });
    expect(result.command.join(' ')).toContain('console=ttyAMA0');
    expect(result.output).toContain('probe: aarch64 proc');
  }, 260_000);
});
