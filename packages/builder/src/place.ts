import type { CpioEntry } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import { type BaseNode, cpioPathOf, displayOf, keyOfPath, resolvePath, targetKeyOf } from './base-tree.ts';

/*
 * Where an overlay member's entries go over a base member, for `build` (against the image's
 * tree) and `append` (against the tree of a built archive) alike, so both give the guest the
 * same tree for the same `inject`s. Loads nothing but the base-tree helpers: `append` imports it.
 */

/** The overlay's entries placed over the base, and the nodes they make (by resolved key). */
export interface Placed {
  entries: CpioEntry[];
  nodes: Map<string, BaseNode>;
}

/**
 * Places entries (an empty root with the injected files, in the order the Rootfs emits them,
 * parents first) over the base whose nodes `baseNode` tells: each path resolved through the
 * symlinks of both (overlay first), directories the base has dropped, missing parents
 * synthesized (0755, root, `mtime`). Kernel rules this follows (init/initramfs.c): an entry
 * replaces what an earlier member left at its path when the types differ (`clean_path` unlinks
 * a file or symlink, but only rmdirs an EMPTY directory), and a directory entry over an existing
 * directory rewrites its mode and owner. So a directory entry is emitted only where the base has
 * no directory (the overlay never turns `/bin → usr/bin` into a directory, never chmods `/tmp`),
 * and a file where the base has a directory is refused; `blame(key)` names what put it there.
 */
export async function placeEntries(
  source: AsyncIterable<CpioEntry>,
  baseNode: (key: string) => BaseNode | undefined,
  mtime: number,
  blame: (key: string) => string,
): Promise<Placed> {
  const nodes = new Map<string, BaseNode>();
  const entries: CpioEntry[] = [];
  const lookup = (key: string) => nodes.get(key) ?? baseNode(key);
  const ensureParents = (key: string) => {
    const parts = key.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (lookup(parent)?.type === 'directory') continue;
      entries.push({ type: 'directory', path: cpioPathOf(parent), mode: 0o755, mtime });
      nodes.set(parent, { type: 'directory', mode: 0o755 });
    }
  };
  // Injected bodies are bytes or host files opened lazily: listing them reads nothing.
  for await (const entry of source) {
    const raw = keyOfPath(entry.path);
    if (raw === '') continue;
    if (entry.type === 'directory') {
      // "This directory exists": follow a symlink the base has here, keep what the base has.
      const r = resolvePath(lookup, raw, true);
      if (r.node?.type === 'directory') continue;
      ensureParents(r.key);
      entries.push({ ...entry, path: cpioPathOf(r.key) });
      nodes.set(r.key, { type: 'directory', mode: entry.mode });
      continue;
    }
    const r = resolvePath(lookup, raw, false);
    if (r.node?.type === 'directory' && !nodes.has(r.key)) {
      throw new IrbError(
        'IRB_INJECT_DEST_INVALID',
        `${blame(raw)} puts a file at ${displayOf(r.key)}, where the image has a directory; an overlay member cannot replace a directory (the kernel removes only empty ones): choose a path below it`,
      );
    }
    ensureParents(r.key);
    if (r.node?.type === 'file' && r.node.linked && !nodes.has(r.key) && entry.type === 'file') {
      // The kernel writes a file over a file in place (same type: O_TRUNC on the existing inode),
      // which would change every hard-linked name of it. An entry of another type first makes it
      // unlink the name, so only this name gets the new file, as in a one-member archive.
      entries.push({ type: 'symlink', path: cpioPathOf(r.key), target: '.', mode: 0o777, mtime });
    }
    entries.push({ ...entry, path: cpioPathOf(r.key) });
    const node: BaseNode = { type: entry.type === 'socket' ? 'fifo' : entry.type, mode: entry.mode };
    if (entry.type === 'symlink') node.target = targetKeyOf(entry.target);
    if (entry.type === 'file') bodies.set(node, entry);
    nodes.set(r.key, node);
  }
  return { entries, nodes };
}

/** The overlay's file entries by node, so init planning can read an injected file. */
const bodies = new WeakMap<BaseNode, CpioEntry>();

/**
 * The bytes of a file the overlay placed, all of them or the first `limit` (reading stops
 * there); `undefined`: the node is not one of the overlay's files.
 */
export async function placedFileBytes(
  node: BaseNode,
  limit = Number.POSITIVE_INFINITY,
): Promise<Uint8Array | undefined> {
  const entry = bodies.get(node);
  if (entry?.type !== 'file') return undefined;
  const body = entry.body;
  if (body === undefined) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body.subarray(0, limit);
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of typeof body === 'function' ? body() : body) {
    chunks.push(chunk);
    length += chunk.byteLength;
    if (length >= limit) break;
  }
  return new Uint8Array(Buffer.concat(chunks)).subarray(0, limit);
}

/** The `inject` spec that put something at (or below) the raw key, for messages. */
export function blameInject(injects: ReadonlyArray<{ spec: string; dest: string }>, key: string): string {
  const hit = [...injects].reverse().find((i) => {
    const dest = keyOfPath(i.dest);
    return key === dest || key.startsWith(`${dest}/`) || dest === '';
  });
  return hit ? `\`inject\` ${hit.spec}` : '`inject`';
}
