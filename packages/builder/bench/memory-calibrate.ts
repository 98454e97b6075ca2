// Finds the least guest RAM (MiB) that boots an initramfs to its program, by bisection over real
// boots (Debian kernel, QEMU `-accel tcg -M pc`), for a small busybox image and the large Debian
// python3 fixture, and prints it next to `recommendedMemoryMiB`. This is how the formula in
// src/memory.ts was calibrated; rerun it after changing the formula or the kernel.
//
//   node --conditions=@irb/source packages/builder/bench/memory-calibrate.ts [small|large]...
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootInitramfs, findKernel } from '@irb/boot';
import { buildTar, ensureDebianPythonImage, writeOciLayout } from '@irb/test-utils';
import { InitramfsBuilder } from '../src/index.ts';

const which = process.argv.slice(2);
const dir = await mkdtemp(join(tmpdir(), 'irb-mem-calibrate-'));
const kernel = await findKernel();

async function smallImage(): Promise<string> {
  const busybox = await readFile('/bin/busybox');
  const layer = await buildTar([
    { type: 'directory', path: 'bin/' },
    { type: 'file', path: 'bin/busybox', content: busybox, mode: 0o755 },
    ...['sh', 'mount', 'mkdir', 'ln', 'poweroff', 'sleep', 'echo'].map((n) => ({
      type: 'symlink' as const,
      path: `bin/${n}`,
      target: 'busybox',
    })),
  ]);
  const layout = join(dir, 'small-layout');
  await writeOciLayout(layout, [
    { tag: 'v1', images: [{ layers: [layer], runtime: { Cmd: ['echo', 'irb-small-ok'] } }] },
  ]);
  return `oci:${layout}:v1`;
}

async function boots(initramfs: string, memoryMb: number, marker: string): Promise<boolean> {
  const r = await bootInitramfs({
    kernel,
    initramfs,
    memoryMb,
    accel: 'tcg',
    machine: 'pc',
    expect: marker,
    timeoutMs: 400_000,
  });
  const why = r.ok
    ? 'ok'
    : r.output.includes('Initramfs unpacking failed')
      ? 'unpack failed'
      : r.panicked
        ? 'panic'
        : r.timedOut
          ? 'timeout'
          : `exit ${r.exitCode}`;
  console.error(`  ${memoryMb} MiB: ${why}`);
  return r.ok;
}

const rows: string[] = [];
for (const name of which.length ? which : ['small', 'large']) {
  const ref = name === 'small' ? await smallImage() : (await ensureDebianPythonImage()).ref;
  const marker = name === 'small' ? 'irb-small-ok' : 'irb-fixture-python-ok';
  const out = join(dir, `${name}.cpio.gz`);
  const s = await new InitramfsBuilder({ image: ref, cache: name !== 'small' }).build(out);
  console.error(
    `${name}: compressed ${s.compressedBytes} B, unpacked ${s.unpackedBytes} B, recommended ${s.recommendedMemoryMiB} MiB`,
  );
  // Bisection: lo fails, hi boots.
  let lo = 16;
  let hi = Math.max(64, s.recommendedMemoryMiB);
  while (!(await boots(out, hi, marker))) hi *= 2;
  while (hi - lo > 2) {
    const mid = Math.floor((lo + hi) / 2);
    if (await boots(out, mid, marker)) hi = mid;
    else lo = mid;
  }
  rows.push(
    `| ${name} | ${(s.compressedBytes / 2 ** 20).toFixed(1)} | ${(s.unpackedBytes / 2 ** 20).toFixed(1)} | ${hi} | ${s.recommendedMemoryMiB} |`,
  );
}
console.log('| image | compressed MiB | unpacked MiB | least RAM that boots (MiB) | recommendedMemoryMiB |');
console.log('| --- | --- | --- | --- | --- |');
for (const r of rows) console.log(r);
await rm(dir, { recursive: true, force: true });
