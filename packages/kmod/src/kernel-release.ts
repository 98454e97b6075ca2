import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { kernelImageFormat } from '@irb/boot';
import { decompress } from '@irb/compress';
import { IrbError } from '@irb/errors';
import { unxz } from './xz.ts';

const BANNER = new TextEncoder().encode('Linux version ');
/** The banner is in the kernel's read-only data; a release is at most 64 bytes (UTS_LEN). */
const RELEASE_MAX = 65;

/** The release in a `Linux version <release> (…)` banner found in a stream, or undefined. */
async function bannerRelease(source: AsyncIterable<Uint8Array>): Promise<string | undefined> {
  // A tail is carried into the next chunk, so a banner cut by a chunk boundary is still found.
  let carry = new Uint8Array(0);
  for await (const chunk of source) {
    const data = new Uint8Array(carry.length + chunk.length);
    data.set(carry);
    data.set(chunk, carry.length);
    let from = 0;
    let pending = -1;
    for (let at = indexOf(data, BANNER, from); at >= 0; at = indexOf(data, BANNER, from)) {
      if (data.length - at - BANNER.length < RELEASE_MAX) {
        pending = at;
        break;
      }
      const release = releaseAt(data, at + BANNER.length);
      if (release !== undefined) return release;
      from = at + 1;
    }
    carry = data.slice(pending >= 0 ? pending : Math.max(0, data.length - BANNER.length + 1));
  }
  const at = indexOf(carry, BANNER, 0);
  return at < 0 ? undefined : releaseAt(carry, at + BANNER.length);
}

/** A release word (printable, no space) followed by a space; undefined for a format string such as `%s`. */
function releaseAt(data: Uint8Array, start: number): string | undefined {
  let end = start;
  while (
    end < data.length &&
    end - start < RELEASE_MAX &&
    (data[end] as number) > 0x20 &&
    (data[end] as number) < 0x7f
  )
    end++;
  if (end === start || data[end] !== 0x20) return undefined;
  const release = new TextDecoder().decode(data.subarray(start, end));
  return /^\d/.test(release) ? release : undefined;
}

function indexOf(data: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0] as number;
  for (
    let i = data.indexOf(first, from);
    i >= 0 && i <= data.length - needle.length;
    i = data.indexOf(first, i + 1)
  ) {
    let k = 1;
    while (k < needle.length && data[i + k] === needle[k]) k++;
    if (k === needle.length) return i;
  }
  return -1;
}

async function* range(path: string, start: number, end?: number): AsyncGenerator<Uint8Array> {
  yield* createReadStream(path, {
    start,
    ...(end === undefined ? {} : { end: end - 1 }),
    highWaterMark: 1 << 20,
  });
}

function invalid(path: string, what: string): IrbError {
  return new IrbError(
    'IRB_BOOT_KERNEL_INVALID',
    `${path}: ${what}; give a Linux kernel image (vmlinuz, bzImage, Image)`,
  );
}

/**
 * The release (`uname -r`) of a Linux kernel image, to match it with modules' vermagic:
 * - an x86 bzImage: the string its setup header's `kernel_version` points to;
 * - an arm64 `Image`, an ELF vmlinux: the `Linux version …` banner in it;
 * - a gzip-compressed `Image` (some arm64 distributions' vmlinuz) and an EFI zboot image
 *   (gzip, zstd or xz payload): the banner after decompressing.
 *
 * @throws IrbError `IRB_BOOT_KERNEL_NOT_FOUND` when the file is missing, `IRB_BOOT_KERNEL_INVALID`
 * when it is none of these or carries no banner.
 */
export async function kernelRelease(path: string): Promise<string> {
  let header: Uint8Array;
  try {
    const handle = await open(path, 'r');
    try {
      const buffer = new Uint8Array(0x10000);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      header = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new IrbError(
      'IRB_BOOT_KERNEL_NOT_FOUND',
      `${path} cannot be read (${(error as NodeJS.ErrnoException).code}); check the kernel path`,
      {
        cause: error,
      },
    );
  }
  // @irb/boot tells the formats apart, as it does before it boots one.
  const format = await kernelImageFormat(path);
  let release: string | undefined;
  if (format === 'bzImage') {
    // Boot protocol 2.00+: kernel_version at 0x20e points to the string, minus 0x200.
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
    const pointer = view.getUint16(0x20e, true);
    if (pointer !== 0 && pointer + 0x200 + 4 <= header.length) {
      const start = pointer + 0x200;
      let end = start;
      while (end < header.length && header[end] !== 0 && header[end] !== 0x20) end++;
      release = new TextDecoder().decode(header.subarray(start, end));
    }
    release ||= await bannerRelease(range(path, 0));
  } else if (format === 'efi-zboot') {
    // EFI zboot (drivers/firmware/efi/libstub/zboot-header.S): payload offset, size, and the compression's name.
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
    const offset = view.getUint32(8, true);
    const size = view.getUint32(12, true);
    const nul = header.indexOf(0, 24);
    const kind = new TextDecoder().decode(header.subarray(24, nul < 0 || nul > 56 ? 56 : nul));
    const payload = range(path, offset, offset + size);
    if (kind === 'gzip' || kind === 'zstd')
      release = await bannerRelease(decompress(payload, { format: kind, label: path }));
    else if (kind === 'xzkern') release = await bannerRelease(unxz(payload, path, 'archive'));
    else
      throw invalid(
        path,
        `an EFI zboot image with a ${kind || 'unknown'} payload, which irb does not decompress`,
      );
  } else if (format === 'gzip-image') {
    release = await bannerRelease(decompress(range(path, 0), { format: 'gzip', label: path }));
  } else if (format === 'arm64-image' || format === 'elf') {
    release = await bannerRelease(range(path, 0));
  } else {
    throw invalid(path, 'not a kernel image irb knows (bzImage, arm64 Image, gzip Image, EFI zboot, ELF)');
  }
  if (!release) throw invalid(path, 'no "Linux version" banner found');
  return release;
}

/**
 * Checks that modules built for `modulesRelease` load into the kernel at `kernelPath`.
 *
 * @throws IrbError `IRB_KMOD_RELEASE_MISMATCH` naming both releases when they differ.
 */
export async function checkKernelRelease(kernelPath: string, modulesRelease: string): Promise<void> {
  const release = await kernelRelease(kernelPath);
  if (release !== modulesRelease) {
    throw new IrbError(
      'IRB_KMOD_RELEASE_MISMATCH',
      `the archive's kernel modules are for ${modulesRelease}, but ${kernelPath} is ${release}; boot a ${modulesRelease} kernel or rebuild with the modules of ${release}`,
    );
  }
}
