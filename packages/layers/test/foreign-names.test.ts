import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  link,
  lstat,
  mkdir,
  mkdtemp,
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
import { packCpio, readCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { indexLayers } from '../src/index.ts';
import { layerOf } from './helpers.ts';

/*
 * Tars written by GNU tar (gnu, posix, ustar formats) and bsdtar from files whose names on disk
 * are KOI8-R, CP866, EUC-JP and UTF-8 CJK bytes. What irb puts into the cpio must be, entry by
 * entry, what `bsdtar -x` extracts from the same tar — and what was on disk. CP866 capitals and
 * UTF-8 CJK put bytes into 0x80–0x9F, the range a windows-1252 decode rewrites.
 */

const run = promisify(execFile);
const b = (hex: string) => Buffer.from(hex, 'hex');
/** "привет" in KOI8-R. */
const KOI8 = b('d0d2c9d7c5d4');
/** "ПРИВЕТ-мир" in CP866 (capitals are 0x80–0x9F). */
const CP866 = b('8f90888285922daca8e0');
/** "日本語ｱ" in EUC-JP (ｱ is SS2 0x8e + 0xb1). */
const EUCJP = b('c6fccbdcb8ec8eb1');
/** "日本-漢字" in UTF-8 (0x97, 0x9c, 0xbc … continuation bytes). */
const CJK = b('e697a5e69cac2de6bca2e5ad97');
const slash = Buffer.from('/');
const path = (...parts: Buffer[]) => Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [slash, p])));

let dir: string;
let src: string;

/** Builds the source tree with raw byte names (Buffer paths reach the kernel unchanged). */
async function makeTree(root: string): Promise<void> {
  const at = (rel: Buffer) => path(Buffer.from(root), rel);
  await writeFile(at(KOI8), 'koi8-r\n');
  await mkdir(at(CP866));
  await writeFile(at(path(CP866, EUCJP)), 'euc-jp in cp866\n');
  await writeFile(at(CJK), 'utf-8 cjk\n');
  await symlink(path(CP866, EUCJP), at(Buffer.concat([Buffer.from('link-'), KOI8])));
  await symlink(Buffer.concat([CJK, CP866]), at(Buffer.concat([Buffer.from('dangling-'), CP866])));
  await link(at(path(CP866, EUCJP)), at(Buffer.concat([EUCJP, Buffer.from('-hard')])));
  // Over 100 bytes, so ustar splits it into prefix + name and gnu/posix write long-name records.
  const deep = path(Buffer.from('x'.repeat(90)), Buffer.concat(Array(6).fill(CP866)));
  await mkdir(at(deep), { recursive: true });
  await writeFile(at(path(deep, EUCJP)), 'deep\n');
  await writeFile(at(path(deep, CJK)), 'deep cjk\n');
}

