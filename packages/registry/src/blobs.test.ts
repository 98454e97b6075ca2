import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { scratchPath } from './blobs.ts';
import { BlobCache } from './cache.ts';

const BLOBS = fileURLToPath(new URL('./blobs.ts', import.meta.url));
const DIGEST = `sha256:${'ab'.repeat(32)}`;
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Runs another process that creates a scratch file in `cacheDir`, prints its path and is killed. */
async function killedWriter(cacheDir: string): Promise<string> {
  const script = `
    import { writeFileSync } from 'node:fs';
    import { scratchPath } from ${JSON.stringify(BLOBS)};
    const path = scratchPath(${JSON.stringify(cacheDir)}, ${JSON.stringify(DIGEST)});
    writeFileSync(path, 'spooled bodies');
    console.log(path);
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--conditions=@irb/source', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const path = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (data: Buffer) => resolve(data.toString().trim()));
    child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before writing`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  return path;
}

describe('scratchPath', () => {
  it("names a file in the staging directory that the next run's sweep removes once its writer was killed", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'irb-scratch-'));
    dirs.push(dir);
    await mkdir(join(dir, '.tmp'));
    const killed = await killedWriter(dir);
    expect(dirname(killed)).toBe(join(dir, '.tmp'));
    expect(existsSync(killed)).toBe(true);
    const mine = scratchPath(dir, DIGEST);
    expect(mine).not.toBe(scratchPath(dir, DIGEST));
    await writeFile(mine, 'in use');

    const cache = new BlobCache(dir, { maxBytes: false });
    expect(await cache.sweep()).toBe(1);
    // The live writer's file stays: a sweep never takes what a running process uses.
    expect(await readdir(join(dir, '.tmp'))).toEqual([mine.slice(join(dir, '.tmp').length + 1)]);
    await cache.dispose();
  });
});
