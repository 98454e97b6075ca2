import type { ElfHeaderInfo } from '@irb/boot/arch';

/*
 * ELF machines in OCI's words (GOARCH, as image configs and platforms name architectures): what
 * `pushInitramfs` labels an archive with, and what a build checks the image's program against.
 */

/** The OCI architecture of an ELF program (`amd64`, `arm64`, …), or `undefined` for a machine irb does not name. */
export function ociArchitecture(elf: ElfHeaderInfo): string | undefined {
  const { machine, bits, littleEndian } = elf;
  switch (machine) {
    case 62:
      // 32-bit class with EM_X86_64 is the x32 ABI, which no image platform names.
      return bits === 64 ? 'amd64' : undefined;
    case 3:
      return '386';
    case 183:
      return 'arm64';
    case 40:
      return 'arm';
    case 243:
      return bits === 64 ? 'riscv64' : undefined;
    case 21:
      return littleEndian ? 'ppc64le' : 'ppc64';
    case 22:
      return bits === 64 ? 's390x' : undefined;
    case 258:
      return 'loong64';
    case 8:
      return bits === 64 ? (littleEndian ? 'mips64le' : 'mips64') : littleEndian ? 'mipsle' : 'mips';
    default:
      return undefined;
  }
}

/** 32-bit programs a 64-bit kernel runs in compat mode (Debian's kernels have it on). */
const COMPAT: Readonly<Record<string, string>> = { amd64: '386', arm64: 'arm' };

/**
 * Whether a kernel for the OCI `architecture` runs the ELF program: one built for it, or for
 * the 32-bit architecture it runs in compat mode (386 on amd64, arm on arm64). `undefined` when
 * the program's machine has no OCI name (irb cannot tell).
 */
export function runsOn(elf: ElfHeaderInfo, architecture: string): boolean | undefined {
  const own = ociArchitecture(elf);
  if (own === undefined) return undefined;
  return own === architecture || COMPAT[architecture] === own;
}
