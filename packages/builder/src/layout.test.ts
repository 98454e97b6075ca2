// The archive layout of what irb builds and appends: members without trailers, then the trailer
// member, read in full by the standard tools; `irb append` replacing the trailer member and
// refusing a BASE whose end it can prove broken.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { compress } from '@irb/compress';
import { IRB_ARCHIVE_NAME, trailerMember } from '@irb/compress/framing';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendOverlay } from './append.ts';
import { type ArchiveEntry, listArchive } from './archive.ts';
import { createBuildPipeline } from './pipeline.ts';
import type { InitramfsCompression } from './types.ts';

const run = promisify(execFile);
const formats: InitramfsCompression[] = ['gzip', 'zstd', 'lz4', 'none'];
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-layout-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const text = (s: string) => new TextEncoder().encode(s);

/** A small tree with a hard-linked pair, as a base member. */
function baseEntries(): CpioEntry[] {
  const body = text('the base\n');
  return [
    { type: 'directory', path: '.', mode: 0o755 },
    { type: 'directory', path: 'etc', mode: 0o755 },
    { type: 'file', path: 'etc/one', mode: 0o644, size: body.length, body, links: ['etc/two'] },
    { type: 'directory', path: 'opt', mode: 0o755 },
    { type: 'symlink', path: 'bin', mode: 0o777, target: 'usr/bin' },
  ];
}

/** An overlay member whose hard-linked pair gets the inode number of the base's (3). */
function overlayEntries(): CpioEntry[] {
  const init = text('#!/bin/sh\necho hi\n');
  const body = text('the overlay\n');
  return [
    { type: 'file', path: 'init', mode: 0o755, size: init.length, body: init },
    { type: 'directory', path: 'srv', mode: 0o755 },
    { type: 'file', path: 'srv/x1', mode: 0o644, size: body.length, body, links: ['srv/x2'] },
  ];
}

async function* listed(entries: CpioEntry[]): AsyncGenerator<CpioEntry> {
  yield* entries;
}

/** What `irb build` writes for those members: the build pipeline's bytes. */
async function built(name: string, compression: InitramfsCompression): Promise<string> {
  const pipeline = createBuildPipeline({
    members: [listed(baseEntries()), listed(overlayEntries())],
    compression,
    threads: 1,
    expectedBytes: 0,
    facts: {
      image: 'test',
      manifestDigest: 'sha256:0',
      configDigest: 'sha256:0',
      platform: 'linux/amd64',
      excluded: 0,
      filtered: 0,
      lostXattrs: [],
      init: 'file',
      warnings: [],
    },
    started: performance.now(),
  });
  const chunks: Uint8Array[] = [];
  for await (const chunk of pipeline.data) chunks.push(chunk);
  const path = join(dir, name);
  await writeFile(path, Buffer.concat(chunks));
  return path;
}

const plainOf: Record<InitramfsCompression, string> = {
  gzip: 'gzip -dc',
  zstd: 'zstd -dcq',
  lz4: 'lz4 -dcq',
  none: 'cat',
};

/** What GNU cpio, bsdtar and lsinitramfs list, each as lines. */
async function standardListings(path: string, compression: InitramfsCompression) {
  const sh = async (command: string) => {
    const { stdout } = await run('sh', ['-c', command], { maxBuffer: 64 << 20 });
    return stdout.trimEnd().split('\n');
  };
  return {
    cpio: await sh(`${plainOf[compression]} '${path}' | cpio -it --quiet`),
    bsdtar: await sh(`bsdtar -tf '${path}'`),
    // lsinitramfs ends an all-plain archive with "premature end of archive" from an empty tail part.
    lsinitramfs: await sh(`lsinitramfs '${path}' 2>/dev/null || true`),
  };
}

async function irbNames(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of listArchive(path)) names.push(e.name);
  return names;
}

