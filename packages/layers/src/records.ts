import type { TarEntry, TarEntryType } from './tar.ts';

/**
 * What the index pass needs of a tar member: its header, without the body, sparse map or
 * position. Names are copies, so a record never pins a decompressed chunk (records of layers
 * read ahead wait in memory until their layer is applied).
 */
export interface LayerRecord {
  /** The member's position among the tar's real members (its body address for `entries()`). */
  ordinal: number;
  type: TarEntryType;
  /** Exact name bytes. */
  name: Uint8Array;
  /** Exact hard-link or symlink target bytes. */
  linkname: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  /** Logical size (sparse files expanded). */
  size: number;
  devmajor: number;
  devminor: number;
  xattrs: string[];
}

/** A detached record of a tar member: names copied out of the reader's chunk, body skipped. */
export function recordOf(entry: TarEntry): LayerRecord {
  return {
    ordinal: entry.ordinal,
    type: entry.type,
    name: entry.name.slice(),
    linkname: entry.linkname.slice(),
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    mtime: entry.mtime,
    size: entry.size,
    devmajor: entry.devmajor,
    devminor: entry.devminor,
    xattrs: entry.xattrs,
  };
}

