import { readFile } from 'node:fs/promises';
import { inflateRawSync, zstdDecompressSync } from 'node:zlib';

/** Guest architecture, as the kernel names it (`uname -m`). */
export type BootArch = 'x86_64' | 'aarch64';

/** The architecture of the machine running this process. */
export function hostArch(): BootArch {
  return process.arch === 'arm64' ? 'aarch64' : 'x86_64';
}

const EM_X86_64 = 62;
const EM_AARCH64 = 183;

/** What an ELF header says about the machine a program runs on. */
export interface ElfHeaderInfo {
  /** `e_machine` (62 x86-64, 183 AArch64, 243 RISC-V, 40 ARM, 3 i386, …). */
  machine: number;
  /** `EI_CLASS`: 32- or 64-bit. */
  bits: 32 | 64;
  /** `EI_DATA`: byte order. */
  littleEndian: boolean;
}

/** The machine fields of an ELF header (its first 20 bytes), or `undefined` when the bytes are not an ELF header. */
export function elfHeader(header: Uint8Array): ElfHeaderInfo | undefined {
  if (
    header.length < 20 ||
    header[0] !== 0x7f ||
    header[1] !== 0x45 ||
    header[2] !== 0x4c ||
    header[3] !== 0x46 ||
    (header[4] !== 1 && header[4] !== 2) ||
    (header[5] !== 1 && header[5] !== 2)
  ) {
    return undefined;
  }
  const littleEndian = header[5] === 1;
  const machine = littleEndian
    ? (header[18] ?? 0) | ((header[19] ?? 0) << 8)
    : ((header[18] ?? 0) << 8) | (header[19] ?? 0);
  return { machine, bits: header[4] === 2 ? 64 : 32, littleEndian };
}

/** The architecture an ELF file is built for (from its header's `e_machine`), or `undefined` when it is not an x86_64 or aarch64 ELF. */
export function elfArch(header: Uint8Array): BootArch | undefined {
  return archOfMachine(elfHeader(header)?.machine);
}

function archOfMachine(machine: number | undefined): BootArch | undefined {
  return machine === EM_X86_64 ? 'x86_64' : machine === EM_AARCH64 ? 'aarch64' : undefined;
}

/** One entry of an archive as {@link initElfOf} needs it. */
export interface ArchiveFile {
  /** The whole `mode` (type bits included). */
  mode: number;
  /** The first bytes of a file ({@link INIT_HEAD_BYTES} of them, or all of a shorter one), or a symlink's target. */
  head: Uint8Array;
}

/** How many first bytes of a file {@link initElfOf} reads: an ELF header, or a `#!` line. */
export const INIT_HEAD_BYTES = 256;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** Parses the newc members starting at `at`; returns where the data after the trailer starts. */
function readCpio(data: Uint8Array, at: number, entries: Map<string, ArchiveFile>): number {
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
    entries.set(path, { mode, head: data.slice(body, body + Math.min(size, INIT_HEAD_BYTES)) });
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

const LZ4_LEGACY_MAGIC = 0x184c2102;
/** The largest block the kernel's legacy lz4 reader accepts: LZ4_compressBound(8 MiB). */
const LZ4_MAX_BLOCK = 8 * 1024 * 1024 + Math.floor((8 * 1024 * 1024) / 255) + 16;

/** Decodes one raw lz4 block (at most 8 MiB of output, as the legacy format allows). */
function unlz4Block(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 * 1024 * 1024);
  let i = 0;
  let o = 0;
  const length = (n: number): number => {
    if (n !== 15) return n;
    let byte: number;
    do {
      byte = src[i++] ?? 0;
      n += byte;
    } while (byte === 255 && i < src.length);
    return n;
  };
  while (i < src.length) {
    const token = src[i++] as number;
    const literals = length(token >> 4);
    if (o + literals > out.length || i + literals > src.length) throw new Error('bad lz4 block');
    out.set(src.subarray(i, i + literals), o);
    i += literals;
    o += literals;
    if (i >= src.length) break;
    const offset = (src[i] ?? 0) | ((src[i + 1] ?? 0) << 8);
    i += 2;
    const match = length(token & 15) + 4;
    if (offset === 0 || offset > o || o + match > out.length) throw new Error('bad lz4 block');
    // Byte by byte: a match may overlap what it copies (a run).
    for (let k = 0; k < match; k++, o++) out[o] = out[o - offset] as number;
  }
  return out.subarray(0, o);
}

/**
 * An lz4 member in the kernel's legacy format: blocks after the magic, each with its length; it
 * ends at a zero length word (the end mark, taken), at the end of the data, or at a word that
 * cannot be a block length (the next member). A repeated magic starts another stream.
 */
