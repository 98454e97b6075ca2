import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { elfArch } from '@irb/boot';
import { describe, expect, it } from 'vitest';
import { INIT_ARCHES, initArchForPlatform, staticInitBinary, staticInitPath } from '../src/index.ts';

const pkg = fileURLToPath(new URL('..', import.meta.url));

/** `<tool>: <first line of --version>` as scripts/build.sh records them in bin/COMPILERS. */
function compilerVersions(): string | undefined {
  const lines: string[] = [];
  for (const [label, tool] of [
    ['gcc', 'gcc'],
    ['aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-gcc'],
    ['binutils', 'ld'],
    ['aarch64-binutils', 'aarch64-linux-gnu-ld'],
  ] as const) {
    const run = spawnSync(tool, ['--version'], { encoding: 'utf8' });
    if (run.status !== 0) return undefined;
    lines.push(`${label}: ${run.stdout.split('\n')[0]}`);
  }
  return `${lines.join('\n')}\n`;
}

const recorded = await readFile(join(pkg, 'bin', 'COMPILERS'), 'utf8');
const here = compilerVersions();

describe('the committed static init binaries', () => {
  it('are static ELF executables for their architecture, at most 64 KiB, as SHA256SUMS records', async () => {
    const sums = await readFile(join(pkg, 'bin', 'SHA256SUMS'), 'utf8');
    for (const arch of INIT_ARCHES) {
      const bytes = staticInitBinary(arch);
      expect(elfArch(bytes)).toBe(arch);
      expect(bytes.length).toBeLessThanOrEqual(64 * 1024);
      // No PT_INTERP: an ELF64 program header of type 3 would name a dynamic loader.
      const phoff = Number(Buffer.from(bytes).readBigUInt64LE(32));
      const phnum = Buffer.from(bytes).readUInt16LE(56);
      for (let i = 0; i < phnum; i++) expect(Buffer.from(bytes).readUInt32LE(phoff + i * 56)).not.toBe(3);
      const sum = createHash('sha256').update(bytes).digest('hex');
      expect(sums).toContain(`${sum}  init-${arch}`);
      expect(staticInitBinary(arch)).toBe(bytes); // read once, then served from memory
      expect(staticInitPath(arch)).toBe(join(pkg, 'bin', `init-${arch}`));
    }
    expect(() => staticInitBinary('riscv64' as 'x86_64')).toThrow(/x86_64 and aarch64/);
  });

  it('maps OCI platform architectures to their init', () => {
    expect(initArchForPlatform('amd64')).toBe('x86_64');
    expect(initArchForPlatform('arm64')).toBe('aarch64');
    expect(initArchForPlatform('aarch64')).toBe('aarch64');
    expect(initArchForPlatform('riscv64')).toBeUndefined();
    expect(initArchForPlatform('arm')).toBeUndefined();
  });

  // Byte-reproducible: the same source and the same Debian compilers give the same bytes.
  it.skipIf(here !== recorded)(
    'are rebuilt byte for byte from c/init.c by scripts/build.sh (skipped without the recorded compilers)',
    async () => {
      const out = await mkdtemp(join(tmpdir(), 'irb-init-build-'));
      try {
        const build = spawnSync('bash', [join(pkg, 'scripts', 'build.sh'), out], { encoding: 'utf8' });
        expect(build.status, build.stderr).toBe(0);
        for (const arch of INIT_ARCHES) {
          expect(new Uint8Array(await readFile(join(out, `init-${arch}`)))).toEqual(staticInitBinary(arch));
        }
        expect(await readFile(join(out, 'SHA256SUMS'), 'utf8')).toBe(
          await readFile(join(pkg, 'bin', 'SHA256SUMS'), 'utf8'),
        );
      } finally {
        await rm(out, { recursive: true, force: true });
      }
    },
  );
});
