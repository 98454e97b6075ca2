import { constants, createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { COMPRESSION_FORMATS, compress } from '@irb/compress';
import { memberJoint, trailerMember } from '@irb/compress/framing';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { sourceDateEpoch } from '@irb/cpio/epoch';
import { IrbError } from '@irb/errors';
import { encodeJobConfig, jobConfigPath } from '@irb/init';
// The light entry: `irb append` loads neither the layer indexing code nor the registry client.
import { createScratchRootfs, parseInjectSpec } from '@irb/layers/scratch';
import type { Keychain } from '@irb/registry';
import { archiveTree } from './archive-tree.ts';
import { writeFileAtomic } from './atomic.ts';
import { baseEnd } from './base-end.ts';
import { monotonicMs } from './clock.ts';
import type { BuildModules } from './kernel-modules.ts';
import { blameInject, placeEntries } from './place.ts';
import {
  hasOverrides,
  modulesRequested,
  netValueOf,
  type RunOptions,
  runOverridesOf,
} from './run-options.ts';
import { summarizedStream } from './summarized-stream.ts';
import type { InitramfsCompression } from './types.ts';

/**
 * Options of {@link appendOverlay}. The program overrides (`entrypoint`, `cmd`, `env`, `workdir`,
 * `user`) and `net` go into a job file (`/irb/job.d/<BASE's size>.conf`) that BASE's generated
 * init applies at boot; `kernelModules` + `modules` add a modules member before the new member,
 * and the job file lists them for the init to load.
 */
export interface AppendOverlayOptions extends RunOptions {
  /** A host file to put at `/init` (0755, root). Default: none, BASE's /init stays. */
  init?: string;
  /**
   * Where the kernel modules come from (see `InitramfsBuilderOptions.kernelModules`): a
   * `/lib/modules/<release>` directory, a kernel `.deb`, or an image. Needs `modules`.
   */
  kernelModules?: string;
  /** Modules to add and load at boot: names, aliases, presets (`net`, `vsock`, `console`, `blk`, `fs`). */
  modules?: readonly string[];
  /** For an image in `kernelModules`: its platform. Default `linux/amd64`. */
  platform?: string;
  /** For an image in `kernelModules` (see the builder's options). */
  keychains?: readonly Keychain[];
  insecureRegistries?: readonly string[];
  mirrors?: Readonly<Record<string, readonly string[]>>;
  /**
   * Compression of the new member. Default: BASE's (that of its first member; `none` for a plain
   * CPIO BASE). The kernel reads a different compression for each member.
   */
  compression?: InitramfsCompression;
  /** gzip 1–9 (default 6), zstd 1–19 (default 3). */
  level?: number;
  /** Compression threads. Default: all cores. The output does not depend on it. */
  threads?: number;
  /** Mtime of the new entries (seconds). Default `$SOURCE_DATE_EPOCH`, else 0. */
  sourceDateEpoch?: number;
  /**
   * Write the result to this file (atomically: temporary file, fsync, rename; a device or FIFO is
   * written in place) and resolve to the summary. Default: return the bytes as a stream.
   */
  output?: string;
  /**
   * Blob cache directory; what append knows of BASE (its tree, see below) is kept in the output
   * cache beside it. Default `$IRB_CACHE_DIR`, else the XDG cache dir, as for a build.
   */
  cacheDir?: string;
  /** `false`: read BASE's tree every time and store nothing. Default `true`. */
  cache?: boolean;
  signal?: AbortSignal;
}

/** What {@link appendOverlay} wrote. */
export interface AppendSummary {
  /** The output file, `-` for a stream. */
  output: string;
  /** BASE as given. */
  base: string;
  /** Bytes of BASE copied unchanged: all of it but its trailer member, when it ends with one. */
  baseBytes: number;
  /** Compression of the new member. */
  compression: InitramfsCompression;
  /** Records in the new members (the modules member's included). */
  entries: number;
  /** The modules member appended, when `modules` asked for one. */
  modules?: { release: string; key: string; names: string[]; loadList: string[] };
  /** The job file the new member carries (the overrides, `net`, the modules to load). */
  job?: string;
  /** Bytes of the new member, with what goes before it (if anything) and the trailer member after it. */
  memberBytes: number;
  /** Bytes of the whole output. */
  compressedBytes: number;
  durationMs: number;
}

/** The appended archive as a stream; `summary` resolves after the last byte was read. */
export interface AppendStream extends AsyncIterable<Uint8Array> {
  readonly summary: Promise<AppendSummary>;
}

/**
 * Writes BASE followed by a new member holding `files` (`SRC:DEST` host files or directories) and
 * optionally `/init`; the bytes of BASE are copied unchanged (by the kernel,
 * `copy_file_range`/reflink, when writing a file), after a check of its first and last bytes that
 * it is an initramfs (CPIO, gzip, zstd or lz4 legacy) whose end is intact.
 *
 * The member is planned against BASE's tree, as a build plans its overlay against the image, so
 * the guest gets the same tree as from `build` with the same `inject`s: DEST is resolved through
 * BASE's symlinks (`/bin/x` on a merged-/usr BASE goes to `/usr/bin/x`), missing parents are
 * created (0755, root), a directory BASE has is never emitted again (that would rewrite its mode
 * and owner: `/tmp` keeps 1777), a file where BASE has a directory is refused
 * (`IRB_INJECT_DEST_INVALID`), and one name of a hard-linked file of BASE is replaced alone.
 * BASE's tree is read once per archive content (every member decoded) and kept in the output
 * cache (see archive-tree.ts): later appends onto the same unchanged file read only its first
 * bytes and a small cache entry.
 *
 * An archive irb wrote ends with a trailer member (see `@irb/compress/framing`): it is dropped,
 * and the new member and a new trailer member take its place, so GNU cpio, bsdtar and lsinitramfs
 * list BASE's entries and the new ones, as the kernel unpacks them. Between BASE and the member
 * goes only what a change of compression needs (`memberJoint`). A BASE that irb did not write in
 * this layout (an older irb's, another tool's) is kept whole, followed by 4 to 7 NUL bytes (they
 * end an lz4 member without end mark and align a plain member; the kernel skips them); the
 * standard tools then stop at BASE's first `TRAILER!!!`. A BASE whose end is provably broken is
 * refused (`IRB_INITRAMFS_CORRUPT`): see `baseEnd`.
 *
 * The member's device number is its offset in the output (major 1 + offset / 2^32, minor the
 * rest), so its hard links never meet those of an earlier member: irb's build members use major 0.
 */
export function appendOverlay(
  base: string,
  files: readonly string[],
  options: AppendOverlayOptions & { output: string },
): Promise<AppendSummary>;
export function appendOverlay(
  base: string,
  files: readonly string[],
  options?: AppendOverlayOptions,
): AppendStream;
export function appendOverlay(
  base: string,
  files: readonly string[],
  options: AppendOverlayOptions = {},
): AppendStream | Promise<AppendSummary> {
  const started = monotonicMs();
  if (options.output !== undefined) return appendToFile(base, files, options.output, options, started);
  const signal = options.signal;
  return summarizedStream<AppendSummary>(async function* (finish) {
    const plan = await planAppend(base, files, options);
    let baseBytes = 0;
    const kept = { end: plan.baseBytes - 1, ...(signal ? { signal } : {}) };
    if (plan.baseBytes > 0) {
      for await (const chunk of createReadStream(base, kept)) {
        baseBytes += (chunk as Uint8Array).byteLength;
        yield chunk as Uint8Array;
      }
    }
    if (baseBytes !== plan.baseBytes) {
      throw new IrbError(
        'IRB_INPUT_UNREADABLE',
        `${base} changed while irb read it; run again once nothing writes to it`,
      );
    }
    let memberBytes = 0;
    for await (const chunk of plan.member(baseBytes)) {
      memberBytes += chunk.byteLength;
      yield chunk;
    }
    finish(plan.summary('-', baseBytes, memberBytes, started));
  }, 'the append stream was not read to the end; read it fully');
}

async function appendToFile(
  base: string,
  files: readonly string[],
  output: string,
  options: AppendOverlayOptions,
  started: number,
): Promise<AppendSummary> {
  const plan = await planAppend(base, files, options);
  const signal = options.signal;
  const memberBytes = await writeFileAtomic(output, plan.member(plan.baseBytes), {
    prefixFile: base,
    prefixBytes: plan.baseBytes,
    ...(signal ? { signal } : {}),
  });
  return plan.summary(output, plan.baseBytes, memberBytes, started);
}

/** What BASE starts with, as far as appending goes. */
export type BaseFormat = InitramfsCompression;

/**
 * The format of BASE's first member from its first bytes: a plain newc/crc CPIO archive, gzip,
 * zstd or lz4 in the kernel's legacy format. Anything else is refused: it is not an initramfs, or
 * not one irb can vouch the kernel reads with another member after it.
 */
export async function baseFormat(base: string): Promise<{ format: BaseFormat; size: number }> {
  let head: Uint8Array;
  let size: number;
  try {
    const handle = await open(base, constants.O_RDONLY);
    try {
      const st = await handle.stat();
      if (!st.isFile()) {
        throw new IrbError(
          'IRB_INPUT_UNREADABLE',
          `${base} is not a file; give the path of an initramfs archive`,
        );
      }
      size = st.size;
      const buffer = new Uint8Array(8);
      const { bytesRead } = await handle.read(buffer, 0, 8, 0);
      head = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof IrbError) throw error;
    throw new IrbError(
      'IRB_INPUT_UNREADABLE',
      `cannot read ${base} (${(error as NodeJS.ErrnoException).code ?? 'error'}); check the path`,
      { cause: error },
    );
  }
  const b = (i: number) => head[i] ?? -1;
  const text = new TextDecoder().decode(head.subarray(0, 6));
  if (text === '070701' || text === '070702') return { format: 'none', size };
  if (b(0) === 0x1f && b(1) === 0x8b) return { format: 'gzip', size };
  if (b(0) === 0x28 && b(1) === 0xb5 && b(2) === 0x2f && b(3) === 0xfd) return { format: 'zstd', size };
  if (b(0) === 0x02 && b(1) === 0x21 && b(2) === 0x4c && b(3) === 0x18) return { format: 'lz4', size };
  const named: Array<[boolean, string]> = [
    [b(0) === 0xfd && b(1) === 0x37 && b(2) === 0x7a && b(3) === 0x58, 'xz'],
    [b(0) === 0x42 && b(1) === 0x5a && b(2) === 0x68, 'bzip2'],
    [b(0) === 0x04 && b(1) === 0x22 && b(2) === 0x4d && b(3) === 0x18, 'the lz4 frame format'],
    [b(0) === 0x89 && b(1) === 0x4c && b(2) === 0x5a && b(3) === 0x4f, 'lzo'],
    [b(0) === 0x5d && b(1) === 0x00 && b(2) === 0x00, 'lzma'],
  ];
  const known = named.find(([hit]) => hit)?.[1];
  if (known !== undefined) {
    throw new IrbError(
      'IRB_COMPRESSION_UNSUPPORTED',
      `${base} is compressed with ${known}; append works on plain CPIO, gzip, zstd and lz4 (legacy) archives, so rebuild it with one of those`,
    );
  }
  throw new IrbError(
    'IRB_INITRAMFS_CORRUPT',
    `${base} is not an initramfs (${size === 0 ? 'it is empty' : 'it starts with neither a CPIO header nor a compression the kernel reads'}); give an archive that irb build wrote`,
  );
}

interface AppendPlan {
  baseBytes: number;
  member(baseBytes: number): AsyncIterable<Uint8Array>;
  summary(output: string, baseBytes: number, memberBytes: number, started: number): AppendSummary;
}

async function planAppend(
  base: string,
  files: readonly string[],
  options: AppendOverlayOptions,
): Promise<AppendPlan> {
  const signal = options.signal;
  signal?.throwIfAborted();
  const compression = options.compression;
  if (compression !== undefined && !(COMPRESSION_FORMATS as readonly string[]).includes(compression)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `\`compression\` "${String(compression)}" is unknown; use ${COMPRESSION_FORMATS.join(', ')}`,
    );
  }
  const overrides = runOverridesOf(options);
  const net = netValueOf(options);
  const wantsModules = modulesRequested(options);
  const wantsJob = hasOverrides(overrides) || net !== undefined || wantsModules;
  if (files.length === 0 && options.init === undefined && !wantsJob) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      'nothing to append; give files to `inject`, an `init`, modules, a network or program overrides',
    );
  }
  if (options.init !== undefined && (hasOverrides(overrides) || net !== undefined)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      "the program overrides and `net` go into a job file that irb's generated /init applies, and `init` replaces that init; keep only one of them",
    );
  }
  const { format, size } = await baseFormat(base);
  const end = await baseEnd(base, format, size);
  const format2 = compression ?? format;
  const epoch = sourceDateEpoch(options.sourceDateEpoch);
  const scratch = createScratchRootfs(epoch !== undefined ? { sourceDateEpoch: epoch } : {});
  const injects: Array<{ spec: string; dest: string }> = [];
  for (const spec of files) {
    const { src, dest } = parseInjectSpec(spec);
    try {
      await stat(src);
    } catch (error) {
      throw new IrbError(
        'IRB_INJECT_SOURCE_UNREADABLE',
        `\`inject\` ${spec}: ${src} ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'cannot be read'}; check the path`,
        { cause: error },
      );
    }
    await scratch.injectHostPath(src, dest);
    injects.push({ spec, dest });
  }
  if (options.init !== undefined) {
    const st = await stat(options.init).catch(() => undefined);
    if (!st?.isFile()) {
      throw new IrbError(
        'IRB_INPUT_UNREADABLE',
        `\`init\` ${options.init}: not a readable regular file; check the path`,
      );
    }
    scratch.inject('/init', { hostPath: options.init }, { mode: 0o755, uid: 0, gid: 0 });
  }
  // Placed over BASE's tree exactly as a build places its overlay over the image: the same guest
  // tree for the same `inject`s (parents created, BASE's directories and symlinks kept).
  const tree = await archiveTree(base, {
    ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
    ...(options.cache !== undefined ? { cache: options.cache } : {}),
    ...(signal ? { signal } : {}),
  });
  // Job files are applied by irb's generated init (static, or the script's helper), which keeps
  // its parameters under /irb: without that directory nobody would read one.
  if (wantsJob && tree('irb')?.type !== 'directory') {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `${base} has no /irb directory, so its /init is not irb's generated init, which applies job files; program overrides, \`net\` and \`modules\` need an archive irb built with its init`,
    );
  }
  const mods = wantsModules ? await appendedModules(options) : undefined;
  let job: string | undefined;
  try {
    if (wantsJob) {
      job = jobConfigPath(end.keep);
      const bytes = encodeJobConfig({
        ...overrides,
        ...(mods ? { modules: mods.loadList } : {}),
        ...(net !== undefined ? { net } : {}),
      });
      // Root only, as /irb/init.conf: a job's environment may hold secrets.
      scratch.inject(job, { bytes }, { mode: 0o600, uid: 0, gid: 0 });
    }
  } catch (error) {
    await mods?.close();
    throw error;
  }
  const placed = await placeEntries(scratch.entries(signal ? { signal } : {}), tree, epoch ?? 0, (key) =>
    key === 'init' && options.init !== undefined ? '`init` (the /init file)' : blameInject(injects, key),
  ).catch(async (error: unknown) => {
    await mods?.close();
    throw error;
  });
  let records = placed.entries.length;
  async function* counted(source: AsyncIterable<CpioEntry>): AsyncGenerator<CpioEntry> {
    for await (const entry of source) {
      records++;
      yield entry;
    }
  }
  async function* entries(): AsyncGenerator<CpioEntry> {
    yield* placed.entries;
  }
  // One member at `offset`: its device number is its offset in the output, so its hard links
  // never meet an earlier member's (irb's build members use major 0).
  async function* packed(source: AsyncIterable<CpioEntry>, offset: number): AsyncGenerator<Uint8Array> {
    const device = { major: 1 + Math.floor(offset / 2 ** 32), minor: offset % 2 ** 32 };
    const cpio = packCpio(source, { trailer: false, device, ...(signal ? { signal } : {}) });
    if (format2 === 'none') yield* cpio;
    else {
      // All cores by default: a short gzip member deflates its blocks on libuv's pool (no worker
      // starts), zstd reuses its context across calls (see @irb/compress).
      yield* compress(cpio, {
        format: format2,
        ...(options.level !== undefined ? { level: options.level } : {}),
        ...(options.threads !== undefined ? { threads: options.threads } : {}),
        ...(signal ? { signal } : {}),
      });
    }
  }
  async function* member(baseBytes: number): AsyncGenerator<Uint8Array> {
    try {
      // After an unknown end: a zero word ends an lz4 member without end mark, more NULs align.
      const joint =
        end.last !== undefined
          ? memberJoint(end.last, format2, baseBytes)
          : new Uint8Array(4 + ((4 - (baseBytes % 4)) % 4));
      if (joint.length > 0) yield joint;
      let offset = baseBytes + joint.length;
      if (mods) {
        // The modules member first, as in a build: image | modules | overlay.
        for await (const chunk of packed(counted(mods.entries(signal)), offset)) {
          offset += chunk.byteLength;
          yield chunk;
        }
      }
      yield* packed(entries(), offset);
      yield trailerMember(format2);
    } finally {
      await mods?.close();
    }
  }
  return {
    baseBytes: end.keep,
    member,
    summary: (output, baseBytes, memberBytes, started) => ({
      output,
      base,
      baseBytes,
      compression: format2,
      entries: records,
      ...(mods
        ? { modules: { release: mods.release, key: mods.key, names: mods.names, loadList: mods.loadList } }
        : {}),
      ...(job !== undefined ? { job } : {}),
      memberBytes,
      compressedBytes: baseBytes + memberBytes,
      durationMs: Math.round(monotonicMs() - started),
    }),
  };
}

/**
 * The modules an append adds, resolved as a build resolves them (and from the same cache): the
 * kernel module code and, for an image source, the registry client load only here.
 */
async function appendedModules(options: AppendOverlayOptions): Promise<BuildModules | undefined> {
  const [{ resolveBuildModules }, { sourceOptions }] = await Promise.all([
    import('./kernel-modules.ts'),
    import('./source-options.ts'),
  ]);
  return resolveBuildModules(options, () => sourceOptions(options));
}
