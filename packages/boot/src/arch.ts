/** Guest architecture, as the kernel names it (`uname -m`). */
export type BootArch = 'x86_64' | 'aarch64';

/**
 * QEMU machine type: on x86_64 `microvm` (fast, minimal) or `pc` (boots reliably under TCG);
 * on aarch64 `virt` (the only one).
 */
export type BootMachine = 'microvm' | 'pc' | 'virt';
/** QEMU accelerator: `kvm` (hardware) or `tcg` (software emulation). */
export type BootAccel = 'kvm' | 'tcg';

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

/** The architecture of an ELF `e_machine`: x86_64, aarch64, or `undefined` for any other. */
export function archOfMachine(machine: number | undefined): BootArch | undefined {
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
