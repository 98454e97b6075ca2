import { lstatSync, statSync } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join as joinHostPath } from 'node:path';
import { CPIO_MAX_FILE_SIZE } from '@irb/cpio';
import { IrbError, isIrbError } from '@irb/errors';
import { utf8OrUndefined } from '@irb/tar';
import { hostText } from './emit.ts';
import type { InjectedBody } from './inodes.ts';
import { displayKey, keyOf, keyOfInput, splitKey } from './path.ts';
import { checkNode, type DirNode, keyOfNode, type Tree, tooLarge } from './tree.ts';
import type { InjectOptions } from './types.ts';

/*
 * Injection: files and host trees placed into the tree after all layers (umoci's "insert"),
 * with the kernel's limits checked for each node added, so the emit pass needs no second walk.
 */

/** Contents of an injected file; host paths are Buffers when their names are not UTF-8. */
export type InjectBody = { bytes: Uint8Array } | { hostPath: string | Buffer };

/**
 * Puts a file at `destKey` (a key: exact bytes), replacing whatever is there; parents are
 * created (0755, root), parent symlinks followed inside the root.
 */
export function injectFile(
  tree: Tree,
  destKey: string,
  context: string,
  source: InjectBody,
  options: InjectOptions = {},
): void {
  const { components } = splitKey(destKey);
  const name = components.pop();
  if (name === undefined) {
    throw new IrbError(
      'IRB_INJECT_DEST_INVALID',
      `${context}: the destination must name a file, not the root directory`,
    );
  }
  let body: InjectedBody | undefined;
  let size: number;
  if ('bytes' in source) {
    size = source.bytes.byteLength;
    body = size === 0 ? undefined : { kind: 'bytes', bytes: source.bytes };
  } else {
    let stat: ReturnType<typeof statSync>;
    try {
      stat = statSync(source.hostPath);
    } catch (cause) {
      throw new IrbError(
        'IRB_INJECT_SOURCE_UNREADABLE',
        `${context}: cannot read ${hostText(source.hostPath)}; check the path`,
        { cause },
      );
    }
    if (!stat.isFile()) {
      throw new IrbError(
        'IRB_INJECT_SOURCE_UNREADABLE',
        `${context}: ${hostText(source.hostPath)} is not a regular file; use injectHostPath() for directories`,
      );
    }
    size = stat.size;
    body = size === 0 ? undefined : { kind: 'host', path: source.hostPath };
  }
  if (size > CPIO_MAX_FILE_SIZE) throw tooLarge(context, destKey, size);
  // Checked before any parent is made (nothing is left behind), and again where parent symlinks led.
  const probe = { type: 'file' as const, name, parent: tree.root, upper: -1, inode: -1 };
  checkNode(probe, joinKey(components.join('/'), name), context, size);
  const parent = injectParent(tree, components, context);
  checkNode(probe, joinKey(keyOfNode(parent), name), context, size);
  const inode = tree.inodes.add({
    mode: (options.mode ?? 0o755) & 0o7777,
    uid: options.uid ?? 0,
    gid: options.gid ?? 0,
    mtime: options.mtime ?? tree.synthesizedTime(),
    size,
    ...(body ? { injected: body } : {}),
  });
  tree.place(parent, { ...probe, inode });
}

/** Resolves (creating) the parent directory of an injected path, with an injection-worded error. */
function injectParent(tree: Tree, components: readonly string[], context: string): DirNode {
  try {
    return tree.resolveDir(components, true, context) as DirNode;
  } catch (error) {
    if (!isIrbError(error) || error.code !== 'IRB_LAYER_NOT_A_DIRECTORY') throw error;
    throw new IrbError(
      'IRB_INJECT_DEST_INVALID',
      `${context}: a parent of the destination is not a directory in the image, so nothing can be placed below it; choose another destination`,
      { cause: error },
    );
  }
}

/**
 * Copies a host file or directory tree to `dest` (`SRC:DEST` semantics, like `COPY`); see
 * `Rootfs.injectHostPath`.
 */
export async function injectHostPath(tree: Tree, src: string, dest: string): Promise<void> {
  let stat: Awaited<ReturnType<typeof lstat>>;
  try {
    stat = await lstat(src);
  } catch (cause) {
    throw new IrbError(
      'IRB_INJECT_SOURCE_UNREADABLE',
      `inject ${src}:${dest}: cannot read ${src}; check the path`,
      { cause },
    );
  }
  if (stat.isFile()) {
    const target = dest.endsWith('/') ? `${dest}${basename(src)}` : dest;
    injectFile(tree, keyOfInput(target), `inject ${target}`, { hostPath: src });
    return;
  }
  if (!stat.isDirectory()) {
    throw new IrbError(
      'IRB_INJECT_SOURCE_UNREADABLE',
      `inject ${src}:${dest}: ${src} is neither a regular file nor a directory; inject files or directories`,
    );
  }
  await injectDir(tree, src, keyOfInput(dest));
}

/** Host directory `src` merged into the directory at `destKey`; host names are read as bytes. */
async function injectDir(tree: Tree, src: string | Buffer, destKey: string): Promise<void> {
  const context = `inject ${hostText(src)}:${displayKey(destKey)}`;
  const { components } = splitKey(destKey);
  const name = components.pop();
  let dir: DirNode;
  if (name === undefined) {
    dir = tree.root;
  } else {
    const parent = injectParent(tree, components, context);
    const existing = parent.children.get(name);
    if (existing?.type === 'directory') dir = existing;
    else if (existing?.type === 'symlink') {
      dir = tree.resolveDir([...components, name], true, context) as DirNode;
    } else {
      dir = tree.newDir(name, parent);
      checkNode(dir, joinKey(keyOfNode(parent), name), context);
      tree.place(parent, dir);
    }
  }
  const base = dir === tree.root ? '' : keyOfNode(dir);
  // Buffer names: a host file whose name is not UTF-8 keeps its bytes (a string readdir would
  // turn them into U+FFFD and then fail to find the file).
  const names = (await readdir(src, { encoding: 'buffer' })).sort(Buffer.compare);
  for (const entry of names) {
    const hostPath = childPath(src, entry);
    const key = joinKey(base, keyOf(entry));
    const stat = lstatSync(hostPath);
    if (stat.isDirectory()) {
      await injectDir(tree, hostPath, key);
    } else if (stat.isSymbolicLink()) {
      const link = await readlink(hostPath, { encoding: 'buffer' });
      const node = {
        type: 'symlink' as const,
        name: keyOf(entry),
        parent: dir,
        upper: -1,
        mode: 0o777,
        uid: 0,
        gid: 0,
        mtime: tree.synthesizedTime(),
        target: keyOf(new Uint8Array(link)),
      };
      checkNode(node, key, context);
      tree.place(dir, node);
    } else if (stat.isFile()) {
      injectFile(tree, key, `inject ${displayKey(key)}`, { hostPath });
    } else {
      throw new IrbError(
        'IRB_INJECT_SOURCE_UNREADABLE',
        `${context}: ${hostText(hostPath)} is a special file; only files, directories and symlinks can be injected`,
      );
    }
  }
}

/** `dir/name` on the host: a string while every part is UTF-8, else exact bytes. */
function childPath(dir: string | Buffer, name: Buffer): string | Buffer {
  const text = typeof dir === 'string' ? utf8OrUndefined(name) : undefined;
  if (typeof dir === 'string' && text !== undefined) return joinHostPath(dir, text);
  return Buffer.concat([Buffer.from(dir), Buffer.from('/'), name]);
}

/** The key of `name` inside the directory whose key is `dir` ('' for the root). */
function joinKey(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}
