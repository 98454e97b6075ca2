import { open } from 'node:fs/promises';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { type BootArch, elfArch } from './arch.ts';

/**
 * The kinds of kernel image QEMU boots with `-kernel`: an x86 bzImage, an arm64 `Image`, an EFI
 * zboot image (a compressed arm64 or RISC-V kernel in a PE wrapper), an ELF `vmlinux`, and a
 * gzip-compressed `Image` (the `vmlinuz` of some arm64 distributions; QEMU's arm loader unpacks it).
 */
export type KernelImageFormat = 'bzImage' | 'arm64-image' | 'efi-zboot' | 'elf' | 'gzip-image';

/** What a kernel image says about itself: see {@link inspectKernel}. */
export interface KernelInfo {
  /** The kind of image. */
  format: KernelImageFormat;
  /** The architecture it runs on; `undefined` when the image does not say (a 32-bit bzImage, a RISC-V zboot). */
  arch?: BootArch;
  /** Its release (`uname -r`, the name of its `/lib/modules` directory), when the image carries its version string. */
  release?: string;
}

/** How much of a kernel file is read: past any bzImage, arm64 Image or zboot file, and the start of a vmlinux. */
const MAX_KERNEL_BYTES = 256 * 1024 * 1024;
const HEADER_BYTES = 0x240;
/** A bzImage's real-mode setup, which holds the version string, is at most 64 sectors and the boot sector. */
const SETUP_BYTES = 65 * 512;
const BANNER = Buffer.from('Linux version ');
const XLF_KERNEL_64 = 1;
const PE_MACHINE: Readonly<Record<number, BootArch>> = { 43620: 'aarch64', 34404: 'x86_64' };

function hasBytes(header: Uint8Array, offset: number, magic: string): boolean {
  if (header.byteLength < offset + magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (header[offset + i] !== magic.charCodeAt(i)) return false;
  return true;
}

function u16(data: Uint8Array, at: number): number {
  return (data[at] ?? 0) | ((data[at + 1] ?? 0) << 8);
}

function u32(data: Uint8Array, at: number): number {
  return (u16(data, at) | (u16(data, at + 2) << 16)) >>> 0;
}

function formatOf(header: Uint8Array): KernelImageFormat | undefined {
  // Linux boot protocol: "HdrS" at 0x202 (Documentation/arch/x86/boot.rst).
  if (hasBytes(header, 0x202, 'HdrS')) return 'bzImage';
  // arm64 Image header: magic "ARM\x64" at 0x38 (Documentation/arch/arm64/booting.rst).
  if (hasBytes(header, 0x38, 'ARM\x64')) return 'arm64-image';
  // EFI zboot: a PE image ("MZ") whose header carries "zimg" at offset 4 (drivers/firmware/efi/libstub/zboot-header.S).
  if (hasBytes(header, 0, 'MZ') && hasBytes(header, 4, 'zimg')) return 'efi-zboot';
  if (hasBytes(header, 0, '\x7fELF')) return 'elf';
  if (header[0] === 0x1f && header[1] === 0x8b) return 'gzip-image';
  return undefined;
}

async function readStart(path: string, bytes: number): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const size = Math.min(bytes, (await handle.stat()).size);
    const buffer = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await handle.read(buffer, filled, size - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled);
  } finally {
    await handle.close();
  }
}

/**
 * Tells what kind of kernel image `path` holds from its header (`undefined`: none of
 * {@link KernelImageFormat}). QEMU itself only says "linux kernel too old to load a ram disk" of
 * a file that is not a kernel, which sends users looking for the wrong problem.
 */
export async function kernelImageFormat(path: string): Promise<KernelImageFormat | undefined> {
  return formatOf(await readStart(path, HEADER_BYTES));
}

