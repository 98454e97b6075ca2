/**
 * Entry model of the newc writer. Paths are relative to the archive root: no leading
 * `/`, no `..` component, no empty component; `.` alone names the root directory.
 * A path or link target may be a `Uint8Array` to carry names that are not UTF-8.
 * Kernel limits (checked by the writer): names and link targets at most 4095 bytes,
 * each name component at most 255 bytes, file bodies below 4 GiB.
 */

/** Bytes of a file body: whole, streamed, or opened lazily (once) when the writer reaches the entry. */
export type BodySource = Uint8Array | AsyncIterable<Uint8Array> | (() => AsyncIterable<Uint8Array>);

/** A path inside the archive, as text or as exact bytes. */
export type CpioPath = string | Uint8Array;

/** Fields every entry has. */
export interface CpioEntryBase {
  /** Path inside the archive (see module docs for the rules). */
  path: CpioPath;
  /** Permission bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000); the file type bits are added by the writer. */
  mode: number;
  /** Owner user id, 0 … 2^32-1. Default 0. */
  uid?: number;
  /** Owner group id, 0 … 2^32-1. Default 0. */
  gid?: number;
  /** Modification time in seconds since the epoch, 0 … 2^32-1. Default 0. */
  mtime?: number;
}

/** A regular file. `links` are further names of the same inode (hard links). */
export interface CpioFileEntry extends CpioEntryBase {
  type: 'file';
  /** Exact body length in bytes; a body of another length is an error. Must be < 4 GiB. */
  size: number;
  /** The body; may be omitted when `size` is 0. */
  body?: BodySource;
  /**
   * Further names of this file. The writer emits `path` and then each link, all with
   * one inode number and nlink = 1 + links.length, the body stored once on the last name
   * (the GNU cpio convention, which the kernel and bsdtar also accept).
   */
  links?: readonly CpioPath[];
  /**
   * The 070702 checksum of the body (sum of its bytes mod 2^32), if already known. Only used
   * with `format: 'crc'`, where the check field precedes the data: with it a streamed body is
   * read once and verified; without it a function body is opened twice (sum, then data) and a
   * plain AsyncIterable body is held in memory. Ignored for `newc`.
   */
  checksum?: number;
}

/** A directory. */
export interface CpioDirectoryEntry extends CpioEntryBase {
  type: 'directory';
}

/** A symbolic link; `target` is stored as data and never followed. */
export interface CpioSymlinkEntry extends CpioEntryBase {
  type: 'symlink';
  target: CpioPath;
}

/** A character or block device node. */
export interface CpioDeviceEntry extends CpioEntryBase {
  type: 'char' | 'block';
  rdevMajor: number;
  rdevMinor: number;
}

/** A FIFO or a UNIX socket node. */
export interface CpioSpecialEntry extends CpioEntryBase {
  type: 'fifo' | 'socket';
}

/** Anything the newc writer can store. */
export type CpioEntry =
  | CpioFileEntry
  | CpioDirectoryEntry
  | CpioSymlinkEntry
  | CpioDeviceEntry
  | CpioSpecialEntry;

/** The kind of an entry. */
export type CpioEntryType = CpioEntry['type'];
