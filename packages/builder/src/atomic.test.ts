import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isIrbError } from '@irb/errors';
import { isStaleTemp } from '@irb/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './atomic.ts';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

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

  it('puts a prefix file first (copied, not read), then the source; a failing source or a missing prefix leaves nothing', async () => {
    const sub = await mkdtemp(join(dir, 'prefix-'));
    const prefix = join(sub, 'base');
    await writeFile(prefix, Buffer.alloc(70_000, 7));
    const out = join(sub, 'out');
    // Three chunks, produced while the prefix is being copied (read-ahead), then written after it.
    const n = await writeFileAtomic(out, chunks([Uint8Array.of(1), Uint8Array.of(2, 3), Uint8Array.of(4)]), {
      prefixFile: prefix,
    });
    expect(n).toBe(4);
    const bytes = await readFile(out);
    expect(bytes.byteLength).toBe(70_004);
    expect([...bytes.subarray(69_998)]).toEqual([7, 7, 1, 2, 3, 4]);
    const failed = await writeFileAtomic(join(sub, 'bad'), chunks([Uint8Array.of(1)], new Error('boom')), {
      prefixFile: prefix,
    }).catch((e) => e);
    expect(failed.message).toBe('boom');
    const missing = await writeFileAtomic(join(sub, 'none'), chunks([Uint8Array.of(1)]), {
      prefixFile: join(sub, 'no-such-base'),
    }).catch((e) => e);
    expect(missing.code).toBe('IRB_INPUT_UNREADABLE');
    expect((await readdir(sub)).sort()).toEqual(['base', 'out']);
  });

  it('writes what was produced during the prefix copy in order, also more chunks than one writev takes', async () => {
    const sub = await mkdtemp(join(dir, 'many-'));
    const prefix = join(sub, 'base');
    await writeFile(prefix, Uint8Array.of(9, 9));
    // 3000 chunks (Linux takes at most 1024 per writev), some empty, all read ahead at once.
    const parts = Array.from({ length: 3000 }, (_, i) => new Uint8Array(i % 7).fill(i % 251));
    const expected = Buffer.concat([Uint8Array.of(9, 9), ...parts]);
    const seen: number[] = [];
    const n = await writeFileAtomic(join(sub, 'out'), chunks(parts), {
      prefixFile: prefix,
      onWrite: (b) => seen.push(b),
    });
    expect(n).toBe(expected.byteLength - 2);
    expect(seen.at(-1)).toBe(n);
    expect(Buffer.compare(await readFile(join(sub, 'out')), expected)).toBe(0);
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
    expect(err.message).toContain('`output`');
    const ro = join(dir, 'ro');
    await mkdir(ro);
    await chmod(ro, 0o555);
    // root ignores directory permissions; a read-only path under /proc fails for everyone.
    const target = process.getuid?.() === 0 ? '/proc/irb-test-out' : join(ro, 'out');
    const denied = await writeFileAtomic(target, chunks([])).catch((e) => e);
    expect(denied.code).toBe('IRB_OUTPUT_FAILED');
  });

  it('writes into a FIFO in place: no temporary file, no rename, the FIFO stays', async () => {
    const sub = await mkdtemp(join(dir, 'fifo-'));
    const fifo = join(sub, 'pipe');
    await run('mkfifo', [fifo]);
    const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
    const read: Buffer[] = [];
    reader.stdout.on('data', (b: Buffer) => read.push(b));
    const closed = new Promise((resolve) => reader.on('close', resolve));
    const body = new Uint8Array(300_000).map((_, i) => i % 251);
    const n = await writeFileAtomic(fifo, chunks([body.subarray(0, 100_000), body.subarray(100_000)]));
    await closed;
    expect(n).toBe(body.byteLength);
    expect(Buffer.concat(read).equals(body)).toBe(true);
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect(await readdir(sub)).toEqual(['pipe']);
  });

  // A private device node with /dev/null's numbers, never the machine's own /dev/null.
  it.skipIf(!isRoot)('writes into a character device in place and leaves the node a device', async () => {
    const sub = await mkdtemp(join(dir, 'dev-'));
    const node = join(sub, 'null');
    await run('mknod', [node, 'c', '1', '3']);
    const before = await lstat(node);
    const n = await writeFileAtomic(node, chunks([new Uint8Array(1 << 20), new Uint8Array(5)]));
    expect(n).toBe((1 << 20) + 5);
    const after = await lstat(node);
    expect(after.isCharacterDevice()).toBe(true);
    expect([after.ino, after.rdev]).toEqual([before.ino, before.rdev]);
    expect(await readdir(sub)).toEqual(['null']);
  });

  it.skipIf(!isRoot)('reports a device that refuses the bytes as an output error', async () => {
    // /dev/full's numbers (1,7) as a private node; every write fails with ENOSPC.
    const sub = await mkdtemp(join(dir, 'full-'));
    await run('mknod', [join(sub, 'full'), 'c', '1', '7']);
    const err = await writeFileAtomic(join(sub, 'full'), chunks([new Uint8Array(10)])).catch((e) => e);
    expect(isIrbError(err) && err.code).toBe('IRB_OUTPUT_FAILED');
    expect(err.message).toContain('no space left on the device');
    expect((await lstat(join(sub, 'full'))).isCharacterDevice()).toBe(true);
  });
});

describe('temporary files of killed writers', () => {
  let dir: string;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-stale-'));
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  /** A separate Node process that starts writing `out` and never finishes; resolves once its temp file exists. */
  async function startWriter(sub: string, out: string): Promise<{ child: ChildProcess; temp: string }> {
    const script = `
      import { writeFileAtomic } from ${JSON.stringify(join(import.meta.dirname, 'atomic.ts'))};
      async function* slow() { for (;;) { yield new Uint8Array(1024); await new Promise((r) => setTimeout(r, 50)); } }
      await writeFileAtomic(${JSON.stringify(join(sub, out))}, slow());
    `;
    const child = spawn(process.execPath, ['--conditions=@irb/source', '--input-type=module', '-e', script], {
      stdio: 'inherit',
    });
    children.push(child);
    for (;;) {
      const temp = (await readdir(sub)).find((n) => n.startsWith(`.${out}.`) && n.endsWith('.irb-tmp'));
      if (temp) return { child, temp };
      if (child.exitCode !== null) throw new Error(`writer exited with ${child.exitCode}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('the next write into the directory removes a SIGKILLed writer’s temp file, never a live one’s', async () => {
    const sub = await mkdtemp(join(dir, 'kill-'));
    const killed = await startWriter(sub, 'a.cpio.gz');
    const live = await startWriter(sub, 'b.cpio.gz');
    const exited = new Promise((resolve) => killed.child.on('exit', resolve));
    killed.child.kill('SIGKILL');
    await exited;
    // A SIGKILLed process cleans nothing: its temp file is still there.
    expect((await readdir(sub)).sort()).toEqual([killed.temp, live.temp].sort());
    expect(isStaleTemp(killed.temp)).toBe(true);
    expect(isStaleTemp(live.temp)).toBe(false);

    await writeFileAtomic(join(sub, 'c.cpio.gz'), chunks([new Uint8Array([1])]));
    expect((await readdir(sub)).sort()).toEqual([live.temp, 'c.cpio.gz'].sort());
    live.child.kill('SIGKILL');
  });
});
