/**
 * Real readers of what we write: GNU cpio and bsdtar list and extract our archives (as root,
 * so owners, setuid bits and device nodes survive), and we read archives GNU cpio made.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CpioEntry, packCpio, readCpio } from '../src/index.ts';
import { concatStream, pseudoRandomBytes, readBack } from '../src/test-helpers.ts';

const isRoot = process.getuid?.() === 0;
const enc = new TextEncoder();
const LARGE_CHUNKS = 256; // 256 × 64 KiB = 16 MiB
const LATIN1_NAME = new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]); // "café.txt" in Latin-1

async function* largeBody(): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < LARGE_CHUNKS; i++) yield pseudoRandomBytes(65536, i + 1);
}

async function largeDigest(): Promise<string> {
  const h = createHash('sha256');
  for await (const c of largeBody()) h.update(c);
  return h.digest('hex');
}

/** Fresh entries each call: streamed bodies can be read once. */
function fixture(): CpioEntry[] {
  return [
    { type: 'directory', path: '.', mode: 0o755 },
    { type: 'directory', path: 'bin', mode: 0o755, mtime: 1_500_000_000 },
    {
      type: 'file',
      path: 'bin/busybox',
      mode: 0o755,
      size: 4,
      body: enc.encode('BBX\n'),
      mtime: 1_600_000_001,
    },
    { type: 'symlink', path: 'bin/sh', mode: 0o777, target: 'busybox' },
    { type: 'file', path: 'bin/su', mode: 0o4755, uid: 0, gid: 0, size: 3, body: enc.encode('su\n') },
    { type: 'file', path: 'bin/sg', mode: 0o2711, uid: 0, gid: 42, size: 3, body: enc.encode('sg\n') },
    { type: 'directory', path: 'tmp', mode: 0o1777 },
    { type: 'directory', path: 'home', mode: 0o755 },
    { type: 'directory', path: 'home/u', mode: 0o700, uid: 1000, gid: 1000 },
    {
      type: 'file',
      path: 'home/u/.profile',
      mode: 0o640,
      uid: 1000,
      gid: 100,
      size: 6,
      body: enc.encode('PS1=$\n'),
    },
    { type: 'file', path: 'home/u/huge-ids', mode: 0o600, uid: 4_294_967_294, gid: 4_000_000_000, size: 0 },
    { type: 'file', path: 'empty', mode: 0o644, size: 0 },
    { type: 'file', path: 'large.bin', mode: 0o644, size: LARGE_CHUNKS * 65536, body: largeBody },
    { type: 'symlink', path: 'abs', mode: 0o777, target: '/etc/../etc/passwd' },
    { type: 'directory', path: 'dev', mode: 0o755 },
    { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    { type: 'char', path: 'dev/null', mode: 0o666, rdevMajor: 1, rdevMinor: 3 },
    { type: 'block', path: 'dev/sda', mode: 0o660, gid: 6, rdevMajor: 8, rdevMinor: 0 },
    { type: 'block', path: 'dev/wide', mode: 0o600, rdevMajor: 259, rdevMinor: 0x12345 },
    { type: 'directory', path: 'run', mode: 0o755 },
    { type: 'fifo', path: 'run/fifo', mode: 0o620 },
    { type: 'directory', path: 'links', mode: 0o755 },
    { type: 'directory', path: 'links2', mode: 0o755 },
    {
      type: 'file',
      path: 'links/a',
      mode: 0o640,
      gid: 7,
      size: 12,
      body: enc.encode('shared data\n'),
      links: ['links/b', 'links2/c'],
    },
    { type: 'file', path: LATIN1_NAME, mode: 0o644, size: 7, body: enc.encode('latin1\n') },
  ];
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string; stdin?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString('latin1'),
        stderr: Buffer.concat(err).toString('latin1'),
      }),
    );
    if (opts.stdin) createReadStream(opts.stdin).pipe(child.stdin);
    else child.stdin.end();
  });
}

async function ok(cmd: string, args: string[], opts: { cwd?: string; stdin?: string } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

let work: string;
let ours: string;
let oursCrc: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'irb-cpio-interop-'));
  ours = join(work, 'ours.cpio');
  oursCrc = join(work, 'ours-crc.cpio');
  await writeFile(ours, packCpio(fixture()));
  await writeFile(oursCrc, packCpio(fixture(), { format: 'crc' }));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

function listed(lines: string[], perms: string, name: string, extra?: RegExp): void {
  const hit = lines.find((l) => l.startsWith(perms) && l.endsWith(` ${name}`) && (!extra || extra.test(l)));
  expect(hit, `no "${perms} … ${name}" ${extra ?? ''} in:\n${lines.join('\n')}`).toBeDefined();
}

async function statHex(path: string): Promise<string> {
  return (await ok('stat', ['-c', '%t %T', path])).trim();
}

