/**
 * The mtime clamp of a reproducible build: `given` when set, else `$SOURCE_DATE_EPOCH` when it is
 * a whole number of seconds (the reproducible-builds.org convention), else `undefined` (no clamp).
 * A value that is not digits is ignored, as the convention asks of malformed values.
 */
export function sourceDateEpoch(given?: number): number | undefined {
  if (given !== undefined) return given;
  const env = process.env.SOURCE_DATE_EPOCH;
  return env !== undefined && /^\d+$/.test(env) ? Number(env) : undefined;
}
