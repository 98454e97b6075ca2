import { readFile } from 'node:fs/promises';
import { gunzipSync, inflateRawSync, zstdDecompressSync } from 'node:zlib';
import {
  type ArchiveFile,
  archOfMachine,
  type BootArch,
  type ElfHeaderInfo,
  INIT_HEAD_BYTES,
  initElfOf,
} from './arch.ts';
import { unlz4Member } from './lz4.ts';

/** A kernel module an initramfs carries under `lib/modules/<release>/` (or `usr/lib/modules/`). */
export interface ArchiveModule {
  /** Its path in the archive. */
  path: string;
  /** The directory name under `lib/modules`: the release it was installed for. */
  release: string;
  /** The module's name as the kernel knows it (`virtio_net`; dashes read as underscores). */
  name: string;
  /** The `vermagic` of its `.modinfo` (`6.1.0-57-amd64 SMP preempt mod_unload modversions`); `undefined` when it could not be read (`.ko.xz`). */
  vermagic?: string;
}

/** What an initramfs holds that matters before it boots: see {@link inspectInitramfs}. */
export interface InitramfsInfo {
  /** The architecture of its `/init` (an ELF, or its `#!` interpreter); `undefined` when it cannot tell. */
  arch?: BootArch;
  /** The ELF header of that program (also for machines other than x86_64 and aarch64). */
  initElf?: ElfHeaderInfo;
  /** Every kernel module under `lib/modules/<release>/`, in archive order (a later entry of the same path wins). */
  modules: ArchiveModule[];
}

interface Contents {
  entries: Map<string, ArchiveFile>;
  modules: Map<string, ArchiveModule>;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const MODULE_PATH = /^(?:usr\/)?lib\/modules\/([^/]+)\/(?:.+\/)?([^/]+)\.ko(?:\.gz|\.xz|\.zst)?$/;
const VERMAGIC = new TextEncoder().encode('vermagic=');

/** The `vermagic=` string of a module's `.modinfo`, decompressing `.ko.gz` and `.ko.zst`. */
function vermagicOf(path: string, body: Uint8Array): string | undefined {
  let elf: Uint8Array;
  try {
    if (path.endsWith('.gz')) elf = gunzipSync(body);
    else if (path.endsWith('.zst')) elf = zstdDecompressSync(body);
    else if (path.endsWith('.xz')) return undefined;
    else elf = body;
  } catch {
    return undefined;
  }
  const at = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength).indexOf(VERMAGIC);
  if (at < 0) return undefined;
  const start = at + VERMAGIC.length;
  let end = start;
  while (end < elf.length && elf[end] !== 0) end++;
  return new TextDecoder().decode(elf.subarray(start, end)).trim();
}

/** Parses the newc members starting at `at`; returns where the data after the trailer starts. */
function readCpio(data: Uint8Array, at: number, contents: Contents): number {
  const ascii = new TextDecoder();
  const hex = (offset: number): number =>
    Number.parseInt(ascii.decode(data.subarray(offset, offset + 8)), 16);
  while (at + 110 <= data.length) {
    const magic = ascii.decode(data.subarray(at, at + 6));
    if (magic !== '070701' && magic !== '070702') throw new Error('not a newc archive');
    const mode = hex(at + 14);
    const size = hex(at + 54);
    const nameSize = hex(at + 94);
    if (!Number.isFinite(mode + size + nameSize)) throw new Error('bad newc header');
    const name = ascii.decode(data.subarray(at + 110, at + 110 + nameSize - 1));
    const body = (at + 110 + nameSize + 3) & ~3;
    at = (body + size + 3) & ~3;
    if (name === 'TRAILER!!!') return at;
    const path = name.replace(/^(\.?\/)+/, '');
    contents.entries.set(path, { mode, head: data.slice(body, body + Math.min(size, INIT_HEAD_BYTES)) });
    const module = (mode & S_IFMT) === S_IFREG ? MODULE_PATH.exec(path) : null;
    if (module) {
      const vermagic = vermagicOf(path, data.subarray(body, body + size));
      contents.modules.set(path, {
        path,
        release: module[1] as string,
        name: (module[2] as string).replaceAll('-', '_'),
        ...(vermagic !== undefined ? { vermagic } : {}),
      });
    } else contents.modules.delete(path);
  }
  return data.length;
}

