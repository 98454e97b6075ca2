// No false success: seeded mutations of real archives (irb build of a busybox image from a real
// registry, in every compression) — bit flips, truncations, zeroed ranges, junk after the end —
// go through every command that reads an archive. Whenever a reference decoder rejects a mutant
// (python3's zlib for gzip, zstd, lz4, then GNU cpio listing the decoded bytes), each command
// must exit non-zero with one error line: a corrupt gzip archive once made `irb ls`, `analyze`
// and `boot` exit 0 with no output.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildImage, prng, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, type CliResult, runCli } from './harness.ts';

type Format = 'gzip' | 'zstd' | 'lz4' | 'none';
const FORMATS: Format[] = ['gzip', 'zstd', 'lz4', 'none'];

interface Mutant {
  name: string;
  path: string;
  /** The mutation reaches the end of the file: `irb append`, which reads only the end, must refuse it too. */
  endBroken: boolean;
}

/** Bytes of the trailer member that ends an archive irb writes (`trailerMember` of `@irb/compress/framing`). */
const TRAILER_MEMBER_BYTES: Record<Format, number> = { gzip: 48, zstd: 48, lz4: 44, none: 124 };

/** Decoded bytes piped into GNU cpio; a non-zero status or any complaint is a rejection. */
const REFERENCE: Record<Format, string> = {
  gzip: `python3 -c 'import gzip, sys; sys.stdout.buffer.write(gzip.decompress(open(sys.argv[1], "rb").read()))' "$1"`,
  zstd: 'zstd -dcq -- "$1"',
  lz4: 'lz4 -dcq -- "$1"',
  none: 'cat -- "$1"',
};

function referenceRejects(format: Format, path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const script = `set -o pipefail; ${REFERENCE[format]} | cpio -it --quiet > /dev/null`;
    const child = spawn('bash', ['-c', script, 'reference', path], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve(code !== 0 || stderr.trim() !== ''));
  });
}

/** Bit flips, truncations, zeroed ranges and junk, at seeded places (some at the start and the end, where headers and the trailer member are). */
function mutate(
  bytes: Buffer,
  format: Format,
  seed: number,
): Array<{ name: string; bytes: Buffer; endBroken: boolean }> {
  const random = prng(seed);
  const at = (from: number, to: number) => from + Math.floor(random() * Math.max(1, to - from));
  const size = bytes.length;
  const tail = TRAILER_MEMBER_BYTES[format];
  const out: Array<{ name: string; bytes: Buffer; endBroken: boolean }> = [];
  const flip = (where: number) => {
    const copy = Buffer.from(bytes);
    copy[where] = (copy[where] as number) ^ (1 << at(0, 8));
    out.push({ name: `flip-${where}`, bytes: copy, endBroken: where >= size - tail });
  };
  for (const where of [
    at(0, size),
    at(0, size),
    at(0, 64),
    at(0, 512),
    at(size - tail, size),
    at(size - 256, size),
  ]) {
    flip(where);
  }
  for (const keep of [at(1, size), at(size / 2, size - tail), size - 1, size - tail, 0]) {
    out.push({ name: `cut-${keep}`, bytes: bytes.subarray(0, keep), endBroken: true });
  }
  for (const [from, length] of [
    [at(0, size - 600), at(16, 512)],
    [at(0, 32), at(8, 64)],
    [size - at(8, tail), tail],
  ] as Array<[number, number]>) {
    const copy = Buffer.from(bytes);
    copy.fill(0, from, Math.min(size, from + length));
    out.push({ name: `zero-${from}-${length}`, bytes: copy, endBroken: from + length >= size - tail });
  }
  for (const length of [at(1, 4), at(4, 16), 100]) {
    const junk = Buffer.alloc(length);
    for (let i = 0; i < length; i++) junk[i] = at(1, 256);
    out.push({ name: `junk-${length}`, bytes: Buffer.concat([bytes, junk]), endBroken: true });
  }
  return out;
}

/** Runs at most `limit` of `tasks` at once. */
async function pool<T>(tasks: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < tasks.length; i = next++) results[i] = await (tasks[i] as () => Promise<T>)();
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

const DECODER_ERROR =
  /corrupt|damaged|truncated|cut short|too early|without TRAILER|empty|only NUL|not an initramfs|junk|unexpected|not 4-byte aligned|no cpio|not a cpio|magic/i;

