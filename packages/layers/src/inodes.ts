/*
 * The file inodes of a tree, as columns of typed arrays indexed by inode number: owner, mode,
 * mtime, size, where the body lives and how many names the tree gives it. A file node holds only
 * its inode number, so a million files cost 52 bytes each here instead of two objects (an inode
 * and its body reference, about 120 bytes, plus a map entry per file in the hard-link analysis).
 * What only a few files have (xattr keys, an injected body) sits in maps beside the columns.
 */

/** Where an injected file's bytes come from. */
export type InjectedBody =
  | { kind: 'bytes'; bytes: Uint8Array }
  /** A host file; a Buffer path when its name is not UTF-8 (host names are bytes too). */
  | { kind: 'host'; path: string | Buffer };

/** Where a file's bytes come from when `entries()` streams it. */
export type BodyRef = { kind: 'empty' } | { kind: 'layer'; layer: number; ordinal: number } | InjectedBody;

/** Owner, mode, mtime and xattr keys of a node. */
export interface Meta {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  xattrs?: string[];
}

/** What a new inode holds. */
export interface InodeInit extends Meta {
  size: number;
  /** Layer and member number of the body (a layer file with a body). */
  layer?: number;
  ordinal?: number;
  /** The body of an injected file. */
  injected?: InjectedBody;
}

const EMPTY: BodyRef = { kind: 'empty' };
const NO_LAYER = -1;

/** The file inodes of one tree (see the comment at the top of inodes.ts). */
export class Inodes {
  #capacity = 0;
  count = 0;
  mode = new Uint16Array(0);
  /** Doubles, not Uint32: an injected file's owner and mtime reach the CPIO writer unchanged, to be judged there. */
  uid = new Float64Array(0);
  gid = new Float64Array(0);
  mtime = new Float64Array(0);
  size = new Float64Array(0);
  layer = new Int32Array(0);
  ordinal = new Uint32Array(0);
  /** Names of the inode in the tree (hard links); 0 once every name was removed. */
  names = new Uint32Array(0);
  readonly #xattrs = new Map<number, string[]>();
  readonly #injected = new Map<number, InjectedBody>();

  /** A new inode with no name yet; returns its number. */
  add(init: InodeInit): number {
    if (this.count === this.#capacity) this.#grow();
    const i = this.count++;
    this.mode[i] = init.mode;
    this.uid[i] = init.uid;
    this.gid[i] = init.gid;
    this.mtime[i] = init.mtime;
    this.size[i] = init.size;
    this.layer[i] = init.layer ?? NO_LAYER;
    this.ordinal[i] = init.ordinal ?? 0;
    if (init.xattrs && init.xattrs.length > 0) this.#xattrs.set(i, init.xattrs);
    if (init.injected) this.#injected.set(i, init.injected);
    return i;
  }

  /** Owner, mode, mtime and xattrs of inode `i`. */
  meta(i: number): Meta {
    const meta: Meta = {
      mode: this.mode[i] as number,
      uid: this.uid[i] as number,
      gid: this.gid[i] as number,
      mtime: this.mtime[i] as number,
    };
    const xattrs = this.#xattrs.get(i);
    if (xattrs) meta.xattrs = xattrs;
    return meta;
  }

  /** Xattr keys of inode `i`, if it had any. */
  xattrs(i: number): string[] | undefined {
    return this.#xattrs.get(i);
  }

  /** Where the body of inode `i` comes from. */
  body(i: number): BodyRef {
    const injected = this.#injected.get(i);
    if (injected) return injected;
    const layer = this.layer[i] as number;
    if (layer === NO_LAYER || this.size[i] === 0) return EMPTY;
    return { kind: 'layer', layer, ordinal: this.ordinal[i] as number };
  }

  /** Grows by half (not doubling: a million inodes would briefly hold three times their bytes). */
  #grow(): void {
    const capacity = Math.max(1024, Math.ceil(this.#capacity * 1.5));
    const grow = <T extends Uint16Array | Uint32Array | Int32Array | Float64Array>(
      old: T,
      make: (n: number) => T,
    ): T => {
      const next = make(capacity);
      next.set(old as never);
      return next;
    };
    this.mode = grow(this.mode, (n) => new Uint16Array(n));
    this.uid = grow(this.uid, (n) => new Float64Array(n));
    this.gid = grow(this.gid, (n) => new Float64Array(n));
    this.mtime = grow(this.mtime, (n) => new Float64Array(n));
    this.size = grow(this.size, (n) => new Float64Array(n));
    this.layer = grow(this.layer, (n) => new Int32Array(n));
    this.ordinal = grow(this.ordinal, (n) => new Uint32Array(n));
    this.names = grow(this.names, (n) => new Uint32Array(n));
    this.#capacity = capacity;
  }
}
