import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { compress, decodeInitramfs } from '@irb/compress';
import { trailerMember } from '@irb/compress/framing';
import { type CpioEntry, packCpio, readCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendOverlay } from './append.ts';
import { listArchive } from './archive.ts';
import type { InitramfsCompression } from './types.ts';

const run = promisify(execFile);
let dir: string;
let agent: string;

const cacheEnv = process.env.IRB_CACHE_DIR;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-append-'));
  // What append learns of BASE goes to this cache, not the user's.
  process.env.IRB_CACHE_DIR = join(dir, 'cache');
  agent = join(dir, 'agent');
  await writeFile(agent, '#!/bin/sh\necho agent B\n');
});
afterAll(async () => {
  if (cacheEnv === undefined) delete process.env.IRB_CACHE_DIR;
  else process.env.IRB_CACHE_DIR = cacheEnv;
  await rm(dir, { recursive: true, force: true });
});

async function* entries(): AsyncGenerator<CpioEntry> {
  yield { type: 'directory', path: '.', mode: 0o755 };
  yield { type: 'directory', path: 'usr', mode: 0o755 };
  yield { type: 'directory', path: 'usr/bin', mode: 0o755 };
  yield { type: 'symlink', path: 'bin', target: 'usr/bin', mode: 0o777 };
  yield {
    type: 'file',
    path: 'usr/bin/agent',
    mode: 0o755,
    size: 8,
    body: new TextEncoder().encode('agent A\n'),
  };
}

/** A base archive as irb or the kernel's own tools write it: one member, compressed or not. */
async function makeBase(name: string, format: InitramfsCompression, endMark = true): Promise<string> {
  const path = join(dir, name);
  const packed = packCpio(entries());
  const bytes: Uint8Array[] = [];
  for await (const c of format === 'none' ? packed : compress(packed, { format, endMark })) bytes.push(c);
  await writeFile(path, Buffer.concat(bytes));
  return path;
}

/** Every entry of an archive with its member, and what the kernel leaves at `name` once all members are unpacked. */
async function unpack(path: string, name: string): Promise<{ members: number[]; text: string | undefined }> {
  let text: string | undefined;
  const members: number[] = [];
  for await (const e of readCpio(decodeInitramfs(createReadStream(path) as AsyncIterable<Uint8Array>))) {
    if (!members.includes(e.member)) members.push(e.member);
    if (e.name === name) text = e.type === 'file' ? new TextDecoder().decode(await e.bytes()) : undefined;
  }
  return { members, text };
}