/** Checks an extracted tree against {@link fixture}. */
async function verifyTree(root: string): Promise<void> {
  const st = async (p: string) => lstat(join(root, p));
  const perm = async (p: string) => (await st(p)).mode & 0o7777;
  expect(await perm('bin/su')).toBe(0o4755);
  expect(await perm('bin/sg')).toBe(0o2711);
  expect((await st('tmp')).isDirectory()).toBe(true);
  expect(await perm('tmp')).toBe(0o1777);
  expect(await perm('home/u')).toBe(0o700);
  expect(await readFile(join(root, 'bin/busybox'), 'utf8')).toBe('BBX\n');
  expect((await st('bin/busybox')).mtime.getTime() / 1000).toBe(1_600_000_001);
  expect(await readlink(join(root, 'bin/sh'))).toBe('busybox');
  expect(await readlink(join(root, 'abs'))).toBe('/etc/../etc/passwd');
  expect((await st('empty')).size).toBe(0);
  const large = createHash('sha256')
    .update(await readFile(join(root, 'large.bin')))
    .digest('hex');
  expect(large).toBe(await largeDigest());
  // Owners (numeric), kept because we extract as root.
  expect([(await st('bin/sg')).uid, (await st('bin/sg')).gid]).toEqual([0, 42]);
  expect([(await st('home/u')).uid, (await st('home/u')).gid]).toEqual([1000, 1000]);
  expect([(await st('home/u/.profile')).uid, (await st('home/u/.profile')).gid]).toEqual([1000, 100]);
  expect([(await st('home/u/huge-ids')).uid, (await st('home/u/huge-ids')).gid]).toEqual([
    4_294_967_294, 4_000_000_000,
  ]);
  // Devices: type, mode and major/minor as stat(1) prints them (hex).
  expect((await st('dev/console')).isCharacterDevice()).toBe(true);
  expect(await perm('dev/console')).toBe(0o600);
  expect(await statHex(join(root, 'dev/console'))).toBe('5 1');
  expect(await statHex(join(root, 'dev/null'))).toBe('1 3');
  expect((await st('dev/sda')).isBlockDevice()).toBe(true);
  expect((await st('dev/sda')).gid).toBe(6);
  expect(await statHex(join(root, 'dev/sda'))).toBe('8 0');
  expect(await statHex(join(root, 'dev/wide'))).toBe('103 12345');
  expect((await st('run/fifo')).isFIFO()).toBe(true);
  expect(await perm('run/fifo')).toBe(0o620);
  // Hard links: one inode, three names, the data once and correct.
  const [a, b, c] = await Promise.all(['links/a', 'links/b', 'links2/c'].map(st));
  expect(b!.ino).toBe(a!.ino);
  expect(c!.ino).toBe(a!.ino);
  expect(a!.nlink).toBe(3);
  expect([a!.mode & 0o7777, a!.gid]).toEqual([0o640, 7]);
  expect(await readFile(join(root, 'links2/c'), 'utf8')).toBe('shared data\n');
  // Non-UTF-8 name, byte for byte.
  const names = await readdir(Buffer.from(root), { encoding: 'buffer' });
  expect(names.some((n) => n.equals(LATIN1_NAME))).toBe(true);
  expect(await readFile(Buffer.concat([Buffer.from(`${root}/`), LATIN1_NAME]), 'utf8')).toBe('latin1\n');
}

describe('GNU cpio reads what we write', () => {
  it('lists it with exact modes, owners and device numbers', async () => {
    const lines = (await ok('cpio', ['-itv', '--numeric-uid-gid'], { stdin: ours })).trimEnd().split('\n');
    listed(lines, '-rwsr-xr-x', 'bin/su', / 0 +0 /);
    listed(lines, '-rwx--s--x', 'bin/sg', / 0 +42 /);
    listed(lines, 'drwxrwxrwt', 'tmp');
    listed(lines, 'lrwxrwxrwx', 'bin/sh -> busybox');
    listed(lines, 'crw-------', 'dev/console', /5, +1 /);
    listed(lines, 'brw-rw----', 'dev/sda', / 0 +6 +8, +0 /);
    listed(lines, 'prw--w----', 'run/fifo');
    listed(lines, '-rw-r-----', 'links2/c', / 3 0 +7 +12 /);
    listed(lines, '-rw-------', 'home/u/huge-ids', / 4294967294 +4000000000 /);
    expect(lines).toHaveLength(fixture().length + 2);
  });

  it.runIf(isRoot)('extracts it exactly (newc and crc)', async () => {
    for (const archive of [ours, oursCrc]) {
      const dir = await mkdtemp(join(work, 'gnu-x-'));
      const r = await run('cpio', ['-idm', '--no-absolute-filenames'], { cwd: dir, stdin: archive });
      expect(r.stderr).not.toMatch(/error|checksum|cannot|warning/i);
      expect(r.code).toBe(0);
      await verifyTree(dir);
    }
  });
});

