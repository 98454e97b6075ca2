/** What `irb boot` and `irb boot --timeline` both say: what went wrong in a boot, where a forward is. */
import type { BootForward } from '@irb/builder';

/** Console text of a guest that ran out of memory (unpacking the archive or later). */
export const OUT_OF_MEMORY =
  /invoked oom-killer|Out of memory|System is deadlocked on memory|Unable to allocate initrd|initrd overlaps in-use memory|Initramfs unpacking failed: (?:write error|out of memory)/;

/**
 * Why the kernel could not unpack the archive, when the archive itself is at fault ("broken
 * padding", "junk within compressed archive", "decompressor failed"), not the memory: the kernel
 * says "write error" when tmpfs is full and "out of memory" when an allocation fails.
 */
export function unpackFailure(console: string): string | undefined {
  const reason = /Initramfs unpacking failed: ([^\r\n]*)/.exec(console)?.[1]?.trim();
  return reason === undefined || /^(?:write error|out of memory)/i.test(reason) ? undefined : reason;
}

/** The one-line verdict for an archive the kernel could not unpack. */
export function corruptArchiveReason(reason: string): string {
  return `the kernel could not unpack the archive ("${reason}"): it is corrupt or cut short, not too big for the memory; build it again`;
}

/** The stderr line for a bound forward: where on this machine the guest's port is reached. */
export function forwardLine(forward: BootForward): string {
  return `irb: forward ${forward.host}:${forward.hostPort} -> guest port ${forward.guestPort}${forward.picked ? ' (a free port)' : ''}`;
}
