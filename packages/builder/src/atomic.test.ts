import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isIrbError } from '@irb/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './atomic.ts';

async function* chunks(parts: Uint8Array[], fail?: Error): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
  if (fail) throw fail;
}

describe('writeFileAtomic', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-atomic-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes all chunks and reports the byte count', async () => {
    const path = join(dir, 'ok.bin');
    const seen: number[] = [];
    const n = await writeFileAtomic(path, chunks([new Uint8Array([1, 2]), new Uint8Array([3])]), {
      onWrite: (b) => seen.push(b),
    });
    expect(n).toBe(3);
    expect(seen).toEqual([2, 3]);
    expect([...(await readFile(path))]).toEqual([1, 2, 3]);
  });

  it('leaves neither the output nor a temporary file when the source fails', async () => {
    const sub = await mkdtemp(join(dir, 'fail-'));
    const err = await writeFileAtomic(
      join(sub, 'out'),
      chunks([new Uint8Array(1000)], new Error('boom')),
    ).catch((e) => e);
    expect(err.message).toBe('boom');
    expect(await readdir(sub)).toEqual([]);
  });

  it('keeps an existing file untouched when the new one fails', async () => {
    const path = join(dir, 'keep.txt');
    await writeFile(path, 'old');
    await writeFileAtomic(path, chunks([new TextEncoder().encode('new')], new Error('x'))).catch(() => {});
    expect(await readFile(path, 'utf8')).toBe('old');
  });

  it('stops on abort and removes the temporary file', async () => {
    const sub = await mkdtemp(join(dir, 'abort-'));
    const controller = new AbortController();
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (let i = 0; ; i++) {
        if (i === 3) controller.abort(new Error('stop'));
        yield new Uint8Array(10);
      }
    }
    const err = await writeFileAtomic(join(sub, 'out'), endless(), { signal: controller.signal }).catch(
      (e) => e,
    );
    expect(err.message).toBe('stop');
    expect(await readdir(sub)).toEqual([]);
  });

  it('names an unwritable output and what to do', async () => {
    const err = await writeFileAtomic(join(dir, 'missing-dir', 'out'), chunks([])).catch((e) => e);
    expect(isIrbError(err) && err.code).toBe('IRB_OUTPUT_FAILED');
    expect(err.message).toContain('the directory does not exist');
    expect(err.message).toContain('-o FILE');
    const ro = join(dir, 'ro');
    await mkdir(ro);
    await chmod(ro, 0o555);
    // root ignores directory permissions; a read-only path under /proc fails for everyone.
    const target = process.getuid?.() === 0 ? '/proc/irb-test-out' : join(ro, 'out');
    const denied = await writeFileAtomic(target, chunks([])).catch((e) => e);
    expect(denied.code).toBe('IRB_OUTPUT_FAILED');
  });
});
