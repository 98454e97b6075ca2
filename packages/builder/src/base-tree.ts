import type { CpioEntry, CpioPath } from '@irb/cpio';
import type { Rootfs, RootfsNodeType } from '@irb/layers';

/*
 * The overlay member is planned against the base member without holding the base's files: a
 * tree of names, kinds, link targets and directory modes (from the image's Rootfs on a build
 * that packs the base, from a stored snapshot when the base comes from the output cache), plus
 * the bytes of /etc/passwd and /etc/group, the only files init planning reads.
 *
 * Keys are archive paths as binary strings (one code unit per byte, Buffer's `latin1`, which is
 * ISO-8859-1 and round-trips every byte — unlike TextDecoder('latin1')), no leading `/`; the
 * root is ''.
 */

/** One node of the base member, as overlay planning needs it. */
export interface BaseNode {
  type: RootfsNodeType;
  /** Permission bits (what a directory entry in the overlay would rewrite). */
  mode: number;
  /** Symlink target (a key-encoded string: bytes as a binary string). */
  target?: string;
}

/** The base member's tree, looked up by exact key (parents already resolved; the last component not followed). */
export interface BaseTree {
  node(key: string): BaseNode | undefined;
  /** The bytes of a regular file at a resolved key; only `etc/passwd` and `etc/group` are asked for. */
  readFile(key: string, signal?: AbortSignal): Promise<Uint8Array | undefined>;
  /** Paths `exclude` (and slimming) removed from the image. */
  excluded: number;
}

/** Text or bytes path → key. */
export function keyOfPath(path: CpioPath): string {
  const bytes = typeof path === 'string' ? Buffer.from(path, 'utf8') : Buffer.from(path);
  const key = bytes
    .toString('latin1')
    .replace(/^(\.?\/)+/, '')
    .replace(/\/+$/, '');
  return key === '.' ? '' : key;
}

/** Key → the bytes of the name. */
export function bytesOfKey(key: string): Uint8Array {
  return new Uint8Array(Buffer.from(key, 'latin1'));
}

/** Key → a CpioPath: text when ASCII (the common case), else the exact bytes. */
export function cpioPathOf(key: string): CpioPath {
  return /^[\x00-\x7f]*$/.test(key) ? key : bytesOfKey(key);
}

/** Key → absolute path text for messages. */
export function displayOf(key: string): string {
  return `/${Buffer.from(key, 'latin1').toString('utf8')}`;
}

/** The base tree of a Rootfs that is about to be packed, with the entries the base member adds (/dev, /dev/console). */
export function rootfsBaseTree(rootfs: Rootfs, extras: readonly CpioEntry[]): BaseTree {
  const added = new Map<string, BaseNode>();
  for (const e of extras) added.set(keyOfPath(e.path), { type: e.type as RootfsNodeType, mode: e.mode });
  return {
    node(key) {
      const info = rootfs.lookup(bytesOfKey(key));
      if (!info) return added.get(key);
      const node: BaseNode = { type: info.type, mode: info.mode };
      if (info.target !== undefined) node.target = keyOfPath(info.target);
      return node;
    },
    readFile(key, signal) {
      return rootfs.readFile(bytesOfKey(key), signal ? { signal } : {});
    },
    excluded: rootfs.stats.excluded,
  };
}

/** Where a path leads after symlinks, and what is there. */
export interface Resolved {
  key: string;
  node: BaseNode | undefined;
}

const ROOT: BaseNode = { type: 'directory', mode: 0o755 };

/**
 * Resolves `path` through the symlinks of a tree the way the kernel's path walk would: parents
 * always, the last component only with `followLast`; absolute targets restart at the root, `..`
 * stops at the root. Components that do not exist are kept (that is where a new entry would go).
 * After 40 links it stops following (ELOOP in the guest) and returns the path as reached.
 */
export function resolvePath(
  lookup: (key: string) => BaseNode | undefined,
  path: string,
  followLast: boolean,
): Resolved {
  let todo = path.split('/');
  const cur: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const c = todo.shift() as string;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      cur.pop();
      continue;
    }
    const key = [...cur, c].join('/');
    const node = lookup(key);
    const last = todo.every((t) => t === '' || t === '.');
    if (node?.type === 'symlink' && node.target !== undefined && (!last || followLast) && hops < 40) {
      hops++;
      if (node.target.startsWith('/')) cur.length = 0;
      todo = [...node.target.split('/'), ...todo];
      continue;
    }
    cur.push(c);
  }
  const key = cur.join('/');
  return { key, node: key === '' ? ROOT : lookup(key) };
}