describe('bsdtar reads what we write', () => {
  it('lists it with exact modes, owners and device numbers', async () => {
    const lines = (await ok('bsdtar', ['-tvf', ours, '--numeric-owner'])).trimEnd().split('\n');
    listed(lines, '-rwsr-xr-x', 'bin/su', / 0 +0 /);
    listed(lines, 'drwxrwxrwt', 'tmp');
    listed(lines, 'lrwxrwxrwx', 'bin/sh -> busybox');
    listed(lines, 'crw-------', 'dev/console', /5,1 /);
    listed(lines, 'brw-rw----', 'dev/sda', / 0 +6 +8,0 /);
    listed(lines, 'prw--w----', 'run/fifo');
    listed(lines, '-rw-r-----', 'links2/c link to links/a', / 3 0 +7 +12 /);
    listed(lines, '-rw-r-----', 'links/b link to links/a', / 3 0 +7 +0 /);
    listed(lines, '-rw-------', 'home/u/huge-ids', / 4294967294 +4000000000 /);
    const crcLines = (await ok('bsdtar', ['-tvf', oursCrc, '--numeric-owner'])).trimEnd().split('\n');
    expect(crcLines).toHaveLength(lines.length);
    listed(crcLines, '-rwsr-xr-x', 'bin/su', / 0 +0 /);
  });

  it.runIf(isRoot)('extracts it exactly', async () => {
    const dir = await mkdtemp(join(work, 'bsdtar-x-'));
    await ok('bsdtar', ['-xpf', ours, '--numeric-owner', '-C', dir]);
    await verifyTree(dir);
  });
});

describe.runIf(isRoot)('we read what GNU cpio writes', () => {
  let tree: string;
  beforeAll(async () => {
    tree = await mkdtemp(join(work, 'tree-'));
    await ok('cpio', ['-idm', '--no-absolute-filenames'], { cwd: tree, stdin: ours });
  });

  async function gnuArchive(format: 'newc' | 'crc'): Promise<string> {
    const file = join(work, `gnu-${format}.cpio`);
    await ok('sh', ['-c', `find . | LC_ALL=C sort | cpio -o --quiet -H ${format} > '${file}'`], {
      cwd: tree,
    });
    return file;
  }

  it.each(['newc', 'crc'] as const)('-H %s: every field matches the files on disk', async (format) => {
    const file = await gnuArchive(format);
    const byIno = new Map<number, string[]>();
    let count = 0;
    for await (const e of readCpio(createReadStream(file))) {
      count++;
      expect(e.format).toBe(format);
      const path = Buffer.concat([Buffer.from(`${tree}/`), e.nameBytes]);
      const s = await lstat(path, { bigint: true });
      expect(e.mode, e.name).toBe(Number(s.mode));
      expect([e.uid, e.gid], e.name).toEqual([Number(s.uid), Number(s.gid)]);
      expect(e.mtime, e.name).toBe(Number(s.mtimeNs / 1_000_000_000n));
      expect(e.nlink, e.name).toBe(Number(s.nlink));
      if (e.type === 'symlink')
        expect(e.targetBytes).toEqual(new Uint8Array(await readlink(path, { encoding: 'buffer' })));
      if (e.type === 'char' || e.type === 'block') {
        expect(`${e.rdevMajor.toString(16)} ${e.rdevMinor.toString(16)}`).toBe(
          await statHex(path.toString('latin1')),
        );
      }
      if (e.type === 'file') {
        const data = await e.bytes();
        if (e.fileSize > 0) expect(Buffer.from(data).equals(await readFile(path))).toBe(true);
        if (e.nlink > 1) byIno.set(e.ino, [...(byIno.get(e.ino) ?? []), e.name].sort());
      }
    }
    expect(count).toBe(fixture().length + 2);
    expect([...byIno.values()]).toEqual([['links/a', 'links/b', 'links2/c']]);
  });

  it('detects a corrupted byte through the 070702 checksum', async () => {
    const bytes = new Uint8Array(await readFile(await gnuArchive('crc')));
    const at = Buffer.from(bytes).indexOf('BBX\n');
    bytes[at] = 0x41;
    await expect(readBack(bytes)).rejects.toMatchObject({ code: 'IRB_CPIO_CHECKSUM_MISMATCH' });
  });

  it('reads a GNU archive and ours concatenated, as the kernel does', async () => {
    const gnu = await readFile(await gnuArchive('newc'));
    expect(gnu.length % 512).toBe(0); // GNU pads to its block size with NULs
    const got = await readBack(await concatStream([gnu, await readFile(ours)]));
    expect(got.filter((e) => e.member === 0)).toHaveLength(fixture().length + 2);
    expect(got.filter((e) => e.member === 1).map((e) => e.name)[1]).toBe('bin');
  });
});
