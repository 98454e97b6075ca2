// Traces the Debian python3 image under QEMU (TCG), builds it again keeping only what the run
// used, and boots that: the program must still print its line. Also slim presets on the same image.
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootInitramfs } from '@irb/boot';
import { ensureDebianPythonImage } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InitramfsBuilder, traceImage } from '../src/index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-trace-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('trace and keepOnly on the Debian python3 image', () => {
  it('keeps what the run used, at most a third of the bytes, and the program still runs', async () => {
    const fixture = await ensureDebianPythonImage();
    const trace = await traceImage({ image: fixture.ref });
    expect(trace).toMatchObject({
      irbTrace: 1,
      exitStatus: 0,
      stopped: false,
      argv: [...fixture.entrypoint, ...fixture.cmd],
    });
    expect(trace.files).toContain('/usr/bin/python3.11');
    expect(trace.files).toContain('/usr/lib/x86_64-linux-gnu/libc.so.6');
    expect(trace.symlinks).toContain('/usr/bin/python3');
    // irb's own files are in the trace too; they are replaced in every build anyway.
    expect(trace.files).toContain('/init');
    const traceFile = join(dir, 'python.trace.json');
    await writeFile(traceFile, JSON.stringify(trace));

    const full = await new InitramfsBuilder({ image: fixture.ref, compression: 'zstd' }).build(
      join(dir, 'full.cpio.zst'),
    );
    const out = join(dir, 'traced.cpio.zst');
    const traced = await new InitramfsBuilder({
      image: fixture.ref,
      compression: 'zstd',
      keepOnly: [traceFile],
    }).build(out);
    expect(traced.warnings).toEqual([]);
    expect(traced.filtered).toBeGreaterThan(1000);
    expect(traced.compressedBytes).toBeLessThan(full.compressedBytes / 3);
    expect((await stat(out)).size).toBe(traced.compressedBytes);
    const boot = await bootInitramfs({
      initramfs: out,
      memoryMb: traced.recommendedMemoryMiB,
      stopOnMatch: false,
    });
    expect(boot.output).toContain(fixture.marker);
    expect(boot.output).toContain('irb: exit status 0');

    // The shell init needs tools the trace (taken with the static init) does not list: said as such.
    await expect(
      new InitramfsBuilder({ image: fixture.ref, keepOnly: [traceFile], initKind: 'sh' }).build(
        join(dir, 'traced-sh.cpio.gz'),
      ),
    ).rejects.toMatchObject({
      code: 'IRB_OPTION_INVALID',
      message: expect.stringMatching(/^`keepOnly` left out \/bin\/sh/),
    });
    await expect(stat(join(dir, 'traced-sh.cpio.gz'))).rejects.toThrow(/ENOENT/);
  }, 900_000);

  it('slim presets remove what they promise and the program still runs', async () => {
    const fixture = await ensureDebianPythonImage();
    const out = join(dir, 'slim.cpio.lz4');
    const slim = await new InitramfsBuilder({
      image: fixture.ref,
      compression: 'lz4',
      slim: ['docs', 'locales', 'caches', 'devel'],
    }).build(out);
    expect(slim.filtered).toBeGreaterThan(100);
    const boot = await bootInitramfs({
      initramfs: out,
      memoryMb: slim.recommendedMemoryMiB,
      stopOnMatch: false,
    });
    expect(boot.output).toContain(fixture.marker);
  }, 900_000);
});
