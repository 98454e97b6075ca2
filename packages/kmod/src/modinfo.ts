import { IrbError } from '@irb/errors';
import { parseSoftdepWords, type SoftDeps } from './indexes.ts';
import { normalizeAlias, normalizeModuleName } from './names.ts';

/** What a module's `.modinfo` section says about it (the fields depmod and modprobe read). */
export interface ModuleInfo {
  /** `name=`, the module's KBUILD_MODNAME (present since Linux 4.x). */
  name?: string;
  /** `vermagic=`, e.g. `6.1.0-57-amd64 SMP preempt mod_unload modversions `. */
  vermagic?: string;
  /** `depends=`: names of the modules whose symbols it uses, normalized. */
  depends: string[];
  /** `alias=` patterns, normalized. */
  aliases: string[];
  /** `softdep=` fields, merged. */
  softdeps: SoftDeps;
}

/** The kernel release of a vermagic string: its first word. */
export function releaseOfVermagic(vermagic: string): string {
  return vermagic.trim().split(/\s+/)[0] ?? '';
}

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];

function invalid(label: string, what: string): IrbError {
  return new IrbError(
    'IRB_KMOD_MODULE_INVALID',
    `${label}: ${what}; the module file is damaged or not a kernel module — take the module tree from the kernel's own package`,
  );
}

/**
 * The raw `key=value` records of a kernel module's `.modinfo` ELF section, in order. Reads ELF32
 * and ELF64 of either byte order (section headers only; nothing is relocated or executed).
 *
 * @throws IrbError `IRB_KMOD_MODULE_INVALID` when the bytes are not ELF or have no `.modinfo`.
 */
export function modinfoRecords(bytes: Uint8Array, label: string): [string, string][] {
  if (bytes.length < 64 || ELF_MAGIC.some((b, i) => bytes[i] !== b)) throw invalid(label, 'not an ELF file');
  const is64 = bytes[4] === 2;
  const little = bytes[5] !== 2;
  if (bytes[4] !== 1 && !is64) throw invalid(label, 'unknown ELF class');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (at: number) => view.getUint16(at, little);
  const u32 = (at: number) => view.getUint32(at, little);
  const word = (at: number) => (is64 ? Number(view.getBigUint64(at, little)) : u32(at));
  const shoff = word(is64 ? 0x28 : 0x20);
  const shentsize = u16(is64 ? 0x3a : 0x2e);
  let shnum = u16(is64 ? 0x3c : 0x30);
  let shstrndx = u16(is64 ? 0x3e : 0x32);
  const header = (index: number) => {
    const at = shoff + index * shentsize;
    if (shentsize < (is64 ? 64 : 40) || at + shentsize > bytes.length)
      throw invalid(label, 'section headers out of bounds');
    return {
      name: u32(at),
      offset: word(at + (is64 ? 24 : 16)),
      size: word(at + (is64 ? 32 : 20)),
      link: u32(at + (is64 ? 40 : 24)),
    };
  };
  if (shoff === 0) throw invalid(label, 'no section headers');
  // More than 0xff00 sections: the real numbers sit in section 0 (ELF's extended numbering).
  if (shnum === 0) shnum = header(0).size;
  if (shstrndx === 0xffff) shstrndx = header(0).link;
  const strtab = header(shstrndx);
  if (strtab.offset + strtab.size > bytes.length) throw invalid(label, 'section names out of bounds');
  const target = new TextEncoder().encode('.modinfo\0');
  for (let i = 0; i < shnum; i++) {
    const section = header(i);
    const nameAt = strtab.offset + section.name;
    if (nameAt + target.length > strtab.offset + strtab.size) continue;
    if (!target.every((b, k) => bytes[nameAt + k] === b)) continue;
    if (section.offset + section.size > bytes.length) throw invalid(label, '.modinfo out of bounds');
    const text = new TextDecoder().decode(bytes.subarray(section.offset, section.offset + section.size));
    const records: [string, string][] = [];
    for (const record of text.split('\0')) {
      const eq = record.indexOf('=');
      if (eq > 0) records.push([record.slice(0, eq), record.slice(eq + 1)]);
    }
    return records;
  }
  throw invalid(label, 'no .modinfo section');
}

/**
 * What a kernel module's `.modinfo` says: name, vermagic, dependencies, aliases, soft
 * dependencies (the fields modpost writes and depmod indexes).
 *
 * @throws IrbError `IRB_KMOD_MODULE_INVALID` when the bytes are not a kernel module.
 */
export function readModinfo(bytes: Uint8Array, label: string): ModuleInfo {
  const info: ModuleInfo = { depends: [], aliases: [], softdeps: { pre: [], post: [] } };
  for (const [key, value] of modinfoRecords(bytes, label)) {
    switch (key) {
      case 'name':
        info.name = normalizeModuleName(value);
        break;
      case 'vermagic':
        info.vermagic = value;
        break;
      case 'depends':
        for (const dep of value.split(',')) if (dep !== '') info.depends.push(normalizeModuleName(dep));
        break;
      case 'alias':
        info.aliases.push(normalizeAlias(value));
        break;
      case 'softdep':
        parseSoftdepWords(value.split(/\s+/), info.softdeps);
        break;
    }
  }
  return info;
}
