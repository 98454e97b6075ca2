import type { CpioEntry, CpioPath } from '@irb/cpio';
import type { Rootfs, RootfsNodeType } from '@irb/layers';
import type { ContainerConfig } from '@irb/registry';

/*
 * The overlay member is planned against the base member without holding the base's files: a
 * tree of names, kinds, link targets and directory modes (from the image's Rootfs on a build
 * that packs the base, from a stored snapshot when the base comes from the output cache), plus
 * the bytes of /etc/passwd and /etc/group, the only files init planning reads, and the first
 * bytes of executable files (ELF header or `#!` line: what the program's architecture check reads).
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
  /** A regular file with more than one name (hard links): the kernel would rewrite it in place. */
  linked?: boolean;
}

/** The base member's tree, looked up by exact key (parents already resolved; the last component not followed). */
export interface BaseTree {
  node(key: string): BaseNode | undefined;
  /** The bytes of a regular file at a resolved key; only `etc/passwd` and `etc/group` are asked for. */
  readFile(key: string, signal?: AbortSignal): Promise<Uint8Array | undefined>;
  /**
   * Up to `length` first bytes of a regular file at a resolved key, as far as they are known: a
   * stored snapshot keeps only {@link fileSignature}s of executable files (`undefined` for
   * others: cannot tell).
   */
  readHead(key: string, length: number, signal?: AbortSignal): Promise<Uint8Array | undefined>;
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

/**
 * A symlink target → the string {@link resolvePath} follows: its bytes as a binary string, kept as
 * they are. Unlike {@link keyOfPath} it keeps a leading `/`, which makes the link absolute
 * (restart at the root); stripped, `/bin/sh → /bin/busybox` would lead to `bin/bin/busybox`.
 */
export function targetKeyOf(target: CpioPath): string {
  return (typeof target === 'string' ? Buffer.from(target, 'utf8') : Buffer.from(target)).toString('latin1');
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
      if (info.target !== undefined) node.target = targetKeyOf(info.target);
      if (info.type === 'file' && info.nlink > 1) node.linked = true;
      return node;
    },
    readFile(key, signal) {
      return rootfs.readFile(bytesOfKey(key), signal ? { signal } : {});
    },
    readHead(key, length, signal) {
      return rootfs.readHead(bytesOfKey(key), length, signal ? { signal } : {});
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

/** Facts about a cached base member that a build on top of it reports or plans with. */
export interface BaseSnapshotHeader {
  /** Counts of the base member, for the summary. */
  stats: { records: number; unpackedBytes: number; cpioBytes: number; compressedBytes: number };
  configDigest: string;
  platform: string;
  excluded: number;
  /** Paths `slim`, `keepOnly` and `keep` filtered out. */
  filtered: number;
  lostXattrs: Array<{ path: string; names: string[] }>;
  /** The image config's `config` and `architecture`: what init planning reads. */
  config: ContainerConfig | undefined;
  architecture: string;
  /** Files init planning reads (`etc/passwd`, `etc/group`), by resolved key, base64. */
  files: Record<string, string>;
  /** {@link fileSignature}s of the executable files, by key, base64 (absent in older snapshots). */
  heads?: Record<string, string>;
}

const TYPE_CHAR: Record<string, string> = {
  file: 'f',
  directory: 'd',
  symlink: 'l',
  char: 'c',
  block: 'b',
  fifo: 'p',
  socket: 'p',
};
const CHAR_TYPE: Record<string, RootfsNodeType> = {
  f: 'file',
  d: 'directory',
  l: 'symlink',
  c: 'char',
  b: 'block',
  p: 'fifo',
};

/** Chunk size of a snapshot being collected: entries are appended, never a growing buffer copied. */
const CHUNK = 256 * 1024;
const utf8 = new TextEncoder();

/**
 * The bytes of a snapshot's records as they are collected, in chunks: about 30 bytes per entry
 * (a string per entry, as before, took about 100 bytes of heap, then three copies to encode).
 */
class RecordBytes {
  readonly #done: Uint8Array[] = [];
  #chunk = new Uint8Array(CHUNK);
  #at = 0;

  #room(n: number): void {
    if (this.#at + n <= this.#chunk.byteLength) return;
    this.#done.push(this.#chunk.subarray(0, this.#at));
    this.#chunk = new Uint8Array(Math.max(CHUNK, n));
    this.#at = 0;
  }

  /** `TYPE MODE \0` (type char, octal mode). */
  head(type: string, mode: number): void {
    const text = `${type}${mode.toString(8)}`;
    this.#room(text.length + 1);
    for (let i = 0; i < text.length; i++) this.#chunk[this.#at++] = text.charCodeAt(i);
    this.#chunk[this.#at++] = 0;
  }

  /** The bytes of `keyOfPath(path)` and a NUL. */
  key(path: CpioPath): void {
    const max = (typeof path === 'string' ? path.length * 3 : path.byteLength) + 1;
    this.#room(max);
    const chunk = this.#chunk;
    const start = this.#at;
    let written: number;
    if (typeof path === 'string') written = utf8.encodeInto(path, chunk.subarray(start)).written;
    else {
      chunk.set(path, start);
      written = path.byteLength;
    }
    const end = start + written;
    let s = start;
    let e = end;
    // As keyOfPath: leading `./` and `/` runs, trailing `/`, and `.` alone are not part of a key.
    for (;;) {
      if (chunk[s] === SLASH && s < e) s++;
      else if (chunk[s] === DOT && chunk[s + 1] === SLASH && s + 1 < e) s += 2;
      else break;
    }
    while (e > s && chunk[e - 1] === SLASH) e--;
    if (e - s === 1 && chunk[s] === DOT) e = s;
    chunk.copyWithin(start, s, e);
    this.#at = start + (e - s);
    chunk[this.#at++] = 0;
  }

  /** The bytes of `path` exactly as given, and a NUL. */
  raw(path: CpioPath): void {
    const bytes = typeof path === 'string' ? utf8.encode(path) : path;
    this.#room(bytes.byteLength + 1);
    this.#chunk.set(bytes, this.#at);
    this.#at += bytes.byteLength;
    this.#chunk[this.#at++] = 0;
  }

  /** `text` (ASCII) and a NUL. */
  field(text: string): void {
    this.#room(text.length + 1);
    for (let i = 0; i < text.length; i++) this.#chunk[this.#at++] = text.charCodeAt(i);
    this.#chunk[this.#at++] = 0;
  }

  chunks(): Uint8Array[] {
    return [...this.#done, this.#chunk.subarray(0, this.#at)];
  }
}

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * One node as a record of the tree encoding: `TYPE MODE`, key, and a field that holds a
 * symlink's target or `L` for a file with several names (hard links); each ends with a NUL. Keys
 * and targets are binary strings, so any name round-trips.
 */
export function nodeRecord(
  key: string,
  node: { type: string; mode: number; target?: string; linked?: boolean },
): string {
  const field =
    node.type === 'symlink' ? (node.target ?? '') : node.type === 'file' && node.linked ? 'L' : '';
  return `${TYPE_CHAR[node.type] ?? 'p'}${node.mode.toString(8)}\0${key}\0${field}\0`;
}

/** Decodes {@link nodeRecord}s (a binary string); `undefined` when one is malformed. */
export function decodeNodeRecords(text: string): Map<string, BaseNode> | undefined {
  const fields = text.split('\0');
  const nodes = new Map<string, BaseNode>();
  for (let i = 0; i + 2 < fields.length; i += 3) {
    const head = fields[i] as string;
    const type = CHAR_TYPE[head[0] ?? ''];
    if (type === undefined) return undefined;
    const node: BaseNode = { type, mode: Number.parseInt(head.slice(1), 8) };
    if (type === 'symlink') node.target = fields[i + 2] as string;
    else if (type === 'file' && fields[i + 2] === 'L') node.linked = true;
    nodes.set(fields[i + 1] as string, node);
  }
  return nodes;
}

/** How many first bytes of an executable file {@link fileSignature} looks at. */
export const SIGNATURE_BYTES = 128;

/**
 * What tells how the kernel runs a file, from its first bytes: the ELF header (20 bytes:
 * class, byte order, machine), or a script's `#!` line (up to {@link SIGNATURE_BYTES}, without
 * the newline); `undefined` for anything else.
 */
export function fileSignature(head: Uint8Array): Uint8Array | undefined {
  if (head.length >= 20 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) {
    return head.subarray(0, 20);
  }
  if (head[0] !== 0x23 || head[1] !== 0x21) return undefined;
  const end = head.subarray(0, SIGNATURE_BYTES).indexOf(10);
  return head.subarray(0, end < 0 ? Math.min(head.length, SIGNATURE_BYTES) : end);
}

/**
 * Collects the base member's tree as its entries stream past (no second walk), and encodes it
 * with a header: one JSON line, then NUL-separated records `TYPE MODE`, key, target — names as
 * raw bytes, so any name round-trips. The bodies of the files init planning reads (`want`:
 * resolved keys of /etc/passwd and /etc/group) are kept as they stream through, so storing them
 * never reopens a layer.
 */
export function createTreeCollector(want: ReadonlySet<string> = new Set()): {
  tap(source: AsyncIterable<CpioEntry>): AsyncGenerator<CpioEntry>;
  encode(header: Omit<BaseSnapshotHeader, 'files' | 'heads'>): Uint8Array;
} {
  const records = new RecordBytes();
  const files: Record<string, string> = {};
  const heads: Record<string, string> = {};
  const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  /** The entry with its body passed through, its first `limit` bytes handed to `seen` at its end. */
  const watched = (
    entry: CpioEntry & { type: 'file' },
    limit: number,
    seen: (bytes: Uint8Array) => void,
  ): CpioEntry => {
    const body = entry.body;
    if (body === undefined || body instanceof Uint8Array) {
      seen((body ?? new Uint8Array(0)).subarray(0, limit));
      return entry;
    }
    async function* tee(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
      const chunks: Uint8Array[] = [];
      let kept = 0;
      for await (const chunk of source) {
        if (kept < limit) {
          chunks.push(chunk.slice(0, limit - kept));
          kept += Math.min(chunk.byteLength, limit - kept);
        }
        yield chunk;
      }
      seen(new Uint8Array(Buffer.concat(chunks)));
    }
    return { ...entry, body: typeof body === 'function' ? () => tee(body()) : tee(body) };
  };
  return {
    async *tap(source) {
      for await (const entry of source) {
        if (entry.type !== 'file') {
          records.head(TYPE_CHAR[entry.type] ?? 'p', entry.mode);
          records.key(entry.path);
          // The target as stored (an absolute one keeps its leading `/`): see targetKeyOf.
          if (entry.type === 'symlink') records.raw(entry.target);
          else records.field('');
          yield entry;
          continue;
        }
        // A file with several names is marked: see BaseNode.linked.
        const links = entry.links ?? [];
        const mark = links.length > 0 ? 'L' : '';
        records.head('f', entry.mode);
        records.key(entry.path);
        records.field(mark);
        for (const link of links) {
          records.head('f', entry.mode);
          records.key(link);
          records.field(mark);
        }
        const executable = (entry.mode & 0o111) !== 0;
        if (want.size === 0 && !executable) {
          yield entry;
          continue;
        }
        const names = [entry.path, ...links].map(keyOfPath);
        const wanted = names.filter((n) => want.has(n));
        if (wanted.length === 0 && !executable) {
          yield entry;
          continue;
        }
        yield watched(entry, wanted.length > 0 ? Number.POSITIVE_INFINITY : SIGNATURE_BYTES, (bytes) => {
          for (const name of wanted) files[name] = base64(bytes);
          const signature = executable ? fileSignature(bytes) : undefined;
          if (signature) for (const name of names) heads[name] = base64(signature);
        });
      }
    },
    encode(header) {
      const head = Buffer.from(`${JSON.stringify({ v: 1, ...header, files, heads })}\n`, 'utf8');
      return new Uint8Array(Buffer.concat([head, ...records.chunks()]));
    },
  };
}

/**
 * The header of what {@link createTreeCollector} encoded, without decoding the tree (a build
 * whose overlay member is cached too never needs it); `undefined` when malformed (a cache miss).
 */
export function decodeBaseHeader(bytes: Uint8Array): BaseSnapshotHeader | undefined {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const newline = buffer.indexOf(10);
  if (newline < 0) return undefined;
  let header: BaseSnapshotHeader & { v?: number };
  try {
    header = JSON.parse(buffer.subarray(0, newline).toString('utf8'));
  } catch {
    return undefined;
  }
  if (header.v !== 1 || typeof header.stats !== 'object' || typeof header.files !== 'object')
    return undefined;
  return header;
}

/**
 * Decodes what {@link createTreeCollector} encoded; `undefined` for anything malformed (a cache
 * miss). The records stay bytes, found through a hash table of their offsets (about 12 bytes per
 * entry): overlay planning looks up a handful of paths, and a map of a million node objects cost
 * about 200 bytes each.
 */
export function decodeBaseSnapshot(
  bytes: Uint8Array,
): { header: BaseSnapshotHeader; tree: BaseTree } | undefined {
  const header = decodeBaseHeader(bytes);
  if (!header) return undefined;
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = buffer.subarray(buffer.indexOf(10) + 1);
  const index = indexRecords(data);
  if (!index) return undefined;
  const files = header.files;
  const heads = header.heads ?? {};
  return {
    header,
    tree: {
      node: (key) => (key === '' ? ROOT : index(key)),
      async readFile(key) {
        const data = files[key];
        return data === undefined ? undefined : new Uint8Array(Buffer.from(data, 'base64'));
      },
      async readHead(key, length) {
        const data = heads[key];
        return data === undefined
          ? undefined
          : new Uint8Array(Buffer.from(data, 'base64')).subarray(0, length);
      },
      excluded: header.excluded,
    },
  };
}

/** FNV-1a of a key's bytes (a binary string's code units, or a byte range). */
function hashOf(at: (i: number) => number, length: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < length; i++) h = Math.imul(h ^ at(i), 0x01000193);
  return h >>> 0;
}

/**
 * Checks every record of a snapshot (`TYPE MODE`, key, target, NUL-separated) and returns a
 * lookup by key, or `undefined` when one is malformed. A key stored twice: the later record wins.
 */
function indexRecords(data: Buffer): ((key: string) => BaseNode | undefined) | undefined {
  const starts: number[] = [];
  const ends: number[] = [];
  let at = 0;
  let field = 0;
  while (at < data.byteLength) {
    const nul = data.indexOf(0, at);
    if (nul < 0) break;
    if (field % 3 === 0) {
      if (CHAR_TYPE[String.fromCharCode(data[at] as number)] === undefined) return undefined;
      starts.push(at);
    }
    if (field % 3 === 2) ends.push(nul);
    field++;
    at = nul + 1;
  }
  const count = ends.length;
  const recordStart = Int32Array.from(starts.slice(0, count));
  const recordEnd = Int32Array.from(ends);
  const keyStart = new Int32Array(count);
  const keyEnd = new Int32Array(count);
  let capacity = 16;
  while (capacity < count * 2) capacity *= 2;
  const slots = new Int32Array(capacity).fill(-1);
  const mask = capacity - 1;
  const sameKey = (r: number, s: number) => {
    const length = (keyEnd[r] as number) - (keyStart[r] as number);
    if (length !== (keyEnd[s] as number) - (keyStart[s] as number)) return false;
    return data.compare(data, keyStart[s], keyEnd[s], keyStart[r], keyEnd[r]) === 0;
  };
  for (let r = 0; r < count; r++) {
    const head = data.indexOf(0, recordStart[r]);
    keyStart[r] = head + 1;
    keyEnd[r] = data.indexOf(0, head + 1);
    const from = keyStart[r] as number;
    let slot = hashOf((i) => data[from + i] as number, (keyEnd[r] as number) - from) & mask;
    for (;;) {
      const held = slots[slot] as number;
      if (held === -1 || sameKey(r, held)) break;
      slot = (slot + 1) & mask;
    }
    slots[slot] = r;
  }
  const nodeAt = (r: number): BaseNode => {
    const start = recordStart[r] as number;
    const head = data.toString('latin1', start, (keyStart[r] as number) - 1);
    const type = CHAR_TYPE[head[0] ?? ''] as RootfsNodeType;
    const node: BaseNode = { type, mode: Number.parseInt(head.slice(1), 8) };
    const target = data.toString('latin1', (keyEnd[r] as number) + 1, recordEnd[r]);
    if (type === 'symlink') node.target = target;
    else if (type === 'file' && target === 'L') node.linked = true;
    return node;
  };
  return (key) => {
    let slot = hashOf((i) => key.charCodeAt(i), key.length) & mask;
    for (;;) {
      const r = slots[slot] as number;
      if (r === -1) return undefined;
      const from = keyStart[r] as number;
      if ((keyEnd[r] as number) - from === key.length) {
        let i = 0;
        while (i < key.length && data[from + i] === key.charCodeAt(i)) i++;
        if (i === key.length) return nodeAt(r);
      }
      slot = (slot + 1) & mask;
    }
  };
}

/** The resolved keys of the files init planning reads from the base (`/etc/passwd`, `/etc/group`). */
export function plannedFiles(base: BaseTree): Set<string> {
  const keys = new Set<string>();
  for (const path of ['etc/passwd', 'etc/group']) {
    const r = resolvePath((k) => base.node(k), path, true);
    if (r.node?.type === 'file') keys.add(r.key);
  }
  return keys;
}
