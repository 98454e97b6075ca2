// A second process using a blob cache, for the cache tests (leases, prunes, killed writers).
//   lease DIR DIGEST…        lease the blobs, print "ready", wait for a line on stdin, read them, print "ok N"
//   reader DIR ROUNDS DIGEST… ROUNDS times (each with a new BlobCache) read every present blob; print "done READS" or "error …"
//   writer DIR COUNT         write COUNT fresh blobs, printing "stored DIGEST" for each; then wait for stdin
//   partial DIR DIGEST       stage a download, write part of it, print its path, hang (to be killed)
//   token DIR                print this process's token, hang (to be killed)
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { processToken } from '@irb/store';
import { BlobCache } from '../src/cache.ts';

const [mode, dir, ...rest] = process.argv.slice(2) as [string, string, ...string[]];
let cache = new BlobCache(dir, { maxBytes: false });
const line = () =>
  new Promise<void>((resolve) => {
    const lines = createInterface({ input: process.stdin });
    lines.once('line', () => {
      lines.close();
      process.stdin.destroy();
      resolve();
    });
  });

async function readAll(digest: string, size: number): Promise<number> {
  let bytes = 0;
  for await (const chunk of cache.open(digest, size)) bytes += chunk.byteLength;
  return bytes;
}

async function sizeOf(digest: string): Promise<number> {
  const { stat } = await import('node:fs/promises');
  return (await stat(cache.path(digest))).size;
}

try {
  if (mode === 'lease') {
    const sizes: number[] = [];
    for (const digest of rest) {
      if (!(await cache.has(digest))) throw new Error(`missing ${digest}`);
      sizes.push(await sizeOf(digest));
    }
    process.stdout.write('ready\n');
    await line();
    let bytes = 0;
    for (const [i, digest] of rest.entries()) bytes += await readAll(digest, sizes[i] as number);
    process.stdout.write(`ok ${bytes}\n`);
  } else if (mode === 'reader') {
    const [rounds, ...digests] = rest as [string, ...string[]];
    let reads = 0;
    for (let round = 0; round < Number(rounds); round++) {
      // A fresh cache object each round: its leases start empty, so every round races the prunes anew.
      await cache.dispose();
      cache = new BlobCache(dir, { maxBytes: false });
      for (const digest of digests) {
        if (!(await cache.has(digest))) continue;
        // Present when looked at, after the lease: it must stay readable to the end.
        await readAll(digest, await sizeOf(digest));
        reads++;
      }
    }
    process.stdout.write(`done ${reads}\n`);
  } else if (mode === 'writer') {
    for (let i = 0; i < Number(rest[0]); i++) {
      const bytes = randomBytes(4096 + i);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      await cache.writeBytes(digest, bytes);
      process.stdout.write(`stored ${digest}\n`);
    }
    await line();
  } else if (mode === 'token') {
    process.stdout.write(`${processToken()}\n`);
    setInterval(() => {}, 60_000);
    await new Promise(() => {});
  } else if (mode === 'partial') {
    const staged = await cache.stage(rest[0] as string);
    const handle = await open(staged.path, 'w');
    await handle.write(randomBytes(1000));
    process.stdout.write(`${staged.path}\n`);
    setInterval(() => {}, 60_000);
    await new Promise(() => {});
  }
  await cache.dispose();
} catch (error) {
  process.stdout.write(`error ${(error as Error).message}\n`);
  process.exitCode = 1;
}
