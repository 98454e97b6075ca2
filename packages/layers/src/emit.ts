import { createReadStream } from 'node:fs';
import type { CpioEntry, CpioFileEntry, CpioPath } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import { layerLabel, openLayerTar } from './layer-tar.ts';
import { cpioPathOfKey, displayKey } from './path.ts';
import type { LayerSpool } from './spool.ts';
import { type FileNode, keyOfNode, type Tree, walk } from './tree.ts';
import type { LayerSource, LayersProgress } from './types.ts';

/*
 * The emit pass: the tree out as CPIO entries, bodies streamed from the layer blobs (each needed
 * layer reopened once and read in tar order), from memory or from host files.
 */

/** What emission needs besides the tree. */
export interface EmitContext {
  tree: Tree;
  layers: readonly LayerSource[];
  /** Layers whose bodies the index pass kept, by position: read from there, not from the blob. */
  spools: ReadonlyMap<number, LayerSpool>;
  onProgress: ((event: LayersProgress) => void) | undefined;
}

/**
 * Streams the tree as CPIO entries: first the root, directories, symlinks, devices, FIFOs and
 * empty files in depth-first byte order (parents before children), then file bodies layer by
 * layer in tar order, then injected files in path order. Hard links come as one entry with
 * `links`. The kernel's limits were checked when the tree was built and on each injection.
 */
export async function* emitEntries(
  { tree, layers, spools, onProgress }: EmitContext,
  signal?: AbortSignal,
  transientBodies = false,
): AsyncGenerator<CpioEntry> {
  signal?.throwIfAborted();
  const { links } = tree.analyze();
  const { inodes } = tree;
  const fileEntry = (node: FileNode, key = keyOfNode(node)): CpioFileEntry => {
    const i = node.inode;
    const entry: CpioFileEntry = {
      type: 'file',
      path: cpioPathOfKey(key),
      mode: inodes.mode[i] as number,
      uid: inodes.uid[i] as number,
      gid: inodes.gid[i] as number,
      mtime: inodes.mtime[i] as number,
      size: inodes.size[i] as number,
    };
    const more = links.get(i);
    if (more) entry.links = more.map(cpioPathOfKey);
    return entry;
  };
  const sizeOf = (node: FileNode) => inodes.size[node.inode] as number;

  const { root } = tree;
  yield { type: 'directory', path: '.', mode: root.mode, uid: root.uid, gid: root.gid, mtime: root.mtime };
  // Per layer, the first name of each inode whose body it holds (a node, not a path string).
  const byLayer = new Map<number, FileNode[]>();
  // The walk is analyze()'s: an inode's first name here is the one its links were counted against.
  const seen = new Uint8Array(inodes.count);
  const injected: FileNode[] = [];
  const emptyLinked: FileNode[] = [];
  for (const [node, key] of walk(root)) {
    signal?.throwIfAborted();
    const path: CpioPath = cpioPathOfKey(key);
    switch (node.type) {
      case 'directory':
        yield { type: 'directory', path, mode: node.mode, uid: node.uid, gid: node.gid, mtime: node.mtime };
        break;
      case 'symlink':
        yield {
          type: 'symlink',
          path,
          target: cpioPathOfKey(node.target),
          mode: node.mode,
          uid: node.uid,
          gid: node.gid,
          mtime: node.mtime,
        };
        break;
      case 'char':
      case 'block':
        yield {
          type: node.type,
          path,
          mode: node.mode,
          uid: node.uid,
          gid: node.gid,
          mtime: node.mtime,
          rdevMajor: node.rdevMajor,
          rdevMinor: node.rdevMinor,
        };
        break;
      case 'fifo':
        yield { type: 'fifo', path, mode: node.mode, uid: node.uid, gid: node.gid, mtime: node.mtime };
        break;
      case 'file': {
        if (seen[node.inode] === 1) break;
        seen[node.inode] = 1;
        const body = inodes.body(node.inode);
        // An empty file with several names waits until every directory is out: a later
        // name may sit in a directory the walk has not reached yet.
        if (body.kind === 'empty' && links.has(node.inode)) emptyLinked.push(node);
        else if (body.kind === 'empty') yield fileEntry(node, key);
        else if (body.kind === 'layer') {
          const wanted = byLayer.get(body.layer);
          if (wanted) wanted.push(node);
          else byLayer.set(body.layer, [node]);
        } else injected.push(node);
        break;
      }
    }
  }

  for (const node of emptyLinked) yield fileEntry(node);

  for (const index of [...byLayer.keys()].sort((a, b) => a - b)) {
    const ordinalOf = (node: FileNode) => inodes.ordinal[node.inode] as number;
    // In tar order, as the blob gives them.
    const wanted = (byLayer.get(index) as FileNode[]).sort((a, b) => ordinalOf(a) - ordinalOf(b));
    const layer = layers[index] as LayerSource;
    const label = layerLabel(index, layers.length, layer);
    const progress = (entries: number, done: boolean) =>
      onProgress?.({
        phase: 'emit',
        layer: index,
        layers: layers.length,
        digest: layer.digest,
        entries,
        done,
      });
    const spool = spools.get(index);
    if (spool && !spool.closed && wanted.every((node) => spool.has(ordinalOf(node)))) {
      // The bodies in tar order, as the blob would give them, without decompressing it again.
      // Progress counts tar members up to the body, as reading the blob would.
      const reader = spool.reader({ transient: transientBodies });
      let seen = 0;
      for (const node of wanted) {
        signal?.throwIfAborted();
        const ordinal = ordinalOf(node);
        seen = ordinal + 1;
        yield { ...fileEntry(node), body: reader.body(ordinal, sizeOf(node)) };
        if (seen % 1024 === 0) progress(seen, false);
      }
      // Its space is not needed any more: later layers' spools are still held.
      await spool.close();
      progress(seen, true);
      continue;
    }
    // No spool, or one without every body wanted (it cannot happen today, but the blob is the
    // reference): the layer is read from its blob.
    await spool?.close();
    const reader = openLayerTar(layer, label, signal);
    let next = 0;
    let seen = 0;
    try {
      while (next < wanted.length) {
        signal?.throwIfAborted();
        const member = await reader.next();
        const node = wanted[next] as FileNode;
        if (!member) {
          throw new IrbError(
            'IRB_LAYER_CHANGED',
            `${label}: the blob ended before member ${ordinalOf(node)}; it changed since it was indexed — re-pull the image`,
          );
        }
        seen++;
        if (member.ordinal !== ordinalOf(node)) continue;
        if (member.type !== 'file' || member.size !== sizeOf(node)) {
          throw new IrbError(
            'IRB_LAYER_CHANGED',
            `${label}: member ${member.ordinal} is not the file indexed earlier; the blob changed — re-pull the image`,
          );
        }
        next++;
        yield { ...fileEntry(node), body: reader.body() };
        if (seen % 1024 === 0) progress(seen, false);
      }
    } finally {
      await reader.close();
    }
    progress(seen, true);
  }

  const injectedSorted = injected
    .map((node) => ({ node, key: keyOfNode(node) }))
    .sort((a, b) => (a.key < b.key ? -1 : 1));
  for (const { node, key } of injectedSorted) {
    signal?.throwIfAborted();
    const body = inodes.body(node.inode);
    const size = sizeOf(node);
    if (body.kind === 'bytes') yield { ...fileEntry(node, key), body: body.bytes };
    else if (body.kind === 'host') {
      yield { ...fileEntry(node, key), body: () => hostBody(body.path, size, signal) };
    }
  }
}

