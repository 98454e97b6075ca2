import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  BLOCK_SIZE,
  checksumOk,
  cString,
  decodeHeader,
  entryTypeOf,
  FIELDS,
  isZeroBlock,
  paddingOf,
  parseNumber,
  parsePax,
  paxInteger,
  TYPEFLAG,
} from '../src/index.ts';

/*
 * Headers written by GNU tar (gnu, oldgnu, posix, ustar, v7) and bsdtar (pax, ustar), decoded
 * with this package alone (extension records folded in by a few lines here), must describe
 * exactly the files they were made from: name bytes, type, size, mode, owner, link target.
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

/** Walks a whole tar with @irb/tar: PAX and GNU long records applied to the next member. */
function members(tar: Uint8Array): Map<string, Member> {
  const out = new Map<string, Member>();
  let at = 0;
  let path: Uint8Array | undefined;
  let linkpath: Uint8Array | undefined;
  let uid: number | undefined;
  while (at + BLOCK_SIZE <= tar.byteLength) {
    const block = tar.subarray(at, at + BLOCK_SIZE);
    if (isZeroBlock(block)) break;
    expect(checksumOk(block)).toBe(true);
    const typeflag = String.fromCharCode(block[FIELDS.typeflag.offset] as number);
    const size = parseNumber(block, FIELDS.size) as number;
    const data = tar.subarray(at + BLOCK_SIZE, at + BLOCK_SIZE + size);
    at += BLOCK_SIZE + size + paddingOf(size);
    if (typeflag === TYPEFLAG.pax) {
      for (const { key, value } of parsePax(data)) {
        if (key === 'path') path = value;
        if (key === 'linkpath') linkpath = value;
        if (key === 'uid') uid = paxInteger(value, key);
      }
      continue;
    }
    if (typeflag === TYPEFLAG.gnuLongName || typeflag === TYPEFLAG.gnuLongLink) {
      const value = cString(data, { offset: 0, length: data.byteLength });
      if (typeflag === TYPEFLAG.gnuLongName) path = value;
      else linkpath = value;
      continue;
    }
    if (typeflag === TYPEFLAG.paxGlobal) continue;
    const header = decodeHeader(block);
    const name = Buffer.from(path ?? header.name)
      .toString('latin1')
      .replace(/^\.\//, '')
      .replace(/\/$/, '');
    const type = entryTypeOf(header.typeflag, path ?? header.name) as string;
    const target = linkpath ?? header.linkname;
    if (name !== '.' && name !== '') {
      out.set(hex(Buffer.from(name, 'latin1')), {
        type,
        size: type === 'file' ? header.size : 0,
        mode: header.mode & 0o7777,
        uid: uid ?? header.uid,
        ...(target.byteLength > 0 ? { target: hex(target) } : {}),
      });
    }
    path = linkpath = uid = undefined;
  }
  return out;
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
    const exclude = v7 ? ['--exclude=./sub/xxx*'] : [];
    await run(tool, ['-c', '-f', file, ...flags, ...owner, ...exclude, '-C', src, '.'], {
      env: { ...process.env, LC_ALL: 'C' },
    });
    const want = await onDisk(Buffer.from(src));
    for (const member of want.values()) member.uid = big ? 4_000_000 : 0;
    if (v7) want.delete(Buffer.from(`sub/${'x'.repeat(99)}`).toString('hex'));
    expect(members(new Uint8Array(await readFile(file)))).toEqual(want);
  });
});
