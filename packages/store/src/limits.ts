import { IrbError } from '@irb/errors';

/** The automatic cache limit when `IRB_CACHE_MAX_SIZE` is not set: 10 GiB. */
export const DEFAULT_CACHE_MAX_BYTES = 10 * 1024 ** 3;

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1000 ** 4,
};

/**
 * Parses a byte size: a number with an optional unit, `K`/`M`/`G`/`T` and `KiB`… being powers
 * of 1024, `KB`/`MB`/`GB`/`TB` powers of 1000 (as GNU `du` and `sort` read them). Case does not
 * matter. `undefined` when the text is not a size.
 */
export function parseByteSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? UNITS[(match[2] as string).toLowerCase()] : undefined;
  if (!match || unit === undefined) return undefined;
  const bytes = Math.floor(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const DURATIONS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** Parses a duration such as `90s`, `30m`, `12h`, `7d` or `2w` into milliseconds; `undefined` otherwise. */
export function parseDuration(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/i.exec(text);
  if (!match) return undefined;
  const ms = Math.round(Number(match[1]) * (DURATIONS[(match[2] as string).toLowerCase()] as number));
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/**
 * The automatic cache limit in bytes: `IRB_CACHE_MAX_SIZE` (a size as {@link parseByteSize}
 * reads it, or `off` for no limit), else {@link DEFAULT_CACHE_MAX_BYTES}. `undefined` means off.
 * Throws `IRB_OPTION_INVALID` for a value that is neither.
 */
export function cacheMaxBytes(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.IRB_CACHE_MAX_SIZE;
  if (raw === undefined || raw.trim() === '') return DEFAULT_CACHE_MAX_BYTES;
  if (/^\s*(off|none|unlimited)\s*$/i.test(raw)) return undefined;
  const bytes = parseByteSize(raw);
  if (bytes === undefined) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `IRB_CACHE_MAX_SIZE="${raw}" is not a size; use e.g. 10G, 500M, 2GB or off`,
    );
  }
  return bytes;
}
