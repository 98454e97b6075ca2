/**
 * The one retry policy of the registry client: which failures get another attempt, how long to
 * wait between attempts, and when to stop. Every loop that retries (registry requests, token
 * requests, blob downloads) goes through {@link withRetry}; none counts attempts by hand.
 */
import { isIrbError } from '@irb/errors';
import { type HttpResponse, header, isRetryableNetworkError, isRetryableStatus } from './http.ts';

/** Retry policy for transient failures (connection errors, 408, 429, 5xx). */
export interface RetryOptions {
  /** Retries after the first attempt. Default 4. */
  retries?: number;
  /** First backoff delay; doubles each retry, with ±50% jitter. Default 250 ms. */
  baseDelayMs?: number;
  /** Longest wait between attempts, also the cap for `Retry-After`. Default 20 s. */
  maxDelayMs?: number;
}

/** The defaults of {@link RetryOptions}. */
export const DEFAULT_RETRY: Required<RetryOptions> = { retries: 4, baseDelayMs: 250, maxDelayMs: 20_000 };

/**
 * How {@link withRetry} judges one attempt. The numbers come from {@link RetryOptions}; the
 * hooks say which outcomes are transient.
 */
export interface RetryPolicy<T> extends Required<RetryOptions> {
  /** True when a thrown failure is worth another attempt. Default: none is. */
  retryError?: (error: unknown) => boolean;
  /**
   * A result worth another attempt (an HTTP 429 or 503): `false`, or the server's wish for the
   * wait in ms (`Retry-After`), `undefined` meaning "use the backoff". When the retries run out
   * the result is returned as is, so the caller can word the final status.
   */
  retryResult?: (result: T) => false | { afterMs: number | undefined };
  /** Releases a result that is retried (an unread response body). */
  discard?: (result: T) => Promise<void>;
  /**
   * True when the failed attempt moved the work forward (a download got more bytes). Such an
   * attempt does not use up a retry, so a flaky but working connection still finishes a large
   * layer; a hard cap of 10 × (retries + 1) attempts still ends a pathological case.
   */
  progressed?: () => boolean;
}

/**
 * Runs `fn` until it succeeds, the policy says the outcome is final, or the retries are used
 * up; waits with {@link backoffDelay} between attempts. `fn` receives the 0-based attempt number
 * (every attempt counted, also those that made progress).
 *
 * Cancelling `signal` rejects with the signal's reason (as fetch does), also during a wait.
 * The last failure is rethrown unchanged when the retries run out: the caller words it,
 * because only the caller knows what was being done.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy<T>,
  signal?: AbortSignal,
): Promise<T> {
  const maxAttempts = 10 * (policy.retries + 1);
  // Retries used since the last attempt that made progress.
  let used = 0;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    let delay: number;
    try {
      const result = await fn(attempt);
      const again = policy.retryResult?.(result) ?? false;
      if (again === false || used >= policy.retries) return result;
      await policy.discard?.(result);
      delay = backoffDelay(used++, policy, again.afterMs);
    } catch (error) {
      signal?.throwIfAborted();
      if (!policy.retryError?.(error)) throw error;
      if (policy.progressed?.() && attempt + 1 < maxAttempts) {
        used = 0;
        delay = backoffDelay(0, policy);
      } else if (used >= policy.retries) {
        throw error;
      } else {
        delay = backoffDelay(used++, policy);
      }
    }
    await sleep(delay, signal);
  }
}

/**
 * The transient outcomes of an HTTP exchange: connection failures (never an `IrbError`, which
 * is final already) and 408/429/5xx answers, honouring `Retry-After`. Spread it into a policy.
 */
export const HTTP_TRANSIENT: Pick<RetryPolicy<HttpResponse>, 'retryError' | 'retryResult' | 'discard'> = {
  retryError: (error) => !isIrbError(error) && isRetryableNetworkError(error),
  retryResult: (res) =>
    isRetryableStatus(res.status) ? { afterMs: parseRetryAfter(header(res.headers, 'retry-after')) } : false,
  discard: async (res) => {
    await res.body.dump().catch(() => undefined);
  },
};

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds from now. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Exponential backoff with ±50% jitter; `retryAfterMs` (when given) wins, both capped at `maxDelayMs`. */
export function backoffDelay(attempt: number, retry: Required<RetryOptions>, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, retry.maxDelayMs);
  const base = retry.baseDelayMs * 2 ** attempt;
  const jittered = base * (0.5 + Math.random());
  return Math.min(jittered, retry.maxDelayMs);
}

/** Resolves after `ms`, or rejects with the signal's reason when aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
