// Boots archives at exactly `recommendedMemoryMiB` in a real kernel (Debian's, under QEMU TCG on
// the `pc` machine): the advice must be enough for a tiny image and for a large one. How the
// formula was calibrated: bench/memory-calibrate.ts and the README.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootInitramfs, findKernel } from '@irb/boot';
import { buildTar, ensureDebianPythonImage, writeOciLayout } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InitramfsBuilder } from '../src/index.ts';

describe('booting at exactly the recommended memory', () => {
  let dir: string;
  let kernel: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-memory-boot-'));
    kernel = await findKernel();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function bootsAtRecommended(image: string, marker: string, cache: boolean) {
    const out = join(dir, `${marker}.cpio.gz`);
    const summary = await new InitramfsBuilder({ image, cache }).build(out);
    const result = await bootInitramfs({
      kernel,
      initramfs: out,
      memoryMb: summary.recommendedMemoryMiB,
      accel: 'tcg',
      machine: 'pc',
      expect: marker,
      timeoutMs: 400_000,
    });
    expect(result.output, result.output.slice(-3000)).not.toContain('Initramfs unpacking failed');
    expect(result.ok, result.output.slice(-3000)).toBe(true);
    return summary;
  }

  it('a 2 MiB busybox image', async () => {
    const busybox = await readFile('/bin/busybox');
    const layer = await buildTar([
      { type: 'directory', path: 'bin/' },
      { type: 'file', path: 'bin/busybox', content: busybox, mode: 0o755 },
      ...['sh', 'mount', 'mkdir', 'ln', 'poweroff', 'sleep', 'echo'].map((name) => ({
        type: 'symlink' as const,
        path: `bin/${name}`,
        target: 'busybox',
      })),
    ]);
    const layout = join(dir, 'busybox');
    await writeOciLayout(layout, [
      { tag: 'v1', images: [{ layers: [layer], runtime: { Cmd: ['echo', 'irb-memory-small-ok'] } }] },
    ]);
    const summary = await bootsAtRecommended(`oci:${layout}:v1`, 'irb-memory-small-ok', false);
    expect(summary.unpackedBytes).toBeLessThan(4 * 2 ** 20);
  }, 600_000);

  it('the Debian python3 image (about 150 MiB unpacked)', async () => {
    const fixture = await ensureDebianPythonImage();
    const summary = await bootsAtRecommended(fixture.ref, fixture.marker, true);
    expect(summary.unpackedBytes).toBeGreaterThan(100 * 2 ** 20);
  }, 900_000);
});
