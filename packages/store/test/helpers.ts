import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));
const dirs: string[] = [];
const children: ChildProcessWithoutNullStreams[] = [];
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A fresh directory removed after the file's tests. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'irb-store-test-'));
  dirs.push(dir);
  return dir;
}

/** A child process running test/child.ts; `next()` resolves with its next stdout line. */
export function child(...args: string[]) {
  const p = spawn(process.execPath, ['--conditions=@irb/source', CHILD, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(p);
  const lines: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let buffer = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  p.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
  return {
    process: p,
    next: () =>
      new Promise<string>((resolve, reject) => {
        const line = lines.shift();
        if (line !== undefined) return resolve(line);
        waiting.push(resolve);
        exited.then(() => setImmediate(() => reject(new Error(`child exited: ${stderr}`))));
      }),
    /** Kills it with SIGKILL (it cleans nothing up) and waits until it is gone. */
    kill: async () => {
      p.kill('SIGKILL');
      await exited;
    },
    exited,
  };
}
