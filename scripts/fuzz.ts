#!/usr/bin/env node
/**
 * `pnpm fuzz`: a long fuzz campaign over every `*.fuzz.test.ts` of the workspace (or those whose
 * path contains one of the FILTERs), with one seed for every property. CI runs the same
 * properties with each one's small, fixed budget as part of `vitest run`.
 *
 * Usage: [IRB_FUZZ_RUNS=N] [IRB_FUZZ_SEED=S] [IRB_FUZZ_CASE_MS=MS] pnpm fuzz [FILTER...]
 *   IRB_FUZZ_RUNS   cases per property (default 10 000)
 *   IRB_FUZZ_SEED   the seed (default: a random one, printed first, to replay the campaign)
 *   IRB_FUZZ_PATH   with the seed, replays the one case a failure reported
 *
 * Each property prints `fuzz: NAME: N cases in T s, R/s, seed S`; a failure prints the shrunk
 * case and the IRB_FUZZ_SEED/IRB_FUZZ_PATH line that replays it; a case stuck past twice the
 * per-case limit kills its test process with a `fuzz: HANG:` line.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Every fuzz test file under the packages' and apps' src/ and test/ directories. */
function fuzzFiles(): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name === 'dist') continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.fuzz.test.ts')) found.push(relative(ROOT, path));
    }
  };
  for (const top of ['packages', 'apps']) walk(join(ROOT, top));
  return found.sort();
}

const filters = process.argv.slice(2);
const files = fuzzFiles().filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)));
if (files.length === 0) {
  console.error(`fuzz: no *.fuzz.test.ts matches ${filters.join(' ')}`);
  process.exit(2);
}
const runs = process.env.IRB_FUZZ_RUNS?.trim() || '10000';
const seed = process.env.IRB_FUZZ_SEED?.trim() || String(Math.floor(Math.random() * 0x7fff_ffff));
console.error(`fuzz: ${files.length} files, ${runs} cases per property, IRB_FUZZ_SEED=${seed}`);
const run = spawnSync('pnpm', ['exec', 'vitest', 'run', ...files], {
  cwd: ROOT,
  stdio: 'inherit',
  env: { ...process.env, IRB_FUZZ_RUNS: runs, IRB_FUZZ_SEED: seed },
});
process.exit(run.status ?? 1);
