import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootTimeline, findKernel } from '../src/index.ts';

let dir: string;
let archive: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-timeline-'));
  const busybox = await readFile('/bin/busybox');
  const init = new TextEncoder().encode(
    [
      '#!/bin/sh',
      'mount -t devtmpfs dev /dev',
      'echo "irb: init" >/dev/kmsg',
      'echo "irb: exec" >/dev/kmsg',
      'echo "hello from the program"',
      'echo "irb: exit status 7" >/dev/kmsg',
      'poweroff -f',
      '',
    ].join('\n'),
  );
  const entries: CpioEntry[] = [
    { type: 'directory', path: 'bin', mode: 0o755 },
    { type: 'file', path: 'bin/busybox', mode: 0o755, size: busybox.length, body: busybox },
    ...['sh', 'echo', 'mount', 'poweroff'].map(
      (n): CpioEntry => ({ type: 'symlink', path: `bin/${n}`, mode: 0o777, target: 'busybox' }),
    ),
    { type: 'directory', path: 'dev', mode: 0o755 },
    { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    { type: 'file', path: 'init', mode: 0o755, size: init.length, body: init },
  ];
  archive = join(dir, 'timeline.cpio');
  await pipeline(Readable.from(packCpio(entries)), createWriteStream(archive));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('bootTimeline', () => {
  it('boots twice and reports every phase in boot order, with medians', async () => {
    const seen: number[] = [];
    const report = await bootTimeline({
      kernel: await findKernel(),
      initramfs: archive,
      runs: 2,
      timeoutMs: 120_000,
      onRun: (_t, run) => seen.push(run),
    });
    expect(seen).toEqual([0, 1]);
    expect(report.runs).toHaveLength(2);
    for (const t of [...report.runs, report.median]) {
      const order = [t.unpackStartMs, t.unpackedMs, t.initMs, t.execMs, t.firstLineMs, t.endMs];
      for (const value of order) expect(value).toBeTypeOf('number');
      expect([...(order as number[])].sort((a, b) => a - b)).toEqual(order);
      expect(t.exitStatus).toBe(7);
      expect(t.wallMs).toBeGreaterThan(0);
    }
    expect(report.last.exitCode).toBe(0);
  }, 300_000);
});
