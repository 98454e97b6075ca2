/**
 * Deterministic pseudo-random bytes (xorshift32 from `seed`): incompressible test data that is the
 * same on every run, so a failing test can be rerun with the same bytes.
 */
export function pseudoRandomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