interface Seen {
  type: string;
  target?: string;
  sha?: string;
  /** The first name (hex) of the inode's group, for hard links. */
  group?: string;
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Every name below `root` (hex of its bytes relative to root) with type, target, content and link group. */
async function walkDisk(root: Buffer): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const inodes = new Map<number, string>();
  const visit = async (rel: Buffer | undefined): Promise<void> => {
    const here = rel ? path(root, rel) : root;
    const names = (await readdir(here, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const name of names) {
      const child = rel ? path(rel, name) : name;
      const full = path(root, child);
      const stat = await lstat(full);
      const key = child.toString('hex');
      if (stat.isDirectory()) {
        out.set(key, { type: 'directory' });
        await visit(child);
      } else if (stat.isSymbolicLink()) {
        out.set(key, {
          type: 'symlink',
          target: (await readlink(full, { encoding: 'buffer' })).toString('hex'),
        });
      } else {
        if (!inodes.has(stat.ino)) inodes.set(stat.ino, key);
        out.set(key, { type: 'file', sha: sha(await readFile(full)), group: inodes.get(stat.ino) as string });
      }
    }
  };
  await visit(undefined);
  return out;
}

/** The same view of the cpio irb writes for the tar. */
async function walkCpio(tar: Uint8Array): Promise<Map<string, Seen>> {
  const rootfs = await indexLayers([layerOf(tar, undefined, 4096)]);
  const out = new Map<string, Seen>();
  const inodes = new Map<number, string>();
  // newc stores a hard-linked file's data once, with one of its names: the others read empty.
  const bodies = new Map<number, string>();
  for await (const entry of readCpio(packCpio(rootfs.entries()))) {
    const key = Buffer.from(entry.nameBytes).toString('hex');
    if (entry.name === '.') continue;
    if (entry.type === 'directory') out.set(key, { type: 'directory' });
    else if (entry.type === 'symlink') {
      out.set(key, { type: 'symlink', target: Buffer.from(entry.targetBytes ?? []).toString('hex') });
    } else {
      const body = await entry.bytes();
      if (!inodes.has(entry.ino)) inodes.set(entry.ino, key);
      if (body.byteLength > 0 || !bodies.has(entry.ino)) bodies.set(entry.ino, sha(body));
      out.set(key, { type: entry.type, group: inodes.get(entry.ino) as string });
    }
  }
  for (const value of out.values()) {
    const ino = [...inodes].find(([, first]) => first === value.group)?.[0];
    if (ino !== undefined) value.sha = bodies.get(ino) as string;
  }
  return out;
}

/**
 * `bsdtar -x`. GNU tar's posix format stores non-UTF-8 names raw in PAX `path` records, which
 * POSIX wants in UTF-8; bsdtar then extracts the raw bytes but warns and exits 1. That warning,
 * and only that, is accepted.
 */
async function extract(tar: string, out: string, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    await run('bsdtar', ['-x', '-f', tar, '-C', out], { env });
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '');
    const lines = stderr.split('\n').filter((line) => line !== '');
    const tolerated =
      /^bsdtar: (Pathname|Linkname) can't be converted from UTF-8 to current locale\.$|^bsdtar: Error exit delayed from previous errors\.$/;
    if (lines.length === 0 || !lines.every((line) => tolerated.test(line))) throw error;
  }
}

/** Group keys name the first name of an inode in each walk's own order: compare groups as sets of names. */
function normalized(seen: Map<string, Seen>): Record<string, Seen & { names?: string[] }> {
  const groups = new Map<string, string[]>();
  for (const [key, value] of seen)
    if (value.group) groups.set(value.group, [...(groups.get(value.group) ?? []), key]);
  const out: Record<string, Seen & { names?: string[] }> = {};
  for (const [key, { group, ...rest }] of [...seen].sort(([a], [b]) => (a < b ? -1 : 1))) {
    out[key] = group ? { ...rest, names: (groups.get(group) as string[]).sort() } : rest;
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-foreign-names-'));
  src = join(dir, 'src');
  await mkdir(src);
  await makeTree(src);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const writers: Array<[string, string, string[]]> = [
  ['GNU tar --format=gnu', 'tar', ['--format=gnu']],
  ['GNU tar --format=posix', 'tar', ['--format=posix']],
  ['GNU tar --format=ustar', 'tar', ['--format=ustar']],
  ['bsdtar --format=pax', 'bsdtar', ['--format=pax']],
  ['bsdtar --format=ustar', 'bsdtar', ['--format=ustar']],
];

describe('names in legacy encodings, written by real archivers', () => {
  test.each(writers)(
    '%s: the cpio holds what bsdtar -x extracts and what was on disk',
    async (_, tool, flags) => {
      const tag = `${tool}${flags.join('').replace(/\W/g, '')}`;
      const tar = join(dir, `${tag}.tar`);
      // LC_ALL=C: the archivers store the name bytes as they are, with no charset conversion.
      const env = { ...process.env, LC_ALL: 'C' };
      await run(tool, ['-c', '-f', tar, ...flags, '-C', src, '.'], { env });
      const out = join(dir, `${tag}-x`);
      await mkdir(out);
      await extract(tar, out, env);

      const ours = normalized(await walkCpio(new Uint8Array(await readFile(tar))));
      const extracted = normalized(await walkDisk(Buffer.from(out)));
      expect(ours).toEqual(extracted);
      expect(ours).toEqual(normalized(await walkDisk(Buffer.from(src))));
      // The fixture really holds the bytes a windows-1252 decode would rewrite.
      expect(Object.keys(ours).some((k) => /^(..)*(8f|90|97|9c)/.test(k))).toBe(true);
    },
  );
});