function lz4Member(data: Uint8Array, at: number): { out: Uint8Array; used: number } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const blocks: Uint8Array[] = [];
  let p = at + 4;
  while (p + 4 <= data.length) {
    const size = view.getUint32(p, true);
    if (size === LZ4_LEGACY_MAGIC) {
      p += 4;
      continue;
    }
    if (size === 0) {
      p += 4;
      break;
    }
    if (size > LZ4_MAX_BLOCK || p + 4 + size > data.length) break;
    try {
      blocks.push(unlz4Block(data.subarray(p + 4, p + 4 + size)));
    } catch {
      // Not a block after all: the next member starts here (written without an end mark).
      break;
    }
    p += 4 + size;
  }
  return { out: Buffer.concat(blocks), used: p - at };
}

/** Every entry of an initramfs: a sequence of members, each plain newc, gzip, zstd or lz4 (legacy), with zero padding between. */
function readInitramfs(data: Uint8Array, entries: Map<string, ArchiveFile>): void {
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0) {
      at++;
      continue;
    }
    if (data[at] === 0x1f && data[at + 1] === 0x8b) {
      const { out, used } = gunzipMember(data, at);
      readInitramfs(out, entries);
      at += used;
    } else if (data[at] === 0x28 && data[at + 1] === 0xb5 && data[at + 2] === 0x2f && data[at + 3] === 0xfd) {
      const { out, used } = zstdMember(data, at);
      readInitramfs(out, entries);
      at += used;
    } else if (data[at] === 0x02 && data[at + 1] === 0x21 && data[at + 2] === 0x4c && data[at + 3] === 0x18) {
      const { out, used } = lz4Member(data, at);
      readInitramfs(out, entries);
      at += used;
    } else {
      at = readCpio(data, at, entries);
    }
  }
}

function resolve(entries: ReadonlyMap<string, ArchiveFile>, path: string): ArchiveFile | undefined {
  let parts = path.split('/').filter((p) => p !== '' && p !== '.');
  for (let hops = 0; hops < 40; hops++) {
    let changed = false;
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const member = entries.get(prefix);
      if (member && (member.mode & S_IFMT) === S_IFLNK) {
        const target = new TextDecoder().decode(member.head);
        const base = target.startsWith('/') ? [] : parts.slice(0, i - 1);
        const next: string[] = [];
        for (const p of [...base, ...target.split('/'), ...parts.slice(i)]) {
          if (p === '..') next.pop();
          else if (p !== '' && p !== '.') next.push(p);
        }
        parts = next;
        changed = true;
        break;
      }
    }
    if (!changed) return entries.get(parts.join('/'));
  }
  return undefined;
}

/**
 * The ELF header of the program an initramfs starts, from its files by name (no leading `/`;
 * the last entry of a name, as the kernel leaves it): `/init` when that is an ELF file, else the
 * interpreter its `#!` line names (symlinks followed, up to four levels). `undefined` when it
 * cannot tell (no /init, no ELF at the end of the chain).
 */
export function initElfOf(files: ReadonlyMap<string, ArchiveFile>): ElfHeaderInfo | undefined {
  let file = '/init';
  for (let depth = 0; depth < 4; depth++) {
    const member = resolve(files, file);
    if (!member || (member.mode & S_IFMT) !== S_IFREG) return undefined;
    const elf = elfHeader(member.head);
    if (elf) return elf;
    const text = new TextDecoder().decode(member.head);
    const shebang = /^#!\s*(\S+)/.exec(text);
    if (!shebang?.[1]) return undefined;
    file = shebang[1];
  }
  return undefined;
}

/**
 * {@link initElfOf} an archive file, read whole into memory (plain newc, gzip, zstd and lz4
 * legacy members, concatenated as the kernel accepts them). `undefined` also for an unreadable
 * archive. (`@irb/builder` reads an archive as a stream for the same answer.)
 */
export async function initramfsInitElf(path: string): Promise<ElfHeaderInfo | undefined> {
  const entries = new Map<string, ArchiveFile>();
  try {
    readInitramfs(new Uint8Array(await readFile(path)), entries);
  } catch {
    if (entries.size === 0) return undefined;
  }
  return initElfOf(entries);
}

/**
 * The architecture an initramfs was built for: that of the program {@link initramfsInitElf}
 * finds. `undefined` when it cannot tell, or the program is for neither x86_64 nor aarch64.
 */
export async function initramfsArch(path: string): Promise<BootArch | undefined> {
  return archOfMachine((await initramfsInitElf(path))?.machine);
}
