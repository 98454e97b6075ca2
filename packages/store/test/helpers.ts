import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type LineChild, lineChild } from '@irb/test-utils';
import { afterAll } from 'vitest';

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));
const dirs: string[] = [];
const children: LineChild[] = [];
afterAll(async () => {
  for (const c of children) await c.kill();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A fresh directory removed after the file's tests. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'irb-store-test-'));
  dirs.push(dir);
  return dir;
}

/** A child process running test/child.ts (see its modes), killed after the file's tests. */
export function child(...args: string[]): LineChild {
  const c = lineChild(CHILD, ...args);
  children.push(c);
  return c;
}
