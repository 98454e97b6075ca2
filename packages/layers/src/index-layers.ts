import { decompress } from '@irb/compress';
import { IrbError } from '@irb/cpio';
import { compileGlob, displayKey, keyOf, splitKey } from './path.ts';
import { type DirNode, type Inode, keyOfNode, layerLabel, type Node, Rootfs } from './rootfs.ts';
import { type TarEntry, type TarEntryType, TarReader } from './tar.ts';
import type { IndexLayersOptions, LayerSource } from './types.ts';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
/** AUFS bookkeeping names (`.wh..wh.plnk`, `.wh..wh.aufs`): never content, never applied. */
const META_PREFIX = '.wh..wh.';

/** A tar member reduced to what the tree needs; no reference into the decompressed chunks survives. */
interface MemberRecord {
  type: TarEntryType;
  /** Normalized components (no `.`, `..` or empty ones). */
  components: string[];
  /** Link target as a key (symlinks: exact bytes as stored; hard links: a name in the tar). */
  link: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  devmajor: number;
  devminor: number;
  xattrs: string[];
  ordinal: number;
}

function recordOf(entry: TarEntry, components: string[]): MemberRecord {
  return {
    type: entry.type,
    components,
    link: keyOf(entry.linkname),
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    mtime: entry.mtime,
    size: entry.size,
    devmajor: entry.devmajor,
    devminor: entry.devminor,
    xattrs: entry.xattrs,
    ordinal: entry.ordinal,
  };
}

/**
 * Reads the tar headers of every layer, base first, and builds the final root filesystem in
 * memory as metadata (no file bodies, nothing on disk). Whiteouts and opaque markers of a
 * layer hide only what lower layers put there, wherever they stand in the layer's tar; hard
 * links share one inode; names are normalized inside the root; parents are synthesized.
 * Exclude globs are applied at the end. Bodies are streamed later by {@link Rootfs.entries}.
 */
