/*
 * Default bounds of the index pass. Both are options of `indexLayers` (`maxEntries`,
 * `maxUnpackedBytes`) and of the builder; the README's "Bounds" section says why these values.
 */

/**
 * Tar members (all layers together) the index pass reads at most: 8 million. Indexing costs about
 * 200 bytes of heap per member, so this stays below 2 GiB of Node's default 4 GiB heap on a
 * 64-bit host; a guest unpacking that many files needs about 8 GiB for the kernel's inodes and
 * dentries alone. Real images hold tens of thousands.
 */
export const DEFAULT_MAX_ENTRIES = 8_000_000;

/**
 * Bytes of file content (each inode once) an image may unpack to: 64 GiB. The initramfs unpacks
 * into the guest's memory, so a guest must hold all of it plus the archive; the largest real
 * images (CUDA and ML stacks) unpack to 10–25 GiB, and 64 GiB of zeros alone take minutes to
 * compress. A sparse-file bomb (a 1 KB layer that expands to hundreds of GiB) fails at once.
 */
export const DEFAULT_MAX_UNPACKED_BYTES = 64 * 2 ** 30;

/** Bytes for messages: `1.5 GiB`, `512 MiB`, `100 B`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${Number(value.toFixed(1))} ${units[unit]}`;
}
