import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeInitramfs } from '@irb/compress';
import { readCpio } from '@irb/cpio';
import { cacheLayout, makeDirectory } from '@irb/store/paths';
import { replaceFile } from '@irb/store/write';
import {
  type BaseNode,
  decodeNodeRecords,
  keyOfPath,
  nodeRecord,
  resolvePath,
  targetKeyOf,
} from './base-tree.ts';
import { fileIdentity, recordHolds, type SeenFile, sameIdentity } from './file-identity.ts';

/*
 * What an archive leaves in the guest, as overlay planning needs it (base-tree.ts's nodes): the
 * tree the kernel builds by unpacking every member in order, read once per archive content and
 * kept in the output cache, so that `irb append` plans its member against BASE (where its
 * directories and symlinks are) without reading BASE again on every call.
 *
 * Two kinds of entries, beside the build's:
 *   <sha256 of the archive's bytes>.atree   the tree: directories, symlinks, hard-linked files
 *   <sha256 of "dev:ino">.aid               which content that file had: its identity, times
 *                                           and content digest when they were seen
 * An append on an archive it has seen (the same file, unchanged) stats it, reads both entries
 * and plans: about a millisecond whatever the archive's size. A copy of a seen archive (another
 * inode, or a pull that replaced the file) is hashed, not decoded.
 */

const ROOT: BaseNode = { type: 'directory', mode: 0o755 };
/**
 * A stored tree starts with a line naming its version and the sha256 of the records after it:
 * a tree whose records do not match is read again from the archive, as every store entry is
 * checked before it is used (a bit flipped in a mode would otherwise place the next overlay wrong).
 */
const TREE_VERSION = 2;

/** How a tree of {@link archiveTree} is looked up: by exact key, parents already resolved. */
export type NodeLookup = (key: string) => BaseNode | undefined;

/** Options of {@link archiveTree}. */
export interface ArchiveTreeOptions {
  /** The cache root (see `@irb/store`); the trees live in its `output` area. Default: as for a build. */
  cacheDir?: string;
  /** `false`: read the archive every time and store nothing. */
  cache?: boolean;
  signal?: AbortSignal;
}

function parentKey(key: string): string {
  const slash = key.lastIndexOf('/');
  return slash < 0 ? '' : key.slice(0, slash);
}

/**
 * The tree an archive leaves once the kernel unpacked it (init/initramfs.c), from its entries
 * in order: each path resolved through the symlinks present at that point; an entry whose parent
 * is not a directory is skipped (the kernel cannot create it); one whose type differs from what
 * is there replaces it (`clean_path`: unlink, or rmdir, which fails on a non-empty directory, and
 * then the entry is skipped); a directory or file entry over one of its type keeps it and takes
 * its mode; a file with several links (`nlink` ≥ 2) is marked linked. Only what placement reads
 * is returned: directories, symlinks and linked files.
 */
export async function readArchiveTree(path: string, signal?: AbortSignal): Promise<Map<string, BaseNode>> {
  const nodes = new Map<string, BaseNode>();
  const children = new Map<string, number>();
  const lookup: NodeLookup = (key) => (key === '' ? ROOT : nodes.get(key));
  const count = (key: string, by: number) => {
    const parent = parentKey(key);
    children.set(parent, (children.get(parent) ?? 0) + by);
  };
  const source = createReadStream(path, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
  const data = decodeInitramfs(source as AsyncIterable<Uint8Array>, {
    label: path,
    ...(signal ? { signal } : {}),
  });
  for await (const e of readCpio(data, { verifyChecksum: false, ...(signal ? { signal } : {}) })) {
    if (e.type === 'unknown') continue;
    const { key } = resolvePath(lookup, keyOfPath(e.nameBytes), false);
    if (key === '' || lookup(parentKey(key))?.type !== 'directory') continue;
    const type = e.type === 'socket' ? 'fifo' : e.type;
    const old = nodes.get(key);
    if (old !== undefined && (old.type !== type || type === 'symlink')) {
      if (old.type === 'directory' && (children.get(key) ?? 0) > 0) continue;
      nodes.delete(key);
      children.delete(key);
      count(key, -1);
    }
    const node: BaseNode = { type, mode: e.permissions };
    if (e.type === 'symlink') node.target = targetKeyOf(e.targetBytes ?? new Uint8Array(0));
    // Same type: the kernel writes into the existing file, so its other names stay linked to it.
    if (type === 'file' && (e.nlink >= 2 || nodes.get(key)?.linked)) node.linked = true;
    if (!nodes.has(key)) count(key, 1);
    nodes.set(key, node);
  }
  for (const [key, node] of nodes) if (node.type === 'file' && !node.linked) nodes.delete(key);
  return nodes;
}

function lookupOf(nodes: ReadonlyMap<string, BaseNode>): NodeLookup {
  return (key) => (key === '' ? ROOT : nodes.get(key));
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

async function fileDigest(path: string, signal: AbortSignal | undefined): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, {
    highWaterMark: 1 << 20,
    ...(signal ? { signal } : {}),
  })) {
    hash.update(chunk as Uint8Array);
  }
  return hash.digest('hex');
}

