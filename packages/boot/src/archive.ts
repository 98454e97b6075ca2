import { createReadStream } from 'node:fs';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import {
  type ArchiveFile,
  archOfMachine,
  type BootArch,
  type ElfHeaderInfo,
  INIT_HEAD_BYTES,
  initElfOf,
} from './arch.ts';

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

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const MODULE_PATH = /^(?:usr\/)?lib\/modules\/([^/]+)\/(?:.+\/)?([^/]+)\.ko(?:\.gz|\.xz|\.zst)?$/;
const VERMAGIC = new TextEncoder().encode('vermagic=');

/** The `vermagic=` string of a module's `.modinfo`, decompressing `.ko.gz` and `.ko.zst`. */
function vermagicOf(path: string, body: Uint8Array): string | undefined {
  let elf: Uint8Array;
  try {
    if (path.endsWith('.gz')) elf = gunzipSync(body);
    else if (path.endsWith('.zst')) elf = zstdDecompressSync(body);
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

/** The first {@link INIT_HEAD_BYTES} of a body, reading no further. */
async function headOf(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const head = new Uint8Array(INIT_HEAD_BYTES);
  let length = 0;
  for await (const chunk of body) {
    const take = Math.min(chunk.length, INIT_HEAD_BYTES - length);
    head.set(chunk.subarray(0, take), length);
    length += take;
    if (length === INIT_HEAD_BYTES) break;
  }
  return head.slice(0, length);
}

/** One entry of an archive as {@link InitramfsInspector} reads it (a `readCpio` entry of `@irb/cpio`). */
export interface InspectedEntry {
  name: string;
  mode: number;
  targetBytes?: Uint8Array;
  body: AsyncIterable<Uint8Array>;
  bytes(): Promise<Uint8Array>;
}

/** A fold over an archive's entries that ends in its {@link InitramfsInfo}. */
export interface InitramfsInspector {
  /** Reads what it needs of one entry (the head of a file, a module whole), in archive order. */
  add(entry: InspectedEntry): Promise<void>;
  /** What the entries added so far say. */
  result(): InitramfsInfo;
}

/**
 * What {@link inspectInitramfs} does to each entry, for a caller that reads the archive itself
 * for other reasons (`@irb/builder` measures it in the same pass and hands the result to
 * `bootInitramfs` as `initramfsInfo`, so `irb boot` reads the archive once).
 */
export function createInitramfsInspector(): InitramfsInspector {
  const files = new Map<string, ArchiveFile>();
  const modules = new Map<string, ArchiveModule>();
  return {
    async add(entry) {
      const name = entry.name.replace(/^(\.?\/)+/, '');
      const regular = (entry.mode & S_IFMT) === S_IFREG;
      const module = regular ? MODULE_PATH.exec(name) : null;
      // A module is read whole for its .modinfo (an .xz one is not read), an executable up to its
      // head. Only executables and symlinks are kept (the kernel execs nothing else as /init or
      // its interpreter), so memory does not grow with the archive's other files.
      const body = module && !name.endsWith('.xz') ? await entry.bytes() : undefined;
      const executable = regular && (entry.mode & 0o111) !== 0;
      if (executable) {
        files.set(name, {
          mode: entry.mode,
          head: body ? body.slice(0, INIT_HEAD_BYTES) : await headOf(entry.body),
        });
      } else if ((entry.mode & S_IFMT) === S_IFLNK) {
        files.set(name, { mode: entry.mode, head: entry.targetBytes ?? new Uint8Array(0) });
      } else files.delete(name);
      if (module) {
        const vermagic = body && vermagicOf(name, body);
        modules.set(name, {
          path: name,
          release: module[1] as string,
          name: (module[2] as string).replaceAll('-', '_'),
          ...(vermagic !== undefined ? { vermagic } : {}),
        });
      } else modules.delete(name);
    },
    result() {
      const initElf = initElfOf(files);
      const arch = archOfMachine(initElf?.machine);
      return {
        ...(arch ? { arch } : {}),
        ...(initElf ? { initElf } : {}),
        modules: [...modules.values()],
      };
    },
  };
}

/**
 * Reads what `bootInitramfs` checks before QEMU starts: the architecture of the archive's `/init`
 * and the kernel modules it carries (with their `vermagic`). Reads the archive as a stream (plain
 * newc, gzip, zstd and lz4 legacy members, concatenated as the kernel accepts them, through
 * `decodeInitramfs` of `@irb/compress`; later entries replace earlier ones): memory holds the
 * first bytes of each executable and one module at a time. A damaged archive gives what was read
 * before the damage.
 */
export async function inspectInitramfs(path: string): Promise<InitramfsInfo> {
  // Loaded here: a boot that does not read the archive does not load the decoders.
  const [{ decodeInitramfs }, { readCpio }] = await Promise.all([
    import('@irb/compress'),
    import('@irb/cpio'),
  ]);
  const inspector = createInitramfsInspector();
  try {
    const records = decodeInitramfs(createReadStream(path, { highWaterMark: 1 << 20 }), { label: path });
    // Checksums are not what is asked here; the kernel checks them when it unpacks.
    for await (const entry of readCpio(records, { verifyChecksum: false })) await inspector.add(entry);
  } catch {
    // What was read stands: the kernel reads up to the damage too.
  }
  return inspector.result();
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
 * (see {@link inspectInitramfs}); `undefined` when it cannot tell. (`@irb/builder` finds the same
 * answer in the pass that also measures the archive.)
 */
export async function initramfsInitElf(path: string): Promise<ElfHeaderInfo | undefined> {
  return (await inspectInitramfs(path)).initElf;
}