describe('corrupt archives: no false success', () => {
  let registry: StartedRegistry;
  let dir: string;
  let agent: string;
  let image: string;
  // QEMU must never start for these: without it on PATH, a boot that got that far fails with
  // a message the assertions below do not accept.
  const noQemu = { PATH: dirname(process.execPath) };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-corrupt-'));
    registry = await startRegistry();
    const layer = await busyboxLayer([
      { type: 'file', path: 'etc/motd', content: 'hello\n' },
      { type: 'link', path: 'etc/motd.again', target: 'etc/motd' },
    ]);
    await pushImage(
      registry,
      'corpus/busybox',
      'v1',
      buildImage({ layers: [layer], runtime: { Cmd: ['/bin/sh'] } }),
    );
    image = `${registry.host}/corpus/busybox:v1`;
    agent = join(dir, 'agent');
    await writeFile(agent, '#!/bin/sh\necho agent\n');
  }, 120_000);
  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * The one error a failed command printed, or `undefined` when it printed more or none: one line
   * `irb: …` on stderr; with `--json`, nothing on stderr and the error as the last JSON document
   * on stdout, the report's stream (after the entries `ls --json` listed before the damage).
   */
  const errorLine = (result: CliResult, json: boolean): string | undefined => {
    if (json) {
      const last = result.stdout.trimEnd().split('\n').at(-1) ?? '';
      try {
        const message = (JSON.parse(last) as { error?: { message?: unknown } }).error?.message;
        return result.stderr === '' && typeof message === 'string' ? message : undefined;
      } catch {
        return undefined;
      }
    }
    const lines = result.stderr.split('\n').filter((l) => l.trim() !== '');
    return lines.length === 1 && lines[0]?.startsWith('irb: ') ? lines[0] : undefined;
  };

  const commands = (m: Mutant, out: string): Array<[string, () => Promise<CliResult>]> => [
    ['ls', () => runCli(['ls', m.path])],
    ['ls -', async () => runCli(['ls', '-'], { input: await readFile(m.path) })],
    ['ls --json', () => runCli(['ls', '--json', m.path])],
    ['analyze', () => runCli(['analyze', m.path])],
    ['boot', () => runCli(['boot', m.path, '--expect', 'X', '--timeout', '5'], { env: noQemu })],
    [
      'boot --memory',
      () => runCli(['boot', m.path, '--memory', '256', '--expect', 'X', '--timeout', '5'], { env: noQemu }),
    ],
    ...(m.endBroken
      ? ([
          ['append', () => runCli(['append', m.path, '-o', out, '--inject', `${agent}:/opt/agent`])],
        ] as Array<[string, () => Promise<CliResult>]>)
      : []),
  ];

  for (const [seed, format] of FORMATS.entries()) {
    it(`${format}: every mutant a reference decoder rejects fails every command with one error line`, async () => {
      const sub = join(dir, format);
      await mkdir(sub);
      const original = join(sub, `original.${format}`);
      const built = await runCli([
        'build',
        image,
        '-o',
        original,
        '-c',
        format,
        '--no-cache',
        '--inject',
        `${agent}:/usr/bin/agent`,
        '-q',
      ]);
      expect(built.code, built.stderr).toBe(0);
      const bytes = await readFile(original);
      expect(await referenceRejects(format, original)).toBe(false);
      for (const args of [
        ['ls', original],
        ['analyze', original],
      ]) {
        const ok = await runCli(args);
        expect(ok.code, `${args.join(' ')}: ${ok.stderr}`).toBe(0);
      }

      const mutants: Mutant[] = [];
      for (const m of mutate(bytes, format, 0x5eed + seed)) {
        const path = join(sub, `${m.name}.${format}`);
        await writeFile(path, m.bytes);
        if (await referenceRejects(format, path))
          mutants.push({ name: m.name, path, endBroken: m.endBroken });
      }
      // Most of them are rejected; the rest (a flipped bit in a file's bytes, which neither lz4
      // nor newc checks; junk after an uncompressed archive's trailer, which GNU cpio ignores)
      // say nothing about false success.
      expect(mutants.length).toBeGreaterThanOrEqual(8);

      const failures: string[] = [];
      await pool(
        mutants.flatMap((m) => {
          const out = join(sub, `${m.name}.appended`);
          return commands(m, out).map(([name, command]) => async () => {
            const result = await command();
            const line = errorLine(result, name.includes('--json'));
            const label = name === 'ls -' ? 'input stream' : m.path;
            const good =
              result.code !== null &&
              result.code !== 0 &&
              line?.includes(label) === true &&
              DECODER_ERROR.test(line);
            if (!good) {
              failures.push(
                `${name} ${m.name}: exit ${result.code}, stdout ${JSON.stringify(result.stdout.slice(0, 300))}, stderr ${JSON.stringify(result.stderr.slice(0, 300))}`,
              );
            }
            if (
              name === 'append' &&
              (await readFile(out).then(
                () => true,
                () => false,
              ))
            ) {
              failures.push(`append ${m.name}: wrote ${out}`);
            }
          });
        }),
        3,
      );
      expect(failures).toEqual([]);
    }, 900_000);
  }

  it('an empty file and a file of NUL bytes are errors, not empty listings', async () => {
    const empty = join(dir, 'empty.cpio.gz');
    const zeros = join(dir, 'zeros.cpio');
    await writeFile(empty, '');
    await writeFile(zeros, Buffer.alloc(4096));
    for (const path of [empty, zeros]) {
      for (const args of [
        ['ls', path],
        ['ls', '--json', path],
        ['analyze', path],
      ]) {
        const result = await runCli(args);
        expect(result.code, args.join(' ')).not.toBe(0);
        const line = errorLine(result, args.includes('--json'));
        expect(line, `${args.join(' ')}: ${result.stdout}${result.stderr}`).toMatch(
          /is empty|only NUL bytes|not an initramfs/,
        );
      }
      const booted = await runCli(['boot', path, '--expect', 'X', '--timeout', '5'], { env: noQemu });
      expect(booted.code).not.toBe(0);
      expect(booted.stderr).toMatch(/is empty|only NUL bytes/);
    }
    const piped = await runCli(['ls', '-'], { input: new Uint8Array(0) });
    expect(piped.code).not.toBe(0);
    expect(piped.stderr).toMatch(/input stream is empty/);
  }, 120_000);
});
