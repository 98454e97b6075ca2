// The published build must work as well as the sources: the deflate worker is a sibling
// file resolved at run time (.ts from src, .js from dist), so build to a scratch directory
// and run it in a plain Node process — which must also exit on its own afterwards.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress } from '../src/index.ts';
import { chunked, collect } from './helpers.ts';

const pkg = dirname(dirname(fileURLToPath(import.meta.url)));
let out: string;

function exec(
  command: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: pkg, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// Deterministic, compressible, longer than the 8 MiB that gzip deflates on libuv's pool before
// it starts workers.
function input(): Uint8Array {
  const bytes = new Uint8Array(9_000_000);
  let x = 1;
  for (let i = 0; i < bytes.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = (x >>> 24) % 7 === 0 ? x & 0xff : 97 + ((i >> 5) % 26);
  }
  return bytes;
}

beforeAll(async () => {
  // Inside the package so `@irb/cpio` and `zstd-napi` resolve as they would when installed.
  out = await mkdtemp(join(pkg, '.dist-test-'));
  const tsc = await exec(join(pkg, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json', '--outDir', out]);
  expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);
}, 120_000);
afterAll(async () => {
  if (out) await rm(out, { recursive: true, force: true });
});

describe('built package', () => {
  it('compresses gzip (workers) and lz4 from dist, byte-identical to src, and lets the process exit', async () => {
    const script = join(out, 'run.mjs');
    await writeFile(
      script,
      `import { createHash } from 'node:crypto';
import { compress } from './index.js';
${input.toString()}
const data = input();
async function* chunks() { for (let i = 0; i < data.length; i += 100_000) yield data.subarray(i, i + 100_000); }
const hash = createHash('sha256');
for await (const c of compress(chunks(), { format: 'gzip', threads: 2 })) hash.update(c);
console.log(hash.digest('hex'));
const lz4 = createHash('sha256');
for await (const c of compress(chunks(), { format: 'lz4', threads: 2 })) lz4.update(c);
console.log(lz4.digest('hex'));
// Abandon a second stream half-way, once its workers run, without closing it: idle workers must
// not keep Node alive.
const it = compress(chunks(), { format: 'gzip', threads: 2 })[Symbol.asyncIterator]();
for (let i = 0; i < 34; i++) await it.next();
`,
    );
    const fromSrc = createHash('sha256')
      .update(await collect(compress(chunked(input(), 100_000), { format: 'gzip', threads: 2 })))
      .digest('hex');
    const lz4FromSrc = createHash('sha256')
      .update(await collect(compress(chunked(input(), 100_000), { format: 'lz4', threads: 2 })))
      .digest('hex');
    const run = await exec(process.execPath, ['--conditions=@irb/source', script]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().split('\n')).toEqual([fromSrc, lz4FromSrc]);
  }, 120_000);
});