/**
 * The content of one file node, from its layer blob, memory or host file: all of it, or its
 * first `limit` bytes (reading stops there).
 */
export async function readBody(
  { tree, layers, spools }: Pick<EmitContext, 'tree' | 'layers' | 'spools'>,
  node: FileNode,
  signal?: AbortSignal,
  limit = Number.POSITIVE_INFINITY,
): Promise<Uint8Array> {
  const body = tree.inodes.body(node.inode);
  const size = tree.sizeOf(node);
  if (body.kind === 'empty') return new Uint8Array(0);
  if (body.kind === 'bytes') return body.bytes.slice(0, limit);
  const out = new Uint8Array(Math.min(size, limit));
  let at = 0;
  const take = async (chunks: AsyncIterable<Uint8Array>) => {
    for await (const chunk of chunks) {
      if (out.byteLength < size) {
        // A prefix: take what fits, then stop reading.
        const part = chunk.subarray(0, out.byteLength - at);
        out.set(part, at);
        at += part.byteLength;
        if (at === out.byteLength) break;
        continue;
      }
      if (at + chunk.byteLength > out.byteLength) break;
      out.set(chunk, at);
      at += chunk.byteLength;
    }
  };
  const spool = body.kind === 'layer' ? spools.get(body.layer) : undefined;
  if (body.kind === 'host') await take(hostBody(body.path, size, signal));
  else if (spool?.has(body.ordinal)) await take(spool.reader().body(body.ordinal, size));
  else {
    const layer = layers[body.layer] as LayerSource;
    const reader = openLayerTar(layer, layerLabel(body.layer, layers.length, layer), signal);
    try {
      for (;;) {
        const member = await reader.next();
        if (!member || member.ordinal > body.ordinal) break;
        if (member.ordinal === body.ordinal && member.type === 'file' && member.size === size) {
          await take(reader.body());
          break;
        }
      }
    } finally {
      await reader.close();
    }
  }
  if (at !== out.byteLength) {
    throw new IrbError(
      'IRB_LAYER_CHANGED',
      `${displayKey(keyOfNode(node))}: its layer blob changed since it was indexed; re-pull the image`,
    );
  }
  return out;
}

/** A host file's bytes, refusing a file whose size changed since it was injected. */
async function* hostBody(
  path: string | Buffer,
  size: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  let read = 0;
  const stream = createReadStream(path, signal ? { signal } : {});
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      read += chunk.byteLength;
      if (read > size) break;
      yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
  } finally {
    stream.destroy();
  }
  if (read !== size) {
    throw new IrbError(
      'IRB_INJECT_CHANGED',
      `${hostText(path)} was ${size} bytes when injected but ${read > size ? 'grew' : `has ${read}`} while the archive was written; do not modify injected files during a build`,
    );
  }
}

/** A host path for messages (names that are not UTF-8 show U+FFFD). */
export function hostText(path: string | Buffer): string {
  return typeof path === 'string' ? path : path.toString('utf8');
}