/** A stored tree, marked used now (last use is the mtime, as for every cache entry); `undefined` when missing or damaged. */
async function loadTree(file: string): Promise<NodeLookup | undefined> {
  const bytes = await readFile(file).catch(() => undefined);
  const end = bytes?.indexOf(0x0a) ?? -1;
  if (bytes === undefined || end < 0) return undefined;
  let header: { v?: unknown; sha256?: unknown };
  try {
    header = JSON.parse(bytes.subarray(0, end).toString('utf8'));
  } catch {
    return undefined;
  }
  const body = bytes.subarray(end + 1);
  if (header?.v !== TREE_VERSION || header.sha256 !== createHash('sha256').update(body).digest('hex'))
    return undefined;
  const nodes = decodeNodeRecords(body.toString('latin1'));
  if (nodes === undefined) return undefined;
  const now = new Date();
  await utimes(file, now, now).catch(() => {});
  return lookupOf(nodes);
}

function encodeTree(nodes: ReadonlyMap<string, BaseNode>): Uint8Array {
  const records: string[] = [];
  for (const [key, node] of nodes) records.push(nodeRecord(key, node));
  return treeFileBytes(Buffer.from(records.join(''), 'latin1'));
}

/** A stored tree's bytes: the header line with the records' sha256, then the records. */
export function treeFileBytes(records: Uint8Array): Uint8Array {
  const sum = createHash('sha256').update(records).digest('hex');
  return new Uint8Array(Buffer.concat([Buffer.from(`{"v":${TREE_VERSION},"sha256":"${sum}"}\n`), records]));
}

/**
 * The tree of the archive at `path` ({@link readArchiveTree}), from the output cache when this
 * file was seen unchanged (its `.aid` record holds: see file-identity.ts) or its content was
 * (same sha256); otherwise read, and stored when the file did not change meanwhile. A cache that
 * cannot be written costs the next call a read, never this one its result.
 */
export async function archiveTree(path: string, options: ArchiveTreeOptions = {}): Promise<NodeLookup> {
  const { signal } = options;
  if (options.cache === false) return lookupOf(await readArchiveTree(path, signal));
  const layout = cacheLayout(options.cacheDir);
  const dir = layout.output;
  const before = await stat(path, { bigint: true });
  const idFile = join(dir, `${sha256(`${before.dev}:${before.ino}`)}.aid`);
  const seen = await readFile(idFile, 'utf8')
    .then((text) => JSON.parse(text) as SeenFile & { digest: string })
    .catch(() => undefined);
  if (seen !== undefined && recordHolds(seen, before) && /^[0-9a-f]{64}$/.test(seen.digest)) {
    const tree = await loadTree(join(dir, `${seen.digest}.atree`));
    if (tree) return tree;
  }
  const digest = await fileDigest(path, signal);
  const treeFile = join(dir, `${digest}.atree`);
  let tree = await loadTree(treeFile);
  let nodes: Map<string, BaseNode> | undefined;
  if (!tree) {
    nodes = await readArchiveTree(path, signal);
    tree = lookupOf(nodes);
  }
  const identity = fileIdentity(before);
  if (!sameIdentity(identity, fileIdentity(await stat(path, { bigint: true })))) return tree;
  try {
    await makeDirectory(dir);
    await makeDirectory(layout.tmp);
    const write = { tempDir: layout.tmp };
    if (nodes) await replaceFile(treeFile, encodeTree(nodes), write);
    await replaceFile(
      idFile,
      new TextEncoder().encode(JSON.stringify({ ...identity, seenAtMs: Date.now(), digest })),
      write,
    );
  } catch {
    // Best effort: the next append reads the archive again.
  }
  return tree;
}
