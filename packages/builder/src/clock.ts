/**
 * Milliseconds on a monotonic clock, for a run's `durationMs`. Not `performance.now()`: the first
 * use of the `performance` global loads Node's perf_hooks (about ten modules, ~1 ms), which an
 * unchanged rebuild has no other use for.
 */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;
