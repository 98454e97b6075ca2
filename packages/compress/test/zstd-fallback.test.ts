// zstd-napi is an optional dependency: when its build was skipped or failed, zstd must
// still work through node:zlib. A child process whose module resolution cannot find
// zstd-napi (as after `npm install --ignore-scripts` on a platform without a prebuilt
// binary) is the real situation, not a mock of the package.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './helpers.ts';

const pkg = dirname(dirname(fileURLToPath(import.meta.url)));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(pkg, '.fallback-test-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function node(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: pkg,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

describe('zstd without zstd-napi', () => {
  it('falls back to node:zlib, says so, and writes zstd that zstd(1) reads', async () => {
    const hide = join(dir, 'hide-zstd-napi.mjs');
    await writeFile(
      hide,
      `import { registerHooks } from 'node:module';
registerHooks({
  resolve(specifier, context, next) {
    if (specifier === 'zstd-napi' || specifier.startsWith('zstd-napi/')) {
      const error = new Error(\`Cannot find module '\${specifier}'\`);
      error.code = 'MODULE_NOT_FOUND';
      throw error;
    }
    return next(specifier, context);
  },
});
`,
    );
    const script = join(dir, 'run.mts');
    await writeFile(
      script,
      `import { compress, decompress, zstdBackend } from '../src/index.ts';
const input = new TextEncoder().encode('irb zstd fallback '.repeat(50_000));
async function* once() { yield input; }
const parts = [];
for await (const chunk of compress(once(), { format: 'zstd', threads: 2 })) parts.push(chunk);
const zst = Buffer.concat(parts);
const back = [];
for await (const chunk of decompress((async function* () { yield zst; })())) back.push(chunk);
if (!Buffer.concat(back).equals(input)) throw new Error('round trip differs');
process.stderr.write(zstdBackend() + '\\n');
process.stdout.write(zst);
`,
    );
    const fallback = await node(['--conditions=@irb/source', '--import', hide, script]);
    expect(fallback.code, fallback.stderr).toBe(0);
    expect(fallback.stderr.trim()).toBe('node:zlib');
    const tested = await run('zstd', ['-dc'], fallback.stdout);
    expect(tested.code).toBe(0);
    expect(tested.stdout.toString()).toBe('irb zstd fallback '.repeat(50_000));

    // Forcing the missing addon is a clear error, not a crash.
    const forced = await node(['--conditions=@irb/source', '--import', hide, script], {
      IRB_ZSTD_BACKEND: 'napi',
    });
    expect(forced.code).not.toBe(0);
    expect(forced.stderr).toContain('IRB_ZSTD_BACKEND=napi asks for zstd-napi, which did not load');

    // With the addon present, it is the default; its multi-threaded format has other bytes.
    const native = await node(['--conditions=@irb/source', script]);
    expect(native.code, native.stderr).toBe(0);
    expect(native.stderr.trim()).toBe('zstd-napi');
    expect((await run('zstd', ['-dc'], native.stdout)).stdout.equals(tested.stdout)).toBe(true);
  }, 60_000);
});