describe('the archive layout', () => {
  for (const compression of formats) {
    it(`${compression}: built and appended twice, every standard tool lists what irb ls lists`, async () => {
      const base = await built(`built.${compression}`, compression);
      const bytes = await readFile(base);
      const end = trailerMember(compression);
      expect(bytes.subarray(-end.length)).toEqual(Buffer.from(end));
      // Exactly one TRAILER!!! in the decoded archive: the trailer member's.
      const plain = (await run('sh', ['-c', `${plainOf[compression]} '${base}'`], { encoding: 'buffer' }))
        .stdout;
      expect(plain.toString('latin1').split('TRAILER!!!').length).toBe(2);
      if (compression === 'gzip')
        expect(bytes.subarray(10, 10 + IRB_ARCHIVE_NAME.length).toString()).toBe(IRB_ARCHIVE_NAME);

      const job = join(dir, `job-${compression}`);
      await run('sh', ['-c', `mkdir -p '${job}/d' && echo first > '${job}/d/a'`]);
      const once = join(dir, `once.${compression}`);
      const twice = join(dir, `twice.${compression}`);
      const first = await appendOverlay(base, [`${job}/d:/opt/j1`], { output: once, sourceDateEpoch: 1 });
      expect(first.baseBytes).toBe(bytes.length - end.length);
      await run('sh', ['-c', `echo second > '${job}/d/a'`]);
      const second = await appendOverlay(once, [`${job}/d:/opt/j2`], { output: twice, sourceDateEpoch: 1 });
      expect(
        (await readFile(twice)).subarray(0, first.baseBytes).equals(bytes.subarray(0, first.baseBytes)),
      ).toBe(true);

      for (const path of [base, once, twice]) {
        const names = await irbNames(path);
        const listings = await standardListings(path, compression);
        expect(listings.cpio, path).toEqual(names);
        expect(listings.bsdtar, path).toEqual(names);
        expect(listings.lsinitramfs, path).toEqual(names);
      }

      // Each member has its own device number: 0:n for a built member, 1:offset for an appended
      // one. The overlay's pair reuses the base pair's inode number and still stays a file of its
      // own for GNU cpio, as for the kernel (see @irb/compress's boot test).
      const entries: ArchiveEntry[] = [];
      for await (const e of listArchive(twice)) entries.push(e);
      const device = (name: string) => {
        const e = entries.find((x) => x.name === name);
        return [e?.devMajor, e?.devMinor, e?.ino];
      };
      expect(device('etc/one')).toEqual([0, 0, 3]);
      expect(device('srv/x1')).toEqual([0, 1, 3]);
      // (Appended members start with the directories they create: their file's inode varies.)
      expect(device('opt/j1/a').slice(0, 2)).toEqual([1, first.baseBytes]);
      expect(device('opt/j2/a').slice(0, 2)).toEqual([1, second.baseBytes]);
      const out = join(dir, `extracted-${compression}`);
      await run('sh', [
        '-c',
        `mkdir '${out}' && cd '${out}' && ${plainOf[compression]} '${twice}' | cpio -id --quiet`,
      ]);
      const read = (p: string) => readFile(join(out, p), 'utf8');
      expect([await read('etc/one'), await read('etc/two')]).toEqual(['the base\n', 'the base\n']);
      expect([await read('srv/x1'), await read('srv/x2')]).toEqual(['the overlay\n', 'the overlay\n']);
      expect([await read('opt/j1/a'), await read('opt/j2/a')]).toEqual(['first\n', 'second\n']);
    });
  }

  it('appends across compressions: only a change of compression puts bytes between members', async () => {
    const agent = join(dir, 'agent');
    await writeFile(agent, 'agent\n');
    let path = await built('chain.lz4', 'lz4');
    const expected = await irbNames(path);
    for (const [i, compression] of (['gzip', 'none', 'zstd', 'lz4', 'none', 'gzip'] as const).entries()) {
      const next = join(dir, `chain-${i}`);
      await appendOverlay(path, [`${agent}:/opt/agent${i}`], { output: next, compression });
      expected.push(`opt/agent${i}`);
      path = next;
      expect(await irbNames(path)).toEqual(expected);
    }
  });

  it('refuses a BASE whose end it can prove broken, in every format, and leaves no output', async () => {
    const agent = join(dir, 'agent-refused');
    await writeFile(agent, 'agent\n');
    for (const compression of formats) {
      const base = await built(`whole.${compression}`, compression);
      const size = (await readFile(base)).length;
      // Cut exactly before the trailer member, zstd and lz4 data is whole: the last member,
      // decoded, shows the missing TRAILER!!!.
      const cuts = [1, Math.floor(size / 2), trailerMember(compression).length];
      for (const cut of cuts) {
        const broken = join(dir, `cut-${compression}-${cut}`);
        await writeFile(broken, (await readFile(base)).subarray(0, size - cut));
        const out = join(dir, `refused-${compression}-${cut}`);
        const error = await appendOverlay(broken, [`${agent}:/a`], { output: out }).catch((e) => e);
        expect(error.code, `${compression} cut by ${cut}`).toBe('IRB_INITRAMFS_CORRUPT');
        expect(error.message).toMatch(/append needs an intact BASE/);
        await expect(readFile(out)).rejects.toThrow();
      }
      // Something added after the trailer member.
      const added = join(dir, `added-${compression}`);
      await writeFile(added, Buffer.concat([await readFile(base), Buffer.from('junk')]));
      const error = await appendOverlay(added, [`${agent}:/a`], { output: join(dir, 'x') }).catch((e) => e);
      expect(error.code, compression).toBe('IRB_INITRAMFS_CORRUPT');
    }
  });

  it("appends to an archive of irb's earlier layout (members ending on TRAILER!!!) as before", async () => {
    const agent = join(dir, 'agent-old');
    await writeFile(agent, 'agent\n');
    for (const compression of formats) {
      // Two members, each a whole archive with its trailer; lz4 with its end mark.
      const parts: Uint8Array[] = [];
      for (const list of [baseEntries(), overlayEntries()]) {
        const cpio = packCpio(list);
        for await (const c of compression === 'none'
          ? cpio
          : compress(cpio, { format: compression, endMark: true })) {
          parts.push(c);
        }
      }
      const base = join(dir, `old.${compression}`);
      await writeFile(base, Buffer.concat(parts));
      const out = join(dir, `old-appended.${compression}`);
      const summary = await appendOverlay(base, [`${agent}:/opt/agent`], { output: out });
      const names = await irbNames(out);
      expect(names.slice(-2)).toEqual(['srv/x2', 'opt/agent']);
      // The plain one loses its last trailer like any plain BASE; the others are kept whole.
      expect(summary.baseBytes).toBe(Buffer.concat(parts).length - (compression === 'none' ? 124 : 0));
      // GNU cpio stops at the old base member's trailer (the decompressors may complain about
      // the NUL bytes after the old members; the kernel skips them).
      const { stdout } = await run('sh', [
        '-c',
        `${plainOf[compression]} '${out}' 2>/dev/null | cpio -it --quiet`,
      ]);
      expect(stdout.trimEnd().split('\n')).toEqual(names.slice(0, 6));
    }
    // An earlier layout's zstd and lz4 are walked: a cut is found there too.
    for (const compression of ['zstd', 'lz4'] as const) {
      const broken = join(dir, `old-cut.${compression}`);
      await writeFile(broken, (await readFile(join(dir, `old.${compression}`))).subarray(0, -20));
      const error = await appendOverlay(broken, [`${agent}:/a`], { output: join(dir, 'y') }).catch((e) => e);
      expect(error.code, compression).toBe('IRB_INITRAMFS_CORRUPT');
    }
  });

  it('cuts a truncated copy at the same place whether the output is a file or a stream', async () => {
    const base = await built('stream.zstd', 'zstd');
    const agent = join(dir, 'agent-stream');
    await writeFile(agent, 'agent\n');
    const file = join(dir, 'stream-out');
    await appendOverlay(base, [`${agent}:/a`], { output: file, sourceDateEpoch: 3 });
    const chunks: Uint8Array[] = [];
    for await (const c of appendOverlay(base, [`${agent}:/a`], { sourceDateEpoch: 3 })) chunks.push(c);
    expect(Buffer.concat(chunks).equals(await readFile(file))).toBe(true);
    await truncate(base, 0);
    const error = await appendOverlay(base, [`${agent}:/a`], { output: file }).catch((e) => e);
    expect(error.code).toBe('IRB_INITRAMFS_CORRUPT');
  });
});
