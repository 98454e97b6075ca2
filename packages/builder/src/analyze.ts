import { createHash } from 'node:crypto';
import { decodeInitramfs } from '@irb/compress';
import type { CpioReadEntry } from '@irb/cpio';
import { readCpio } from '@irb/cpio';
import { openArchive, readArchiveEntries } from './archive.ts';
import { InitramfsBuilder } from './builder.ts';
import { inspectImage } from './inspect.ts';
import { localesFromEnv, SLIM_PRESETS, type SlimContext, type SlimPreset, slimRemoves } from './slim.ts';
import type { InitramfsBuilderOptions } from './types.ts';

/** What a file is, for {@link ArchiveAnalysis.byKind}. */
export type FileKind =
  | 'executables'
  | 'shared libraries'
  | 'static libraries'
  | 'headers'
  | 'python sources'
  | 'python bytecode'
  | 'javascript'
  | 'docs'
  | 'locales'
  | 'package caches'
  | 'other';

/** Bytes and file count of one group. */
export interface SizeGroup {
  /** The group's name: a directory (`/usr/lib`), a kind, or a preset. */
  name: string;
  bytes: number;
  files: number;
}

/** Identical regular files that are separate inodes (hard-linking them would save `wastedBytes`). */
export interface DuplicateGroup {
  /** The size of each copy. */
  bytes: number;
  /** Every path with this content (one per inode), sorted. */
  paths: string[];
  /** `bytes × (copies - 1)`. */
  wastedBytes: number;
}

/** The result of {@link analyzeArchive} / {@link analyzeEntries}. */
export interface ArchiveAnalysis {
  /** Sum of the regular files' sizes (each inode once): what the unpacked root holds. */
  totalBytes: number;
  files: number;
  directories: number;
  symlinks: number;
  /** Other entries: devices, FIFOs, sockets. */
  other: number;
  /** Sizes by top directory (`/usr/lib`, `/usr/share`, `/etc`…: two levels under /usr, /var and /opt), largest first. */
  byDirectory: SizeGroup[];
  /** Sizes by kind of file, largest first. */
  byKind: SizeGroup[];
  /** The largest files, largest first. */
  largest: { path: string; bytes: number; kind: FileKind }[];
  /** Identical files that are not hard links of each other, most wasted first. */
  duplicates: DuplicateGroup[];
  /** Bytes all duplicates waste together. */
  duplicateBytes: number;
  /** What each slim preset would remove from this archive. */
  presets: (SizeGroup & { name: SlimPreset })[];
}

/** Options of {@link analyzeArchive} and {@link analyzeEntries}. */
export interface AnalyzeOptions {
  /** How many of the largest files to list. Default 15. */
  top?: number;
  /** How many duplicate groups to list. Default 15. */
  topDuplicates?: number;
  /** Locales the image's Env names, for the `locales` preset. Default none (keep C/POSIX only). */
  locales?: readonly string[];
  signal?: AbortSignal;
}

const ELF = [0x7f, 0x45, 0x4c, 0x46];

