import { execFile } from 'node:child_process';
import {
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GNU_SPARSE, parseNumber, paxInteger, TarMembers, TYPEFLAG } from '../src/index.ts';
import { memoryInput } from './blocks.ts';

/*
 * Headers written by GNU tar (gnu, oldgnu, posix, ustar, v7) and bsdtar (pax, ustar), decoded
 * with this package alone (extension records folded in by a few lines here), must describe
 * exactly the files they were made from: name bytes, type, size, mode, owner, link target.
 * GNU's formats also carry a sparse file whose map needs extension blocks.
 */

const run = promisify(execFile);
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const CP866 = Buffer.from('8f90888285922d', 'hex');

interface Member {
  type: string;
  size: number;
  mode: number;
  uid: number;
  target?: string;
}

/** Walks a whole tar with @irb/tar's member iterator, PAX and GNU records folded in. */
async function members(tar: Uint8Array): Promise<{ files: Map<string, Member>; sparse: number[] }> {
  const out = new Map<string, Member>();
  const sparse: number[] = [];
  const iterator = new TarMembers(memoryInput(tar));
  for (let member = await iterator.next(); member; member = await iterator.next()) {
    const { header, name: path, type, pax } = member;
    const uidRecord = pax.find((r) => r.key === 'uid');
    const name = Buffer.from(path).toString('latin1').replace(/^\.\//, '').replace(/\/$/, '');
    // GNU's old sparse format stores the data regions; the file is as long as its real size.
    const size =
      header.typeflag === TYPEFLAG.gnuSparse ? parseNumber(member.block, GNU_SPARSE.realSize) : header.size;
    if (name !== '.' && name !== '') {
      out.set(hex(Buffer.from(name, 'latin1')), {
        type: type as string,
        size: type === 'file' ? (size as number) : 0,
        mode: header.mode & 0o7777,
        uid: uidRecord ? paxInteger(uidRecord.value, 'uid') : header.uid,
        ...(member.linkname.byteLength > 0 ? { target: hex(member.linkname) } : {}),
      });
      if (header.typeflag === TYPEFLAG.gnuSparse) sparse.push(member.sparseExtensions.length);
    }
  }
  return { files: out, sparse };
}

/** The same view of the files on disk (names as bytes). */
async function onDisk(
  root: Buffer,
  rel?: Buffer,
  out = new Map<string, Member>(),
): Promise<Map<string, Member>> {
  const here = rel ? Buffer.concat([root, Buffer.from('/'), rel]) : root;
  for (const name of await readdir(here, { encoding: 'buffer' })) {
    const child = rel ? Buffer.concat([rel, Buffer.from('/'), name]) : name;
    const full = Buffer.concat([root, Buffer.from('/'), child]);
    const stat = await lstat(full);
    const base = { mode: stat.mode & 0o7777, uid: 4_000_000 };
    if (stat.isDirectory()) {
      out.set(hex(child), { type: 'directory', size: 0, ...base });
      await onDisk(root, child, out);
    } else if (stat.isSymbolicLink()) {
      out.set(hex(child), {
        type: 'symlink',
        size: 0,
        ...base,
        target: hex(await readlink(full, { encoding: 'buffer' })),
      });
    } else out.set(hex(child), { type: 'file', size: stat.size, ...base });
  }
  return out;
}

let dir: string;
let src: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-tar-real-'));
  src = join(dir, 'src');
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'plain'), 'plain\n');
  await writeFile(Buffer.concat([Buffer.from(`${src}/sub/`), CP866]), Buffer.alloc(1500, 1));
  await symlink(CP866, join(src, 'link'));
  await writeFile(join(src, 'sub', 'x'.repeat(99)), '99');
  // Longer than the 100-byte linkname field: a GNU long link (K) or a PAX linkpath.
  await symlink(`${'t'.repeat(150)}/target`, join(src, 'long-link'));
  // Nine data regions between holes: more than the header's four map pairs.
  const holes = await open(join(src, 'holes'), 'w');
  for (let i = 0; i < 9; i++) await holes.write(Buffer.alloc(4096, i + 1), 0, 4096, i * 65536);
  await holes.truncate(9 * 65536);
  await holes.close();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const writers: Array<[string, string[]]> = [
  ['tar', ['--format=gnu']],
  ['tar', ['--format=oldgnu']],
  ['tar', ['--format=posix']],
  ['tar', ['--format=ustar']],
  ['tar', ['--format=v7']],
  ['bsdtar', ['--format=pax']],
  ['bsdtar', ['--format=ustar']],
];

describe('headers of real archives', () => {
  test.each(writers)('%s %s', async (tool, flags) => {
    const file = join(dir, `${tool}${flags.join('')}.tar`);
    // 4 000 000 exceeds ustar's 7 octal digits: gnu writes base-256, posix a PAX uid record.
    const big =
      flags[0] === '--format=gnu' || flags[0] === '--format=oldgnu' || flags[0] === '--format=posix';
    const owner = tool === 'tar' ? ['--numeric-owner', `--owner=${big ? 4_000_000 : 0}`] : ['--uid=0'];
    // v7 names have 100 bytes and no prefix: `./sub/` + 99 bytes does not fit.
    const v7 = flags[0] === '--format=v7';
    const ustar = v7 || flags[0] === '--format=ustar';
    const gnu = big && flags[0] !== '--format=posix';
    const exclude = [
      ...(v7 ? ['--exclude=./sub/xxx*'] : []),
      // Only the GNU formats can hold the long target; sparse files are only GNU's old format here.
      ...(ustar ? ['--exclude=./long-link'] : []),
      ...(gnu ? ['--sparse'] : ['--exclude=./holes']),
    ];
    await run(tool, ['-c', '-f', file, ...flags, ...owner, ...exclude, '-C', src, '.'], {
      env: { ...process.env, LC_ALL: 'C' },
    });
    const want = await onDisk(Buffer.from(src));
    for (const member of want.values()) member.uid = big ? 4_000_000 : 0;
    if (v7) want.delete(Buffer.from(`sub/${'x'.repeat(99)}`).toString('hex'));
    if (ustar) want.delete(Buffer.from('long-link').toString('hex'));
    if (!gnu) want.delete(Buffer.from('holes').toString('hex'));
    const { files, sparse } = await members(new Uint8Array(await readFile(file)));
    expect(files).toEqual(want);
    // GNU tar stores the nine regions as a sparse member: four pairs in the header, the rest in one extension block.
    expect(sparse).toEqual(gnu ? [1] : []);
  });
});
