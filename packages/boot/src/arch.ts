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

/** The architecture an ELF file is built for (from its header's `e_machine`), or `undefined` when it is not an x86_64 or aarch64 ELF. */
export function elfArch(header: Uint8Array): BootArch | undefined {
  if (
    header.length < 20 ||
    header[0] !== 0x7f ||
    header[1] !== 0x45 ||
    header[2] !== 0x4c ||
    header[3] !== 0x46
  ) {
    return undefined;
  }
  const little = header[5] === 1;
  const machine = little
    ? (header[18] ?? 0) | ((header[19] ?? 0) << 8)
    : ((header[18] ?? 0) << 8) | (header[19] ?? 0);
  return machine === EM_X86_64 ? 'x86_64' : machine === EM_AARCH64 ? 'aarch64' : undefined;
}

interface Member {
  mode: number;
  /** The first bytes of a file, or a symlink's target. */
  head: Uint8Array;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const HEAD_BYTES = 256;

/** Parses the newc members starting at `at`; returns where the data after the trailer starts. */
function readCpio(data: Uint8Array, at: number, entries: Map<string, Member>): number {
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
    entries.set(path, { mode, head: data.slice(body, body + Math.min(size, HEAD_BYTES)) });
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

/** Every entry of an initramfs: a sequence of members, each plain newc, gzip or zstd, with zero padding between. */
function readInitramfs(data: Uint8Array, entries: Map<string, Member>): void {
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
    } else {
      at = readCpio(data, at, entries);
    }
  }
}

function resolve(entries: Map<string, Member>, path: string): Member | undefined {
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
 * The architecture an initramfs was built for: that of its `/init` when it is an ELF file, or of
 * the interpreter its `#!` line names. Reads the whole archive into memory (plain newc, gzip and
 * zstd members, concatenated as the kernel accepts them; later entries replace earlier ones).
 * Returns `undefined` when it cannot tell (no /init, lz4, an unknown architecture).
 */
export async function initramfsArch(path: string): Promise<BootArch | undefined> {
  const entries = new Map<string, Member>();
  try {
    readInitramfs(new Uint8Array(await readFile(path)), entries);
  } catch {
    if (entries.size === 0) return undefined;
  }
  let file = '/init';
  for (let depth = 0; depth < 4; depth++) {
    const member = resolve(entries, file);
    if (!member || (member.mode & S_IFMT) !== S_IFREG) return undefined;
    const arch = elfArch(member.head);
    if (arch) return arch;
    const text = new TextDecoder().decode(member.head);
    const shebang = /^#!\s*(\S+)/.exec(text);
    if (!shebang?.[1]) return undefined;
    file = shebang[1];
  }
  return undefined;
}
