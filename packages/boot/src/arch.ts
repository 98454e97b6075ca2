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
