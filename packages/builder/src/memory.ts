/** Bytes of a memory page; tmpfs stores each file in whole pages. */
export const PAGE_SIZE = 4096;

/** What the kernel itself needs besides the unpacked archive (code, page tables, slab, early buffers). */
export const KERNEL_OVERHEAD_BYTES = 64 * 1024 * 1024;

/** Inputs of {@link recommendGuestMemory}. */
export interface GuestMemoryInput {
  /** Bytes the unpacked files take in the guest's tmpfs (file sizes rounded up to pages). */
  tmpfsBytes: number;
  /** Size of the (compressed) archive, which sits in guest RAM while it is unpacked. */
  compressedBytes: number;
}

/**
 * Guest RAM, in MiB, needed to unpack an initramfs: the kernel unpacks into a tmpfs capped at half
 * of RAM, so RAM must be at least twice the unpacked size, plus the archive itself (in memory until
 * unpacked) and the kernel's own overhead. Less gives "Initramfs unpacking failed: write error".
 * The program that then runs needs its own memory on top.
 */
export function recommendGuestMemory(input: GuestMemoryInput): number {
  const bytes = 2 * input.tmpfsBytes + input.compressedBytes + KERNEL_OVERHEAD_BYTES;
  return Math.ceil(bytes / (1024 * 1024));
}

/** The tmpfs footprint of a file of `size` bytes. */
export function tmpfsFootprint(size: number): number {
  return Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
}