describe('appendOverlay', () => {
  const formats: InitramfsCompression[] = ['gzip', 'zstd', 'lz4', 'none'];
  for (const baseFormat of formats) {
    for (const memberFormat of formats) {
      it(`${baseFormat} base + ${memberFormat} member: BASE's bytes unchanged, then a member the reader (and the kernel) unpacks over it`, async () => {
        const base = await makeBase(`base-${baseFormat}-${memberFormat}`, baseFormat);
        const out = join(dir, `out-${baseFormat}-${memberFormat}`);
        const summary = await appendOverlay(base, [`${agent}:/usr/bin/agent`], {
          output: out,
          compression: memberFormat,
        });
        // A plain BASE loses its TRAILER!!! (the new member's records carry on from there);
        // another tool's compressed BASE is kept whole.
        const baseBytes = (await readFile(base)).subarray(0, baseFormat === 'none' ? -124 : undefined);
        const outBytes = await readFile(out);
        expect(Buffer.compare(outBytes.subarray(0, baseBytes.byteLength), baseBytes)).toBe(0);
        expect(outBytes.subarray(-trailerMember(memberFormat).length)).toEqual(
          Buffer.from(trailerMember(memberFormat)),
        );
        expect(summary).toMatchObject({
          baseBytes: baseBytes.byteLength,
          compression: memberFormat,
          entries: 1,
        });
        expect(summary.compressedBytes).toBe(outBytes.byteLength);
        const { members, text } = await unpack(out, 'usr/bin/agent');
        expect(members).toEqual(baseFormat === 'none' ? [0] : [0, 1]);
        expect(text).toBe('#!/bin/sh\necho agent B\n');
        const listed = [];
        for await (const e of listArchive(out)) listed.push(e.member);
        expect([...new Set(listed)]).toEqual([0, 1]);
      });
    }
  }

  it('ends an lz4 BASE written without the end mark, so a gzip member after it is read as gzip', async () => {
    const base = await makeBase('base-lz4-nomark', 'lz4', false);
    const out = join(dir, 'out-lz4-nomark');
    await appendOverlay(base, [`${agent}:/usr/bin/agent`], { output: out, compression: 'gzip' });
    expect((await unpack(out, 'usr/bin/agent')).text).toBe('#!/bin/sh\necho agent B\n');
  });

  it('places the member over BASE like a build: DEST and missing parents emitted, BASE directories and symlinks kept; /init from `init`', async () => {
    const base = await makeBase('base-tree', 'gzip');
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'lib', 'deep'), { recursive: true });
    await writeFile(join(tree, 'lib', 'deep', 'x'), 'x');
    const init = join(dir, 'init');
    await writeFile(init, '#!/bin/sh\n');
    const out = join(dir, 'out-tree');
    await appendOverlay(
      base,
      [`${agent}:/opt/app/bin/agent`, `${tree}:/opt/app`, `${tree}:/usr`, `${agent}:/bin/b`],
      {
        output: out,
        init,
      },
    );
    const names: string[] = [];
    for await (const e of listArchive(out))
      if (e.member === 1) names.push(`${e.type} ${e.name} ${e.mode.toString(8)}`);
    // Directories first (parents before children), then the files: /opt and its parents are
    // new; /usr and /usr/bin are BASE's (not emitted, their modes stay); /bin/b went through
    // BASE's /bin → usr/bin.
    expect(names).toEqual([
      'directory opt 755',
      'directory opt/app 755',
      'directory opt/app/bin 755',
      'directory opt/app/lib 755',
      'directory opt/app/lib/deep 755',
      'directory usr/lib 755',
      'directory usr/lib/deep 755',
      'file usr/bin/b 755',
      'file init 755',
      'file opt/app/bin/agent 755',
      'file opt/app/lib/deep/x 755',
      'file usr/lib/deep/x 755',
    ]);
  });

  it('streams the same bytes it writes to a file, and the summary after the last byte', async () => {
    const base = await makeBase('base-stream', 'zstd');
    const out = join(dir, 'out-stream');
    await appendOverlay(base, [`${agent}:/usr/bin/agent`], { output: out, sourceDateEpoch: 1 });
    const stream = appendOverlay(base, [`${agent}:/usr/bin/agent`], { sourceDateEpoch: 1 });
    const chunks: Uint8Array[] = [];
    for await (const c of stream) chunks.push(c);
    expect(Buffer.compare(Buffer.concat(chunks), await readFile(out))).toBe(0);
    expect((await stream.summary).output).toBe('-');
  });

  it('writes the same member for any thread count and on every call (blocks on the pool, reused zstd contexts)', async () => {
    const big = join(dir, 'agent-big');
    // Several gzip blocks, half compressible and half not.
    const body = Buffer.alloc(700_000);
    for (let i = 0; i < body.length; i++) body[i] = i < 350_000 ? i % 61 : (i * 2654435761) >>> 24;
    await writeFile(big, body);
    for (const compression of formats) {
      const base = await makeBase(`base-threads-${compression}`, compression);
      const outputs = new Set<string>();
      for (const threads of [1, undefined, 1, 3]) {
        const out = join(dir, `out-threads-${compression}`);
        await appendOverlay(base, [`${big}:/usr/bin/agent`], {
          output: out,
          compression,
          sourceDateEpoch: 7,
          ...(threads !== undefined ? { threads } : {}),
        });
        outputs.add((await readFile(out)).toString('base64'));
      }
      expect(outputs.size, compression).toBe(1);
    }
  });

  it('loads neither the registry client nor the layer indexing code', async () => {
    // The CLI loads append.ts for `irb append` only: what it imports is what that command pays for.
    const script = `
import { registerHooks } from 'node:module';
const seen = [];
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r; } });
await import(${JSON.stringify(new URL('./append.ts', import.meta.url).href)});
console.log(JSON.stringify(seen));`;
    const { stdout } = await run(process.execPath, [
      '--conditions=@irb/source',
      '--input-type=module',
      '-e',
      script,
    ]);
    const urls = JSON.parse(stdout) as string[];
    expect(urls.some((u) => u.endsWith('/builder/src/append.ts'))).toBe(true);
    expect(urls.some((u) => u.endsWith('/layers/src/rootfs.ts'))).toBe(true);
    expect(
      urls.filter((u) => /undici|\/registry\/src\/index\.ts|\/index-layers\.ts|\/index-cache\.ts/.test(u)),
    ).toEqual([]);
  });

  it('refuses a BASE that is not an initramfs, or that it cannot vouch for, and leaves no output', async () => {
    const text = join(dir, 'notes.txt');
    await writeFile(text, 'hello world\n');
    const empty = join(dir, 'empty');
    await writeFile(empty, '');
    const xz = join(dir, 'base.xz');
    await writeFile(xz, Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2));
    const out = join(dir, 'refused');
    const cases: Array<[string, string, RegExp]> = [
      [
        text,
        'IRB_INITRAMFS_CORRUPT',
        /notes\.txt is not an initramfs \(it starts with neither a CPIO header nor a compression the kernel reads\); give an archive that irb build wrote$/,
      ],
      [empty, 'IRB_INITRAMFS_CORRUPT', /empty is not an initramfs \(it is empty\)/],
      [
        xz,
        'IRB_COMPRESSION_UNSUPPORTED',
        /base\.xz is compressed with xz; append works on plain CPIO, gzip, zstd and lz4 \(legacy\) archives/,
      ],
      [join(dir, 'missing'), 'IRB_INPUT_UNREADABLE', /cannot read .*missing \(ENOENT\); check the path/],
    ];
    // A BASE cut short is read to the end (for its tree) and refused, not appended to.
    const whole = await readFile(await makeBase('base-cut', 'gzip'));
    const cut = join(dir, 'base-cut.gz');
    await writeFile(cut, whole.subarray(0, whole.byteLength - 20));
    cases.push([cut, 'IRB_GZIP_TRUNCATED', /base-cut\.gz/]);
    for (const [base, code, message] of cases) {
      const err = await appendOverlay(base, [`${agent}:/a`], { output: out }).catch((e) => e);
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
    }
    await expect(stat(out)).rejects.toThrow();
  });
});
