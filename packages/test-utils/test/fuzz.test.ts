import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { IrbError } from '../../errors/src/errors.ts';
import { assertIrbError, fuzzSeed, runFuzz } from '../src/fuzz.ts';

/* The harness itself: a hang is a failure with a replay line, whether the case awaits forever,
 * runs past the limit, or spins in a loop no timer can interrupt. */

/** Runs `body` (with `fc` and `runFuzz` imported) as a Node process of its own, per-case limit 300 ms. */
async function script(body: string): Promise<SpawnSyncReturns<string>> {
  const dir = await mkdtemp(join(tmpdir(), 'irb-fuzz-harness-'));
  try {
    const file = join(dir, 'case.ts');
    await writeFile(
      file,
      `import fc from ${JSON.stringify(import.meta.resolve('fast-check'))};\n` +
        `import { runFuzz } from ${JSON.stringify(join(import.meta.dirname, '../src/fuzz.ts'))};\n${body}`,
    );
    return spawnSync(process.execPath, ['--conditions=@irb/source', file], {
      cwd: join(import.meta.dirname, '..'),
      env: { ...process.env, IRB_FUZZ_CASE_MS: '300' },
      encoding: 'utf8',
      timeout: 60_000,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

afterEach(() => {
  delete process.env.IRB_FUZZ_CASE_MS;
});

describe('runFuzz', () => {
  it('fails a case that awaits forever, with the line that replays it', async () => {
    process.env.IRB_FUZZ_CASE_MS = '200';
    const failure = await runFuzz('awaits forever', fc.constant(1), () => new Promise<void>(() => {}), {
      runs: 3,
    }).catch((e) => e);
    expect(failure.message).toMatch(
      /^fuzz property "awaits forever" failed; replay it with IRB_FUZZ_SEED=-?\d+ IRB_FUZZ_PATH=0\n/,
    );
    expect(failure.message).toMatch(/timeout/i);
  });

  it('fails a case that returns after the limit', async () => {
    process.env.IRB_FUZZ_CASE_MS = '200';
    const spin = () => {
      const end = performance.now() + 300;
      while (performance.now() < end);
    };
    const failure = await runFuzz('slow', fc.constant(1), spin, { runs: 1 }).catch((e) => e);
    expect(failure.message).toMatch(/the case took \d+ ms, over the 200 ms limit \(a hang\)/);
  });

  it('fails a case that leaves a rejected promise nobody handles', async () => {
    // In a process of its own: vitest would count the leak against this test file too.
    const run = await script(
      `await runFuzz('leaks', fc.constant(1), () => { void Promise.reject(new Error('nobody awaits me')); }, { runs: 3 });\n`,
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('the case left an unhandled rejection: Error: nobody awaits me');
    expect(run.stderr).toMatch(/replay it with IRB_FUZZ_SEED=-?\d+ IRB_FUZZ_PATH=0/);
  });

  it('kills a process stuck in a loop and says which case it was', async () => {
    const run = await script(
      `await runFuzz('spins', fc.nat(), (n) => { if (n >= 0) for (;;); }, { runs: 5 });\n`,
    );
    expect({ signal: run.signal, stderr: run.stderr }).toMatchObject({ signal: 'SIGKILL' });
    expect(run.stderr).toContain(
      `fuzz: HANG: spins, IRB_FUZZ_SEED=${fuzzSeed('spins')}, case 1 (shrink steps counted) still runs after`,
    );
  });

  it('passes and counts the cases of a property that holds', async () => {
    const stats = await runFuzz('holds', fc.nat(), (n) => expect(n).toBeGreaterThanOrEqual(0), { runs: 50 });
    expect(stats).toMatchObject({ name: 'holds', cases: 50, seed: fuzzSeed('holds') });
  });
});

describe('assertIrbError', () => {
  it('takes a catalogued irb error in one line, and nothing else', () => {
    expect(() => assertIrbError(new IrbError('IRB_LAYER_CORRUPT', 'one line'))).not.toThrow();
    expect(() => assertIrbError(new IrbError('IRB_LAYER_CORRUPT', 'one line'), ['IRB_GZIP_CORRUPT'])).toThrow(
      /has code IRB_LAYER_CORRUPT, not one of IRB_GZIP_CORRUPT/,
    );
    expect(() => assertIrbError(new IrbError('IRB_LAYER_CORRUPT', 'two\nlines'))).toThrow(/not one line/);
    expect(() => assertIrbError(new TypeError("Cannot read properties of undefined (reading 'x')"))).toThrow(
      /is not an irb error/,
    );
    expect(() => assertIrbError(Object.assign(new Error('made up'), { code: 'IRB_NOT_A_CODE' }))).toThrow(
      /is not an irb error/,
    );
    expect(() => assertIrbError('a string')).toThrow(/is not an irb error/);
  });
});
