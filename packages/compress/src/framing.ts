import type { CompressionFormat } from './types.ts';

/*
 * How irb lays out an initramfs of several members so that both the kernel and the standard
 * tools (gzip, zstd and lz4 -dc piped into GNU cpio, bsdtar, Debian's lsinitramfs) read all of it:
 *
 * - Each member holds whole cpio records and no `TRAILER!!!`. The kernel starts a compressed
 *   member at any offset and needs it to end between two records, not on a trailer (a trailer
 *   only empties its hard-link table). GNU cpio and bsdtar stop at the first trailer, so a
 *   trailer anywhere but at the end would hide every member after it.
 * - Members of one compression follow each other with nothing between: gzip members form one
 *   multi-member gzip stream, zstd frames one zstd stream, lz4 legacy streams one stream for the
 *   kernel and for `lz4 -dc` (both skip a repeated magic word); uncompressed records simply go on.
 * - The archive ends with the trailer member: a member of the last member's compression holding
 *   only `TRAILER!!!`, with fixed bytes ({@link trailerMember}). Whoever appends checks that the
 *   file ends with them (which also shows that its end is intact), drops them, writes its member
 *   and a new trailer member.
 * - Only a change of compression needs bytes between members ({@link memberJoint}).
 * - A gzip archive's first member is named {@link IRB_ARCHIVE_NAME}.
 */

/**
 * The file name (gzip FNAME) of the first member of a gzip archive irb writes. It says that the
 * archive ends with the trailer member, so that a gzip archive that starts with it and does not
 * end with the member is known to be cut short: unlike zstd frames and lz4 blocks, gzip members
 * cannot be walked without inflating them.
 */
export const IRB_ARCHIVE_NAME = 'irb-initramfs.cpio';

/** The cpio record that ends an archive: `TRAILER!!!` with nlink 1 and every other field 0. */
export const TRAILER_RECORD: Uint8Array = new TextEncoder().encode(
  `070701${'00000000'.repeat(4)}00000001${'00000000'.repeat(6)}0000000B00000000TRAILER!!!\0\0\0\0`,
);

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, 'hex'));

/**
 * The trailer member per compression. Fixed bytes, not the output of the compressor (which
 * another zlib or zstd version could change), so any irb recognises the member any irb wrote:
 * gzip (48 bytes) with no name, mtime 0 and OS Unix; zstd (48 bytes) a single-segment frame with
 * content size and checksum; lz4 (44 bytes) the legacy magic and one block; none the record.
 */
const TRAILER_MEMBERS: Readonly<Record<CompressionFormat, Uint8Array>> = {
  gzip: hex(
    '1f8b080000000000000333303730373034200e181a90079c0ca02024c8d1d3c735485151910108004ee509377c000000',
  ),
  zstd: hex(
    '28b52ffd247c1d01000242060bc0eb14a62b93e3a38622036d0b00586783f9ff4fc7b12c0702000327fe002395fb166d',
  ),
  lz4: hex('02214c18240000007f303730373031300100132f313001002314420900e0545241494c455221212100000000'),
  none: TRAILER_RECORD,
};

/** The member that ends every archive irb writes: `TRAILER!!!` alone, in `format`. */
export function trailerMember(format: CompressionFormat): Uint8Array {
  return TRAILER_MEMBERS[format];
}

/**
 * The bytes between a member of compression `previous` that ends at file offset `offset` and a
 * member of compression `next`: none when both use the same compression, or when the next one is
 * gzip, zstd or lz4 after a gzip, zstd or uncompressed one. After lz4 a zero length word, which
 * is the only thing besides the end of the input that ends an lz4 stream for the kernel (it
 * would read the next member as more lz4 blocks); before an uncompressed member NUL bytes up to
 * a multiple of 4, where the kernel looks for a cpio header. The kernel skips both as padding;
 * the standard tools do not, and cannot read members of two compressions as one stream anyway.
 */
export function memberJoint(
  previous: CompressionFormat,
  next: CompressionFormat,
  offset: number,
): Uint8Array {
  if (previous === next) return new Uint8Array(0);
  const align = (at: number) => (4 - (at % 4)) % 4;
  if (previous === 'lz4') return new Uint8Array(4 + align(offset + 4));
  if (next === 'none') return new Uint8Array(align(offset));
  return new Uint8Array(0);
}