/** The release in the kernel's `linux_banner` ("Linux version 6.1.0-57-amd64 (…"). */
function bannerRelease(image: Uint8Array): string | undefined {
  const data = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  for (let at = data.indexOf(BANNER); at >= 0; at = data.indexOf(BANNER, at + 1)) {
    const start = at + BANNER.length;
    // A printf format ("Linux version %s") or prose is not the banner: it starts with a digit.
    if (!(data[start] !== undefined && data[start] >= 0x30 && data[start] <= 0x39)) continue;
    let end = start;
    while (end < data.length && end - start < 128 && data[end] !== 0x20 && data[end] !== 0) end++;
    if (data[end] === 0x20) return data.toString('latin1', start, end);
  }
  return undefined;
}

/** An x86 bzImage's release: the setup header's `kernel_version` points at "6.1.0-57-amd64 (…". */
function bzImageInfo(image: Uint8Array): KernelInfo {
  const info: KernelInfo = { format: 'bzImage' };
  const protocol = u16(image, 0x206);
  if (protocol >= 0x20c && u16(image, 0x236) & XLF_KERNEL_64) info.arch = 'x86_64';
  const pointer = u16(image, 0x20e);
  if (pointer !== 0) {
    const start = pointer + 0x200;
    let end = start;
    while (end < image.length && end - start < 128 && image[end] !== 0x20 && image[end] !== 0) end++;
    const release = new TextDecoder().decode(image.subarray(start, end));
    if (/^\d/.test(release)) info.release = release;
  }
  return info;
}

function decompressed(run: () => Uint8Array): Uint8Array | undefined {
  try {
    return run();
  } catch {
    return undefined;
  }
}

/**
 * Reads a kernel image's architecture and release from the image itself: an x86 bzImage's setup
 * header (its 64-bit entry flag and `kernel_version` string); an arm64 `Image`'s magic and the
 * `Linux version` banner, also inside a gzip-compressed `Image` (Debian's arm64 `vmlinuz`) or an
 * EFI zboot image (its PE machine, and the banner in its gzip or zstd payload); an ELF's
 * `e_machine` and banner. Reads at most the first 256 MiB of the file.
 *
 * @returns `undefined` when the file is none of {@link KernelImageFormat}.
 */
export async function inspectKernel(path: string): Promise<KernelInfo | undefined> {
  const head = await readStart(path, SETUP_BYTES);
  const format = formatOf(head.subarray(0, HEADER_BYTES));
  if (format === undefined) return undefined;
  if (format === 'bzImage') return bzImageInfo(head);
  const image = await readStart(path, MAX_KERNEL_BYTES);
  const info: KernelInfo = { format };
  let inner: Uint8Array | undefined = image;
  if (format === 'gzip-image') {
    inner = decompressed(() => gunzipSync(image, { maxOutputLength: MAX_KERNEL_BYTES }));
    if (inner && hasBytes(inner, 0x38, 'ARM\x64')) info.arch = 'aarch64';
  } else if (format === 'arm64-image') {
    info.arch = 'aarch64';
  } else if (format === 'elf') {
    const arch = elfArch(image);
    if (arch) info.arch = arch;
  } else {
    const pe = u32(image, 0x3c);
    if (hasBytes(image, pe, 'PE\0\0')) {
      const arch = PE_MACHINE[u16(image, pe + 4)];
      if (arch) info.arch = arch;
    }
    const payload = image.subarray(u32(image, 8), u32(image, 8) + u32(image, 12));
    const method = new TextDecoder().decode(image.subarray(24, 32)).replace(/\0.*$/s, '');
    inner =
      method === 'gzip'
        ? decompressed(() => gunzipSync(payload, { maxOutputLength: MAX_KERNEL_BYTES }))
        : method === 'zstd'
          ? decompressed(() => zstdDecompressSync(payload, { maxOutputLength: MAX_KERNEL_BYTES }))
          : undefined;
  }
  const release = inner && bannerRelease(inner);
  if (release) info.release = release;
  return info;
}