/** gzip member → its inflated bytes and how many input bytes it took. */
function gunzipMember(data: Uint8Array, at: number): { out: Uint8Array; used: number } {
  const flags = data[at + 3] ?? 0;
  let p = at + 10;
  if (flags & 4) p += 2 + ((data[p] ?? 0) | ((data[p + 1] ?? 0) << 8));
  if (flags & 8) while (p < data.length && data[p++] !== 0);
  if (flags & 16) while (p < data.length && data[p++] !== 0);
  if (flags & 2) p += 2;
  // Raw inflate stops at the end of the deflate stream and says how much it read, which
  // gunzip will not when a member is followed by something that is not gzip.
  const result = inflateRawSync(data.subarray(p), { info: true }) as unknown as {
    buffer: Buffer;
    engine: { bytesWritten: number };
  };
  return { out: result.buffer, used: p - at + result.engine.bytesWritten + 8 };
}

function zstdMember(data: Uint8Array, at: number): { out: Uint8Array; used: number } {
  const result = zstdDecompressSync(data.subarray(at), { info: true }) as unknown as {
    buffer: Buffer;
    engine: { bytesWritten: number };
  };
  return { out: result.buffer, used: result.engine.bytesWritten };
}

/**
 * Every entry of an initramfs: a sequence of members, each plain newc or gzip, zstd or lz4
 * (legacy), with zero padding between them. Each compressed member ends on a cpio trailer, as
 * the kernel requires.
 */
function readInitramfs(data: Uint8Array, contents: Contents): void {
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0) {
      at++;
      continue;
    }
    let member: { out: Uint8Array; used: number } | undefined;
    if (data[at] === 0x1f && data[at + 1] === 0x8b) member = gunzipMember(data, at);
    else if (data[at] === 0x28 && data[at + 1] === 0xb5 && data[at + 2] === 0x2f && data[at + 3] === 0xfd) {
      member = zstdMember(data, at);
    } else if (data[at] === 0x02 && data[at + 1] === 0x21 && data[at + 2] === 0x4c && data[at + 3] === 0x18) {
      member = unlz4Member(data, at);
    }
    if (member) {
      readInitramfs(member.out, contents);
      at += member.used;
    } else {
      at = readCpio(data, at, contents);
    }
  }
}

/**
 * Reads what `bootInitramfs` checks before QEMU starts: the architecture of the archive's `/init`
 * and the kernel modules it carries (with their `vermagic`). Reads the whole archive into memory
 * (plain newc, gzip, zstd and lz4 legacy members, concatenated as the kernel accepts them; later
 * entries replace earlier ones). A damaged archive gives what was read before the damage.
 */
export async function inspectInitramfs(path: string): Promise<InitramfsInfo> {
  const contents: Contents = { entries: new Map(), modules: new Map() };
  try {
    readInitramfs(new Uint8Array(await readFile(path)), contents);
  } catch {
    // What was read stands: the kernel reads up to the damage too.
  }
  const initElf = initElfOf(contents.entries);
  const arch = archOfMachine(initElf?.machine);
  return {
    ...(arch ? { arch } : {}),
    ...(initElf ? { initElf } : {}),
    modules: [...contents.modules.values()],
  };
}

/**
 * The architecture an initramfs was built for: that of its `/init` when it is an ELF file, or of
 * the interpreter its `#!` line names (see {@link inspectInitramfs}). Returns `undefined` when it
 * cannot tell (no /init, an unknown architecture).
 */
export async function initramfsArch(path: string): Promise<BootArch | undefined> {
  return (await inspectInitramfs(path)).arch;
}

/**
 * The ELF header of the program an initramfs starts (see {@link initElfOf}), from the archive file
 * (see {@link inspectInitramfs}); `undefined` when it cannot tell. (`@irb/builder` reads an archive
 * as a stream for the same answer.)
 */
export async function initramfsInitElf(path: string): Promise<ElfHeaderInfo | undefined> {
  return (await inspectInitramfs(path)).initElf;
}