/** The kind of a regular file from its path and first bytes. */
export function fileKind(path: string, head: Uint8Array): FileKind {
  if (/^\/usr\/share\/(doc|man|info)\//.test(path)) return 'docs';
  if (/^\/usr\/(share\/locale|lib\/locale|share\/i18n)\//.test(path)) return 'locales';
  if (/^\/(var\/cache|var\/lib\/apt\/lists|root\/\.cache|root\/\.npm)\//.test(path)) return 'package caches';
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (ELF.every((b, i) => head[i] === b)) {
    return /\.so(\.[0-9.]+)?$/.test(base) || /\.so\./.test(base) ? 'shared libraries' : 'executables';
  }
  if (base.endsWith('.a')) return 'static libraries';
  if (/\.(h|hh|hpp|hxx)$/.test(base) || path.startsWith('/usr/include/')) return 'headers';
  if (base.endsWith('.py')) return 'python sources';
  if (/\.py[co]$/.test(base)) return 'python bytecode';
  if (/\.(js|mjs|cjs|node)$/.test(base)) return 'javascript';
  return 'other';
}

function directoryGroup(path: string): string {
  const parts = path.split('/').filter(Boolean);
  if (parts.length <= 1) return '/';
  const first = parts[0] as string;
  if ((first === 'usr' || first === 'var' || first === 'opt') && parts.length > 2)
    return `/${first}/${parts[1]}`;
  return `/${first}`;
}

function add(map: Map<string, SizeGroup>, name: string, bytes: number): void {
  const group = map.get(name) ?? { name, bytes: 0, files: 0 };
  group.bytes += bytes;
  group.files += 1;
  map.set(name, group);
}

function sorted(map: Map<string, SizeGroup>): SizeGroup[] {
  return [...map.values()].sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
}

/**
 * Analyses CPIO entries: where the bytes are, what kinds of files hold them, the largest files,
 * identical files that are separate inodes, and what each slim preset would save. Reads every
 * body once (to hash it); holds metadata only.
 */
export async function analyzeEntries(
  entries: AsyncIterable<CpioReadEntry>,
  options: AnalyzeOptions = {},
): Promise<ArchiveAnalysis> {
  const top = options.top ?? 15;
  const context: SlimContext = { locales: options.locales ?? [] };
  const byDirectory = new Map<string, SizeGroup>();
  const byKind = new Map<string, SizeGroup>();
  const presets = new Map<string, SizeGroup>(SLIM_PRESETS.map((p) => [p, { name: p, bytes: 0, files: 0 }]));
  const largest: { path: string; bytes: number; kind: FileKind }[] = [];
  const byContent = new Map<string, { bytes: number; paths: string[] }>();
  // Hard-linked names share (archive, device, ino), as the kernel keys them: the archive counts
  // trailers (the kernel's table empties at each), and irb's members, written without trailers
  // between them, each have a device number of their own. The body comes with the last name.
  const linkNames = new Map<string, string[]>();
  const result = { totalBytes: 0, files: 0, directories: 0, symlinks: 0, other: 0 };

  for await (const entry of entries) {
    options.signal?.throwIfAborted();
    if (entry.name === 'TRAILER!!!') continue;
    const path = `/${entry.name.replace(/^\.?\/*/, '')}`.replace(/\/$/, '') || '/';
    if (entry.type === 'directory') {
      result.directories++;
      for (const preset of SLIM_PRESETS) {
        if (slimRemoves(preset, path, true, context)) (presets.get(preset) as SizeGroup).files++;
      }
      continue;
    }
    if (entry.type === 'symlink') {
      result.symlinks++;
      continue;
    }
    if (entry.type !== 'file') {
      result.other++;
      continue;
    }
    const inode = `${entry.member}:${entry.devMajor}:${entry.devMinor}:${entry.ino}`;
    if (entry.nlink > 1 && entry.fileSize === 0) {
      // A further name of a hard-linked file whose body comes later (or an empty file).
      const names = linkNames.get(inode) ?? [];
      names.push(path);
      linkNames.set(inode, names);
      continue;
    }
    const names = entry.nlink > 1 ? [...(linkNames.get(inode) ?? []), path] : [path];
    linkNames.delete(inode);
    const hash = createHash('sha256');
    let head: Uint8Array = new Uint8Array(0);
    for await (const chunk of entry.body) {
      if (head.length < 4)
        head = head.length === 0 ? chunk.subarray(0, 4) : new Uint8Array([...head, ...chunk.subarray(0, 4)]);
      hash.update(chunk);
    }
    const bytes = entry.fileSize;
    const primary = names[0] as string;
    const kind = fileKind(primary, head);
    result.files++;
    result.totalBytes += bytes;
    add(byDirectory, directoryGroup(primary), bytes);
    add(byKind, kind, bytes);
    for (const preset of SLIM_PRESETS) {
      // A hard-linked file is freed only when the preset removes every name of it.
      if (names.every((n) => slimRemoves(preset, n, false, context))) add(presets, preset, bytes);
    }
    largest.push({ path: primary, bytes, kind });
    if (largest.length > top * 4) {
      largest.sort((a, b) => b.bytes - a.bytes);
      largest.length = top;
    }
    if (bytes > 0) {
      const key = `${bytes}:${hash.digest('hex')}`;
      const group = byContent.get(key) ?? { bytes, paths: [] };
      group.paths.push(primary);
      byContent.set(key, group);
    }
  }
  // Hard-linked names whose body never came (all empty): count the inode once.
  for (const names of linkNames.values()) {
    result.files++;
    add(byKind, 'other', 0);
    add(byDirectory, directoryGroup(names[0] as string), 0);
  }

  largest.sort((a, b) => b.bytes - a.bytes || a.path.localeCompare(b.path));
  largest.length = Math.min(largest.length, top);
  const duplicates = [...byContent.values()]
    .filter((g) => g.paths.length > 1)
    .map((g) => ({ bytes: g.bytes, paths: g.paths.sort(), wastedBytes: g.bytes * (g.paths.length - 1) }))
    .sort(
      (a, b) => b.wastedBytes - a.wastedBytes || (a.paths[0] as string).localeCompare(b.paths[0] as string),
    );
  const duplicateBytes = duplicates.reduce((sum, g) => sum + g.wastedBytes, 0);
  return {
    ...result,
    byDirectory: sorted(byDirectory),
    byKind: sorted(byKind),
    largest,
    duplicates: duplicates.slice(0, options.topDuplicates ?? 15),
    duplicateBytes,
    presets: SLIM_PRESETS.map((p) => presets.get(p) as SizeGroup & { name: SlimPreset }),
  };
}

/** Analyses an initramfs file (plain, gzip, zstd, concatenated members): see {@link analyzeEntries}. */
export async function analyzeArchive(path: string, options: AnalyzeOptions = {}): Promise<ArchiveAnalysis> {
  const { signal } = options;
  const data = decodeInitramfs(openArchive(path, signal), { label: path, ...(signal ? { signal } : {}) });
  return analyzeEntries(readArchiveEntries(data, path, signal), options);
}

/**
 * Analyses what `irb build` would put in the archive for an image (see {@link analyzeEntries}):
 * builds it uncompressed into the analysis, never to disk. The image's Env decides which
 * locales the `locales` preset keeps, unless `locales` is given.
 */
export async function analyzeImage(
  options: Omit<InitramfsBuilderOptions, 'compression' | 'level'> & AnalyzeOptions,
): Promise<ArchiveAnalysis> {
  const { top, topDuplicates, locales, ...build } = options;
  let wanted = locales;
  if (wanted === undefined) {
    const inspection = await inspectImage(build.image, build);
    wanted = localesFromEnv(inspection.config.Env ?? []);
  }
  const stream = new InitramfsBuilder({ ...build, compression: 'none' }).stream();
  const signal = build.signal;
  return analyzeEntries(readCpio(stream, signal ? { signal } : {}), {
    locales: wanted,
    ...(top !== undefined ? { top } : {}),
    ...(topDuplicates !== undefined ? { topDuplicates } : {}),
    ...(signal ? { signal } : {}),
  });
}
