/** Bytes of a memory page; tmpfs stores each file in whole pages. */
export const PAGE_SIZE = 4096;

const MiB = 1024 * 1024;

/**
 * RAM the kernel holds for itself before it unpacks the archive: its image (code, data, bss),
 * `struct page` for all of RAM, page tables and early allocations. Measured with Debian's 6.1
 * kernel (the largest mainstream one): with exactly `2 × unpacked + compressed + 64 MiB` the
 * Debian python3 image unpacks, 2 MiB less fails (see bench/memory-calibrate.ts).
 */
export const KERNEL_OVERHEAD_BYTES = 64 * MiB;

/**
 * Memory the kernel needs beyond {@link KERNEL_OVERHEAD_BYTES} while it unpacks and starts
 * `/init` (slab, the unpacker's buffers, the first processes). Measured: a 1.9 MiB busybox image
 * needs 84 MiB (64 + 1 compressed + 1.9 unpacked + 17); below that the boot panics, reports
 * `Initramfs unpacking failed`, or ends with nothing on the console. The unpacking runs while
 * other initcalls allocate (at 82 MiB the OOM panic was in the crypto self-tests), so the need
 * varies from boot to boot; 32 MiB leaves room for that.
 */
export const BOOT_WORKING_BYTES = 32 * MiB;

/**
 * Headroom over the measured minimum, as a fraction: the kernel's own share grows with RAM
 * (`struct page` is 1.6 % of it) and differs between kernel builds, and boots near the minimum
 * succeed or fail from one run to the next.
 */
export const MEMORY_MARGIN = 0.1;

/** Inputs of {@link recommendGuestMemory}. */
export interface GuestMemoryInput {
  /** Bytes the unpacked files take in the guest's tmpfs (file sizes rounded up to pages). */
  tmpfsBytes: number;
  /** Size of the (compressed) archive, which sits in guest RAM while it is unpacked. */
  compressedBytes: number;
}

/**
 * Guest RAM, in MiB, with which the archive unpacks and `/init` starts:
 *
 *   (1 + margin) × (kernel + compressed + unpacked + max(unpacked, working))
 *
 * Two limits meet there. The kernel unpacks into a tmpfs capped at half of the RAM it counts
 * when it mounts it, which excludes its own overhead and the archive (reserved until unpacked):
 * RAM ≥ kernel + compressed + 2 × unpacked; this binds for large images. And while unpacking,
 * RAM holds the kernel, the archive, the files and the kernel's working memory: RAM ≥ kernel +
 * compressed + unpacked + working; this binds for small ones. After unpacking the archive's
 * memory is freed; what the program itself allocates comes on top of that headroom.
 */
export function recommendGuestMemory(input: GuestMemoryInput): number {
  const { tmpfsBytes: unpacked, compressedBytes: compressed } = input;
  const needed = KERNEL_OVERHEAD_BYTES + compressed + unpacked + Math.max(unpacked, BOOT_WORKING_BYTES);
  return Math.ceil(((1 + MEMORY_MARGIN) * needed) / MiB);
}

/** The tmpfs footprint of a file of `size` bytes. */
export function tmpfsFootprint(size: number): number {
  return Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
}
