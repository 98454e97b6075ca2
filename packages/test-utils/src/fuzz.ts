import { writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
// From source, not as a dependency: @irb/errors' tests use @irb/cpio, whose tests use this
// package, and a dependency back on @irb/errors would close a cycle turbo refuses to build.
import { ERROR_CODES } from '../../errors/src/codes.ts';

export * from './fuzz-inputs.ts';

/*
 * The fuzz harness's common part: budgets and seeds from the environment, a per-case time limit
 * (a hang is a failure, whether the case awaits forever or spins), and the one check every
 * decoder of hostile bytes must pass: it either succeeds or throws an irb error with a code of
 * the catalog and a one-line message. Each package's `*.fuzz.test.ts` runs a few hundred seeded
 * cases per property in its normal test run; `pnpm fuzz` runs a long campaign (see the README).
 *
 *   IRB_FUZZ_RUNS=N          cases per property instead of each one's CI budget
 *   IRB_FUZZ_SEED=S|random   one seed for every property (default: a fixed seed per property)
 *   IRB_FUZZ_PATH=P          replays one failing case (with its seed), as fast-check reports it
 *   IRB_FUZZ_CASE_MS=MS      per-case time limit, default 10 000
 */

const env = process.env;

/** Cases per property: `IRB_FUZZ_RUNS` when set, else the property's CI budget. */
export function fuzzRuns(ciBudget: number): number {
  const runs = Number(env.IRB_FUZZ_RUNS);
  return Number.isSafeInteger(runs) && runs > 0 ? runs : ciBudget;
}

/** True in a long campaign (`IRB_FUZZ_RUNS` set): tests get no time limit and print their rates. */
export function fuzzCampaign(): boolean {
  return fuzzRuns(0) > 0;
}

/** Per-case time limit in ms. */
export function fuzzCaseMs(): number {
  const ms = Number(env.IRB_FUZZ_CASE_MS);
  return Number.isFinite(ms) && ms > 0 ? ms : 10_000;
}

/** The vitest time limit for a fuzz test: none in a campaign, generous in CI (cases are bounded one by one). */
export function fuzzTestTimeout(): number {
  return fuzzCampaign() ? 7 * 24 * 3600_000 : 600_000;
}

const randomSeed = Math.floor(Math.random() * 0x7fff_ffff);

/** The seed of a property: `IRB_FUZZ_SEED`, else a fixed one derived from its name (CI repeats itself). */
export function fuzzSeed(name: string): number {
  const given = env.IRB_FUZZ_SEED?.trim();
  if (given === 'random') return randomSeed;
  if (given && /^-?\d+$/.test(given)) return Number(given) | 0;
  let hash = 0x811c9dc5;
  for (const c of name) hash = Math.imul(hash ^ c.charCodeAt(0), 0x01000193);
  return hash | 0;
}

/**
 * Asserts that `error` is what a decoder may throw on hostile input: an irb error whose code is
 * in `@irb/errors`' catalog (and, when given, one of `codes`), with a one-line message. Anything
 * else (a TypeError, a RangeError, a RegExp or stack overflow, a bare Error) is re-thrown as the
 * failure it is.
 */
export function assertIrbError(error: unknown, codes?: readonly string[]): void {
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error instanceof Error ? error.message : undefined;
  const problem =
    !(error instanceof Error) || typeof code !== 'string' || !Object.hasOwn(ERROR_CODES, code)
      ? 'is not an irb error with a catalogued IRB_ code'
      : codes !== undefined && !codes.includes(code)
        ? `has code ${code}, not one of ${codes.join(', ')}`
        : message === undefined || message === '' || /[\r\n]/.test(message)
          ? 'has a message that is not one line'
          : undefined;
  if (problem === undefined) return;
  const shown =
    error instanceof Error
      ? `${error.name}${code ? ` ${String(code)}` : ''}: ${error.message}`
      : String(error);
  throw new Error(`the error ${problem}: ${shown}`, { cause: error });
}

/** Runs `decode`; a throw must pass {@link assertIrbError}. Returns the error, or `undefined` on success. */
export async function onlyIrbErrors(
  decode: () => unknown,
  codes?: readonly string[],
): Promise<Error | undefined> {
  try {
    await decode();
    return undefined;
  } catch (error) {
    assertIrbError(error, codes);
    return error as Error;
  }
}

/** Collects an async iterable's chunks; with `max`, fails as soon as more than `max` bytes came. */
export async function collect(
  source: AsyncIterable<Uint8Array>,
  max = Number.POSITIVE_INFINITY,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of source) {
    if (!(chunk instanceof Uint8Array)) throw new Error(`the decoder yielded a ${typeof chunk}, not bytes`);
    total += chunk.byteLength;
    if (total > max) throw new Error(`the decoder yielded more than ${max} bytes`);
    chunks.push(chunk.slice());
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/**
 * A guard on the thread that runs the cases: a case still running `limit` ms after it started
 * (a synchronous loop starves every timer of this thread, so a promise race cannot see it) is
 * reported on stderr with its seed and case number, and the process is killed, so the run fails
 * instead of hanging CI.
 */
class Watchdog {
  readonly #state = new Int32Array(new SharedArrayBuffer(16));
  readonly #label = new Uint8Array(new SharedArrayBuffer(4096));
  #worker: Worker | undefined;
  #users = 0;

  start(): void {
    if (this.#users++ > 0) return;
    this.#worker = new Worker(WATCHDOG_SOURCE, {
      eval: true,
      workerData: { state: this.#state, label: this.#label },
    });
    this.#worker.unref();
  }

  stop(): void {
    if (--this.#users > 0) return;
    void this.#worker?.terminate();
    this.#worker = undefined;
  }

  /** A case began: `label` says how to replay it; the guard fires `limit` ms from now. */
  begin(label: string, limit: number): void {
    const bytes = new TextEncoder().encode(label).subarray(0, this.#label.byteLength - 1);
    this.#label.fill(0);
    this.#label.set(bytes);
    Atomics.store(this.#state, 1, limit);
    Atomics.store(this.#state, 2, Math.floor(performance.timeOrigin + performance.now()) % 2 ** 30);
    Atomics.store(this.#state, 0, 1);
  }

  end(): void {
    Atomics.store(this.#state, 0, 0);
  }
}

// Runs on its own thread: it measures a case's age with its own clock, as the main thread may be stuck.
const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const { state, label } = workerData;
setInterval(() => {
  if (Atomics.load(state, 0) !== 1) return;
  const age = (Math.floor(performance.timeOrigin + performance.now()) % 2 ** 30) - Atomics.load(state, 2);
  if (age < Atomics.load(state, 1)) return;
  const end = label.indexOf(0);
  const text = new TextDecoder().decode(label.slice(0, end < 0 ? label.length : end));
  writeSync(2, '\\nfuzz: HANG: ' + text + ' still runs after ' + age + ' ms (the thread is stuck); killing the test process\\n');
  process.kill(process.pid, 'SIGKILL');
}, 200);
`;

const watchdog = new Watchdog();

/** What {@link runFuzz} measured. */
export interface FuzzStats {
  name: string;
  seed: number;
  cases: number;
  ms: number;
}

/**
 * Checks `predicate` on cases drawn from `arbitrary`: {@link fuzzRuns} of them with
 * {@link fuzzSeed}, each within {@link fuzzCaseMs} (awaiting longer fails the case; a thread stuck
 * in a loop is killed by the watchdog with the case's seed and number on stderr; one leaving a
 * rejected promise nobody handled fails too). A failure is
 * shrunk and reported with the line that replays it. In a campaign the rate is printed.
 */
export async function runFuzz<T>(
  name: string,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<void> | void,
  options: { runs: number },
): Promise<FuzzStats> {
  const seed = fuzzSeed(name);
  const runs = fuzzRuns(options.runs);
  const limit = fuzzCaseMs();
  const path = env.IRB_FUZZ_PATH?.trim() || undefined;
  let cases = 0;
  // A promise a case rejects and nobody awaits is a failure of that case, not a note at the end.
  const leaked: unknown[] = [];
  const onRejection = (reason: unknown): void => {
    leaked.push(reason);
  };
  const property = fc.asyncProperty(arbitrary, async (value) => {
    cases++;
    watchdog.begin(
      `${name}, IRB_FUZZ_SEED=${seed}, case ${cases} (shrink steps counted)`,
      limit + Math.min(limit, 5_000),
    );
    const started = performance.now();
    try {
      await predicate(value);
    } finally {
      watchdog.end();
    }
    const took = performance.now() - started;
    if (took > limit)
      throw new Error(`the case took ${Math.round(took)} ms, over the ${limit} ms limit (a hang)`);
    // Node reports a rejection nobody handled once the microtasks ran: a turn of the loop later.
    await new Promise((resolve) => setImmediate(resolve));
    const reason = leaked.splice(0)[0];
    if (reason !== undefined) {
      throw new Error(
        `the case left an unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}`,
      );
    }
  });
  const started = performance.now();
  watchdog.start();
  process.on('unhandledRejection', onRejection);
  try {
    await fc.assert(property, {
      seed,
      numRuns: runs,
      ...(path !== undefined && { path }),
      plugins: [fc.timeout(limit)],
    });
  } catch (error) {
    const found = /seed: (-?\d+), path: "?([\d:]+)"?/.exec(String((error as Error).message));
    const replay = found ? `IRB_FUZZ_SEED=${found[1]} IRB_FUZZ_PATH=${found[2]}` : `IRB_FUZZ_SEED=${seed}`;
    const cause = (error as Error).cause;
    const why = cause instanceof Error ? `\nbecause: ${cause.message}` : '';
    throw new Error(
      `fuzz property "${name}" failed; replay it with ${replay}\n${(error as Error).message}${why}`,
      {
        cause: error,
      },
    );
  } finally {
    process.off('unhandledRejection', onRejection);
    watchdog.stop();
  }
  const ms = performance.now() - started;
  if (fuzzCampaign()) {
    writeSync(
      2,
      `fuzz: ${name}: ${runs} cases in ${(ms / 1000).toFixed(1)} s, ${Math.round((runs / ms) * 1000)}/s, seed ${seed}\n`,
    );
  }
  return { name, seed, cases: runs, ms };
}