export async function indexLayers(
  layers: readonly LayerSource[],
  options: IndexLayersOptions = {},
): Promise<Rootfs> {
  const { signal } = options;
  signal?.throwIfAborted();
  const globs = (options.exclude ?? []).map(compileGlob);
  const rootfs = new Rootfs({
    layers,
    ...(options.sourceDateEpoch !== undefined ? { sourceDateEpoch: options.sourceDateEpoch } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  for (let index = 0; index < layers.length; index++) {
    const layer = layers[index] as LayerSource;
    const label = layerLabel(index, layers.length, layer);
    rootfs.progress(index, layer, 0, false);
    const markers: MemberRecord[] = [];
    const members: MemberRecord[] = [];
    const reader = new TarReader(
      decompress(layer.open(signal ? { signal } : {}), {
        format: 'auto',
        mediaType: layer.mediaType,
        label,
        ...(signal ? { signal } : {}),
      }),
      label,
    );
    let count = 0;
    try {
      for (;;) {
        signal?.throwIfAborted();
        const entry = await reader.next();
        if (!entry) break;
        count++;
        if (count % 4096 === 0) rootfs.progress(index, layer, count, false);
        const { components, clamped } = splitKey(keyOf(entry.name));
        if (clamped) rootfs.noteClampedPath();
        const last = components[components.length - 1];
        // AUFS keeps hard-link sources and bookkeeping below `.wh..wh.*` directories: not content.
        if (components.slice(0, -1).some((part) => part.startsWith(META_PREFIX))) continue;
        for (let i = 0; i < components.length - 1; i++) {
          if ((components[i] as string).startsWith(WHITEOUT_PREFIX)) {
            throw new IrbError(
              'IRB_LAYER_BAD_WHITEOUT',
              `${label}: ${displayKey(components.join('/'))} lies below a whiteout marker; the layer is malformed — rebuild the image`,
            );
          }
        }
        if (last?.startsWith(WHITEOUT_PREFIX)) markers.push(recordOf(entry, components));
        else members.push(recordOf(entry, components));
      }
    } finally {
      await reader.close();
    }
    applyLayer(rootfs, index, label, markers, members);
    rootfs.progress(index, layer, count, true);
  }
  rootfs.exclude(globs);
  rootfs.checkLimits();
  return rootfs;
}

function applyLayer(
  rootfs: Rootfs,
  index: number,
  label: string,
  markers: readonly MemberRecord[],
  members: readonly MemberRecord[],
): void {
  // Markers first: they act on what the lower layers built, whatever their position in the tar,
  // so nothing this layer adds can be hidden by its own markers (OCI image spec, "Whiteouts").
  // What they remove stays reachable for this layer's hard links: an extractor working in tar
  // order (umoci, containerd) links before it deletes when the link comes first.
  const hidden = new Map<string, Node>();
  // Paths this layer writes, with their ancestors: a marker never removes them (as umoci's
  // "upper paths"), so a malformed layer that adds below a directory it also whites out keeps
  // that directory and the addition, instead of depending on tar order.
  const upper = new Set<string>();
  for (const member of members) {
    for (let i = 1; i <= member.components.length; i++) upper.add(member.components.slice(0, i).join('/'));
  }
  const prune = (dir: DirNode, name: string): void => {
    const node = dir.children.get(name);
    if (!node) return;
    const key = dir.parent ? `${keyOfNode(dir)}/${name}` : name;
    if (!upper.has(key)) {
      hidden.set(key, node);
      rootfs.remove(dir, name);
    } else if (node.type === 'directory') {
      for (const child of [...node.children.keys()]) prune(node, child);
    }
  };
  for (const marker of markers) {
    const components = [...marker.components];
    const name = components.pop() as string;
    const context = `${label}: ${displayKey(marker.components.join('/'))}`;
    if (name === OPAQUE_MARKER) {
      const dir = rootfs.resolveDir(components, false, context);
      if (dir) for (const child of [...dir.children.keys()]) prune(dir, child);
      continue;
    }
    if (name.startsWith(META_PREFIX)) continue;
    const hiddenName = name.slice(WHITEOUT_PREFIX.length);
    if (hiddenName === '' || hiddenName === '.' || hiddenName === '..') {
      throw new IrbError(
        'IRB_LAYER_BAD_WHITEOUT',
        `${context}: a whiteout of "${hiddenName}" would delete a parent or nothing; the layer is malformed or hostile — rebuild the image`,
      );
    }
    const dir = rootfs.resolveDir(components, false, context);
    if (dir) prune(dir, hiddenName);
  }

  for (const member of members) {
    const components = [...member.components];
    const name = components.pop();
    const context = `${label}: ${displayKey(member.components.join('/'))}`;
    if (name === undefined) {
      if (member.type !== 'directory') {
        throw new IrbError(
          'IRB_LAYER_BAD_ROOT',
          `${label}: a ${member.type} member names the root directory; the layer is malformed or hostile — rebuild the image`,
        );
      }
      setMeta(rootfs, rootfs.root, member);
      continue;
    }
    const parent = rootfs.resolveDir(components, true, context) as DirNode;
    const existing = parent.children.get(name);
    const base = { name, parent };
    switch (member.type) {
      case 'directory':
        if (existing?.type === 'directory') setMeta(rootfs, existing, member);
        else {
          const dir: DirNode = { ...base, type: 'directory', children: new Map(), ...meta(rootfs, member) };
          rootfs.place(parent, dir);
        }
        break;
      case 'file': {
        const inode: Inode = {
          ...meta(rootfs, member),
          size: member.size,
          body:
            member.size > 0 ? { kind: 'layer', layer: index, ordinal: member.ordinal } : { kind: 'empty' },
        };
        rootfs.place(parent, { ...base, type: 'file', inode });
        break;
      }
      case 'symlink':
        rootfs.place(parent, { ...base, type: 'symlink', target: member.link, ...meta(rootfs, member) });
        break;
      case 'char':
      case 'block':
      case 'fifo':
        rootfs.place(parent, {
          ...base,
          type: member.type,
          rdevMajor: member.type === 'fifo' ? 0 : member.devmajor,
          rdevMinor: member.type === 'fifo' ? 0 : member.devminor,
          ...meta(rootfs, member),
        });
        break;
      case 'link': {
        const target = linkTarget(rootfs, member, context, hidden);
        if (target === existing) break;
        if (target.type === 'file') rootfs.place(parent, { ...base, type: 'file', inode: target.inode });
        else {
          // A hard link to a symlink, device or FIFO: newc can only share file inodes, so the
          // name becomes an identical, separate node.
          const copy = { ...target, ...base } as Node;
          rootfs.place(parent, copy);
        }
        break;
      }
    }
  }
}

function meta(
  rootfs: Rootfs,
  member: MemberRecord,
): { mode: number; uid: number; gid: number; mtime: number; xattrs?: string[] } {
  return {
    mode: member.mode,
    uid: member.uid,
    gid: member.gid,
    mtime: rootfs.clampTime(member.mtime),
    ...(member.xattrs.length > 0 ? { xattrs: member.xattrs } : {}),
  };
}

function setMeta(rootfs: Rootfs, dir: DirNode, member: MemberRecord): void {
  const next = meta(rootfs, member);
  dir.mode = next.mode;
  dir.uid = next.uid;
  dir.gid = next.gid;
  dir.mtime = next.mtime;
  if (next.xattrs) dir.xattrs = next.xattrs;
  else delete dir.xattrs;
  if (dir.parent) rootfs.place(dir.parent, dir);
}

/** Resolves a hard link's target: parent symlinks followed inside the root, the name itself not. */
function linkTarget(rootfs: Rootfs, member: MemberRecord, context: string, hidden: Map<string, Node>): Node {
  const { components, clamped } = splitKey(member.link);
  if (clamped) rootfs.noteClampedPath();
  const all = [...components];
  const name = components.pop();
  const where = displayKey(all.join('/'));
  const parent = name === undefined ? undefined : rootfs.resolveDir(components, false, context);
  const target = (name === undefined ? undefined : parent?.children.get(name)) ?? findHidden(hidden, all);
  if (!target) {
    throw new IrbError(
      'IRB_LAYER_BAD_LINK',
      `${context}: hard link to ${where}, which does not exist at that point; the layer is malformed — rebuild the image`,
    );
  }
  if (target.type === 'directory') {
    throw new IrbError(
      'IRB_LAYER_BAD_LINK',
      `${context}: hard link to the directory ${where}; directories cannot be hard-linked — rebuild the image`,
    );
  }
  return target;
}

/** Looks a name up among what this layer's whiteouts removed (and below it). */
function findHidden(hidden: Map<string, Node>, components: readonly string[]): Node | undefined {
  for (let i = components.length; i > 0; i--) {
    let node = hidden.get(components.slice(0, i).join('/'));
    if (!node) continue;
    for (const part of components.slice(i)) {
      node = node.type === 'directory' ? node.children.get(part) : undefined;
      if (!node) return undefined;
    }
    return node;
  }
  return undefined;
}
