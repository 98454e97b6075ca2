import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { CpioEntry } from '@irb/cpio';
import { expect } from 'vitest';

/*
 * Comparison of what `entries()` yields with a directory tree unpacked by another tool (umoci):
 * one record per path — type, mode, owner, mtime, link target, content hash, device numbers and
 * hard-link group (every name of an inode shares its smallest name).
 */

/** One comparable record per path. */
export interface Seen {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime?: number;
  target?: string;
  hash?: string;
  rdev?: string;
  /** Hard-link group: all names of one inode share the smallest name. */
  group?: string;
}

function latin1(bytes: Uint8Array | string): string {
  return typeof bytes === 'string'
    ? Buffer.from(bytes).toString('latin1')
    : Buffer.from(bytes).toString('latin1');
}

/** Our side: the records of everything `entries()` yields, bodies hashed as they stream. */
export async function fromEntries(entries: AsyncIterable<CpioEntry>): Promise<Map<string, Seen>> {
  const map = new Map<string, Seen>();
  for await (const entry of entries) {
    const path = latin1(entry.path);
    if (path === '.') continue;
    const base = { mode: entry.mode, uid: entry.uid ?? 0, gid: entry.gid ?? 0, mtime: entry.mtime ?? 0 };
    switch (entry.type) {
      case 'file': {
        const hash = createHash('sha256');
        const body = entry.body;
        if (body instanceof Uint8Array) hash.update(body);
        else if (body)
          for await (const chunk of typeof body === 'function' ? body() : body) hash.update(chunk);
        const names = [path, ...(entry.links ?? []).map(latin1)];
        const group = [...names].sort()[0] as string;
        const digest = hash.digest('hex');
        for (const name of names) {
          map.set(name, { type: 'file', ...base, hash: digest, ...(names.length > 1 ? { group } : {}) });
        }
        break;
      }
      case 'symlink':
        map.set(path, {
          type: 'symlink',
          uid: base.uid,
          gid: base.gid,
          mode: 0,
          mtime: base.mtime,
          target: latin1(entry.target),
        });
        break;
      case 'char':
      case 'block':
        map.set(path, { type: entry.type, ...base, rdev: `${entry.rdevMajor}:${entry.rdevMinor}` });
        break;
      default:
        map.set(path, { type: entry.type, ...base });
    }
  }
  return map;
}

export function fromDisk(root: string): Map<string, Seen> {
  const map = new Map<string, Seen>();
  const inodes = new Map<bigint, string[]>();
  const visit = (dir: Buffer, rel: string): void => {
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      const full = Buffer.concat([dir, Buffer.from('/'), name]);
      const path = rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`;
      const stat = lstatSync(full, { bigint: true });
      const base = {
        mode: Number(stat.mode & 0o7777n),
        uid: Number(stat.uid),
        gid: Number(stat.gid),
        mtime: Number(stat.mtimeMs / 1000n),
      };
      if (stat.isDirectory()) {
        map.set(path, { type: 'directory', ...base });
        visit(full, path);
      } else if (stat.isFile()) {
        const hash = createHash('sha256').update(readFileSync(full)).digest('hex');
        map.set(path, { type: 'file', ...base, hash });
        const list = inodes.get(stat.ino) ?? [];
        list.push(path);
        inodes.set(stat.ino, list);
      } else if (stat.isSymbolicLink()) {
        map.set(path, {
          type: 'symlink',
          uid: base.uid,
          gid: base.gid,
          mode: 0,
          mtime: base.mtime,
          target: readlinkSync(full, { encoding: 'buffer' }).toString('latin1'),
        });
      } else if (stat.isCharacterDevice() || stat.isBlockDevice()) {
        const rdev = stat.rdev;
        const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
        const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
        map.set(path, {
          type: stat.isCharacterDevice() ? 'char' : 'block',
          ...base,
          rdev: `${major}:${minor}`,
        });
      } else if (stat.isFIFO()) {
        map.set(path, { type: 'fifo', ...base });
      }
    }
  };
  visit(Buffer.from(root), '');
  for (const names of inodes.values()) {
    if (names.length < 2) continue;
    const group = [...names].sort()[0] as string;
    for (const name of names) (map.get(name) as Seen).group = group;
  }
  return map;
}

/**
 * Asserts both trees hold the same paths with the same records. umoci restores a directory's
 * mtime only for the direct parent of each tar entry; a directory it emptied while walking a
 * whiteout keeps the time of the unpack (`>= started`) — an artifact of extracting to disk, not
 * layer content — so those directory mtimes are left out.
 */
export function compareTrees(ours: Map<string, Seen>, theirs: Map<string, Seen>, started: number): void {
  expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
  for (const [path, seen] of ours) {
    const other = { ...theirs.get(path) } as Seen;
    const mine = { ...seen };
    if (other.type === 'directory' && (other.mtime ?? 0) >= started) {
      delete other.mtime;
      delete (mine as Partial<Seen>).mtime;
    }
    expect({ path, ...mine }).toEqual({ path, ...other });
  }
}
