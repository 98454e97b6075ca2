import { describe, expect, it } from 'vitest';
import { type RetryPolicy, withRetry } from './retry.ts';

const numbers = { retries: 2, baseDelayMs: 1, maxDelayMs: 5 };
class Transient extends Error {}

describe('withRetry', () => {
  it('retries transient failures `retries` times, then rethrows the last one unchanged', async () => {
    const seen: number[] = [];
    const errors: Error[] = [];
    const run = withRetry(
      async (attempt) => {
        seen.push(attempt);
        const error = new Transient(`attempt ${attempt}`);
        errors.push(error);
        throw error;
      },
      { ...numbers, retryError: (e) => e instanceof Transient },
    );
    const thrown = await run.catch((error: unknown) => error);
    expect(seen).toEqual([0, 1, 2]);
    expect(thrown).toBe(errors[2]);
  });

  it('a failure the policy does not call transient ends at once', async () => {
    let calls = 0;
    const final = new Error('final');
    await expect(
      withRetry(
        async () => {
          calls++;
          throw final;
        },
        { ...numbers, retryError: (e) => e instanceof Transient },
      ),
    ).rejects.toBe(final);
    expect(calls).toBe(1);
  });

  it('retries a transient result, discards it, and returns the last one when retries run out', async () => {
    const discarded: number[] = [];
    const policy: RetryPolicy<number> = {
      ...numbers,
      retryResult: (n) => (n < 100 ? { afterMs: 1 } : false),
      discard: async (n) => {
        discarded.push(n);
      },
    };
    expect(await withRetry(async (attempt) => (attempt === 1 ? 100 : attempt), policy)).toBe(100);
    expect(discarded).toEqual([0]);
    // always transient: the third answer is returned for the caller to word
    expect(await withRetry(async (attempt) => attempt, policy)).toBe(2);
    expect(discarded).toEqual([0, 0, 1]);
  });

  it('an attempt that made progress does not use up a retry, up to 10 × (retries + 1) attempts', async () => {
    let done = 0;
    let before = 0;
    const result = await withRetry(
      async () => {
        before = done;
        done++;
        if (done < 7) throw new Transient('cut');
        return done;
      },
      { ...numbers, retryError: (e) => e instanceof Transient, progressed: () => done > before },
    );
    expect(result).toBe(7);
    let attempts = 0;
    await expect(
      withRetry(
        async () => {
          attempts++;
          throw new Transient('always progressing');
        },
        { ...numbers, retryError: () => true, progressed: () => true },
      ),
    ).rejects.toThrow('always progressing');
    // 30 attempts may each make progress; after the cap the ordinary retries still apply
    expect(attempts).toBe(30 + numbers.retries);
  });

  it('an abort during the wait rejects with the signal’s own reason', async () => {
    const controller = new AbortController();
    const reason = new Error('the caller’s reason');
    const run = withRetry(
      async () => {
        queueMicrotask(() => controller.abort(reason));
        throw new Transient('x');
      },
      { retries: 5, baseDelayMs: 60_000, maxDelayMs: 60_000, retryError: () => true },
      controller.signal,
    );
    await expect(run).rejects.toBe(reason);
  });
});
