import { constants } from 'node:fs';
import { access, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeKvm } from './index.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const kvm = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(
  () => true,
  () => false,
);

describe('the KVM probe', () => {
  // The probe only runs (and is only remembered) where /dev/kvm is usable.
  it.runIf(kvm)('remembers its answer in the cache the user named, not in ~/.cache', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'irb-kvm-probe-'));
    dirs.push(dir);
    // A stand-in for QEMU that prints what a booting kernel prints first.
    const qemu = join(dir, 'fake-qemu');
    await writeFile(qemu, '#!/bin/sh\necho "Linux version 6.1 (fake)"\nsleep 5\n');
    await chmod(qemu, 0o755);
    const cacheDir = join(dir, 'cache');
    const before = process.env.IRB_CACHE_DIR;
    process.env.IRB_CACHE_DIR = cacheDir;
    try {
      expect(await probeKvm({ kernel: join(dir, 'vmlinuz'), qemu })).toBe(true);
    } finally {
      if (before === undefined) delete process.env.IRB_CACHE_DIR;
      else process.env.IRB_CACHE_DIR = before;
    }
    const remembered = JSON.parse(await readFile(join(cacheDir, 'kvm-probe.json'), 'utf8'));
    expect(remembered.results).toEqual({ [`${qemu}|${join(dir, 'vmlinuz')}`]: true });
  });
});
