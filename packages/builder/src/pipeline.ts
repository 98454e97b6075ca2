import { createReadStream } from 'node:fs';
import { IRB_ARCHIVE_NAME, TRAILER_RECORD, trailerMember } from '@irb/compress/framing';
import type { CpioEntry } from '@irb/cpio';
import { monotonicMs } from './clock.ts';
import { recommendGuestMemory, tmpfsFootprint } from './memory.ts';
import type { BuildProgressEvent, BuildSummary, InitramfsCompression } from './types.ts';

/** Options of {@link createBuildPipeline}. */
export interface BuildPipelineOptions {
  /**
   * The archive's members, in order. Each is packed as CPIO records without a `TRAILER!!!` and
   * compressed on its own, and the archive ends with the trailer member (`trailerMember` of
   * `@irb/compress/framing`): the kernel unpacks the members one after the other, and gzip, zstd
   * or lz4 -dc piped into GNU cpio, bsdtar and lsinitramfs read them as one archive. The
   * builder passes a base member (the image's files), a modules member when the build has kernel
   * modules, and an overlay member (injected files and /init).
   *
   * Without trailers between them, the kernel's hard-link table (and GNU cpio's) spans the
   * members, keyed by (device, inode): member `n` (counting `prefix` as member 0) is packed with
   * device 0:`n`, so hard links of two members never meet, and a member's bytes depend only on
   * its entries and its place, which the output cache relies on.
   */
  members: ReadonlyArray<AsyncIterable<CpioEntry> | PipelineMember | StoredMember>;
  /**
   * A member that comes before `data`'s bytes and that the caller writes itself (a base member
   * copied from the output cache): its counts go into the summary, and it is member 0.
   */
  prefix?: MemberStats;
  compression: InitramfsCompression;
  level?: number;
  threads?: number;
  signal?: AbortSignal;
  /** An estimate of the CPIO bytes, for `pack` progress before the end is known. */
  expectedBytes: number;
  onProgress?: (event: BuildProgressEvent) => void;
  /** The summary fields that do not come from the bytes themselves. */
  facts: Omit<
    BuildSummary,
    | 'output'
    | 'compression'
    | 'entries'
    | 'uncompressedBytes'
    | 'compressedBytes'
    | 'unpackedBytes'
    | 'recommendedMemoryMiB'
    | 'durationMs'
  >;
  /** `monotonicMs()` when the build started, for `durationMs`. */
  started: number;
}

/** What one member held: what the summary counts. */
export interface MemberStats {
  /** Archive records (hard-link names included). */
  records: number;
  /** tmpfs footprint of its files. */
  unpackedBytes: number;
  /** CPIO bytes before compression. */
  cpioBytes: number;
  /** Bytes of the member as written. */
  compressedBytes: number;
}

/** A member whose compressed bytes are also handed to `sink` (the output cache keeps the base member). */
export interface PipelineMember {
  entries: AsyncIterable<CpioEntry>;
  sink?: MemberSink;
  /** Compression threads for this member (the bytes do not depend on it). Default: `threads`. */
  threads?: number;
}

/**
 * Threads for compressing a member of about `bytes`: one for a small member, where starting
 * workers (gzip's deflate workers, zstd's job threads) costs more than they save — 1 MiB
 * compresses in ~28 ms with one gzip thread against ~260 ms with a pool — else `threads`.
 */
export function memberThreads(bytes: number, threads: number | undefined): number | undefined {
  if (threads !== undefined) return threads;
  return bytes < 8 * 1024 * 1024 ? 1 : undefined;
}

/** A member already packed and compressed (the output cache's): its bytes are copied from `file`. */
export interface StoredMember {
  file: string;
  /** What the member holds, for the summary. */
  stats: MemberStats;
}

/** Receives one member's compressed bytes as they are produced; `end` after the last one. */
export interface MemberSink {
  write(chunk: Uint8Array): Promise<void>;
  end(stats: MemberStats): Promise<void>;
}

/** The archive bytes of one build, and its summary once they were all read. */
export interface BuildPipeline {
  /** The compressed archive. Single use: read it once, to the end. */
  readonly data: AsyncIterable<Uint8Array>;
  /**
   * The summary, valid after `data` was read to the end, or at once when every member is stored
   * (their counts are known before their bytes are read); emits `done`.
   */
  summary(output: string): BuildSummary;
}

/**
 * Entries → count → packCpio → compress, per member, concatenated: the one byte stream that
 * `build()` writes to a file and `stream()` hands out. It counts what passes (records, tmpfs
 * footprint, CPIO and output bytes) and reports `pack` and `compress` progress on the way.
 */
export function createBuildPipeline(options: BuildPipelineOptions): BuildPipeline {
  const { signal, onProgress: emit } = options;
  const withSignal = signal ? { signal } : {};
  const prefix = options.prefix;
  let entries = 0;
  let records = prefix?.records ?? 0;
  let unpackedBytes = prefix?.unpackedBytes ?? 0;
  let cpioBytes = prefix?.cpioBytes ?? 0;
  let outputBytes = prefix?.compressedBytes ?? 0;
  let lastPack = 0;
  // A stored member's counts are known before its bytes are read.
  for (const m of options.members) {
    if (!('file' in m)) continue;
    records += m.stats.records;
    unpackedBytes += m.stats.unpackedBytes;
    cpioBytes += m.stats.cpioBytes;
    outputBytes += m.stats.compressedBytes;
  }
  const allStored = options.members.every((m) => 'file' in m);
  // The trailer member: known bytes, counted from the start like a stored member.
  const end = trailerMember(options.compression);
  cpioBytes += TRAILER_RECORD.byteLength;
  outputBytes += end.byteLength;

  async function* counted(source: AsyncIterable<CpioEntry>): AsyncGenerator<CpioEntry> {
    for await (const entry of source) {
      entries++;
      records += 1 + (entry.type === 'file' ? (entry.links?.length ?? 0) : 0);
      if (entry.type === 'file') unpackedBytes += tmpfsFootprint(entry.size);
      yield entry;
    }
  }

  // The packer and the compressors are loaded when a member must be packed: an unchanged rebuild
  // (every member from the output cache) never loads them.
  async function* packed(source: AsyncIterable<CpioEntry>, ordinal: number): AsyncGenerator<Uint8Array> {
    const { packCpio } = await import('@irb/cpio');
    const framing = { trailer: false, device: { major: 0, minor: ordinal } };
    for await (const chunk of packCpio(counted(source), { ...framing, ...withSignal })) {
      cpioBytes += chunk.byteLength;
      // Progress at most every 256 KiB keeps event overhead negligible next to the data.
      if (cpioBytes - lastPack >= 256 * 1024) {
        lastPack = cpioBytes;
        emit?.({
          type: 'pack',
          entries,
          bytes: cpioBytes,
          totalBytes: Math.max(options.expectedBytes, cpioBytes),
        });
      }
      yield chunk;
    }
  }

  async function* member(
    source: AsyncIterable<CpioEntry>,
    ordinal: number,
    threads = options.threads,
  ): AsyncGenerator<Uint8Array> {
    if (options.compression === 'none') {
      yield* packed(source, ordinal);
      return;
    }
    const { compress } = await import('@irb/compress');
    // lz4 without its end mark (compress's default): every member after it is lz4 too. The
    // first gzip member carries the name that tells `irb append` the archive ends on a trailer member.
    yield* compress(packed(source, ordinal), {
      format: options.compression,
      ...(ordinal === 0 ? { name: IRB_ARCHIVE_NAME } : {}),
      ...(options.level !== undefined ? { level: options.level } : {}),
      ...(threads !== undefined ? { threads } : {}),
      ...withSignal,
    });
  }

  async function* stored(m: StoredMember): AsyncGenerator<Uint8Array> {
    for await (const chunk of createReadStream(m.file, withSignal)) yield chunk as Uint8Array;
  }

  async function* data(): AsyncGenerator<Uint8Array> {
    for (const [i, m] of options.members.entries()) {
      const ordinal = i + (prefix ? 1 : 0);
      if ('file' in m) {
        yield* stored(m);
        continue;
      }
      const {
        entries: source,
        sink,
        threads,
      } = Symbol.asyncIterator in m ? { entries: m, sink: undefined, threads: undefined } : m;
      const before = { records, unpackedBytes, cpioBytes, compressedBytes: outputBytes };
      for await (const chunk of member(source, ordinal, threads ?? options.threads)) {
        outputBytes += chunk.byteLength;
        emit?.({ type: 'compress', inputBytes: cpioBytes, bytes: outputBytes });
        if (sink) await sink.write(chunk);
        yield chunk;
      }
      await sink?.end({
        records: records - before.records,
        unpackedBytes: unpackedBytes - before.unpackedBytes,
        cpioBytes: cpioBytes - before.cpioBytes,
        compressedBytes: outputBytes - before.compressedBytes,
      });
    }
    yield end;
  }

  return {
    data: data(),
    summary(output) {
      // Nothing was packed when every member came from the output cache: no `pack` to report.
      if (!allStored) emit?.({ type: 'pack', entries, bytes: cpioBytes, totalBytes: cpioBytes });
      const f = options.facts;
      // Field by field, in the documented order (JSON output keeps it).
      const summary: BuildSummary = {
        output,
        image: f.image,
        manifestDigest: f.manifestDigest,
        configDigest: f.configDigest,
        platform: f.platform,
        compression: options.compression,
        entries: records,
        excluded: f.excluded,
        filtered: f.filtered,
        uncompressedBytes: cpioBytes,
        compressedBytes: outputBytes,
        unpackedBytes,
        recommendedMemoryMiB: recommendGuestMemory({
          tmpfsBytes: unpackedBytes,
          compressedBytes: outputBytes,
        }),
        lostXattrs: f.lostXattrs,
        init: f.init,
        ...(f.initKind ? { initKind: f.initKind } : {}),
        ...(f.command ? { command: f.command } : {}),
        ...(f.modules ? { modules: f.modules } : {}),
        ...(f.net !== undefined ? { net: f.net } : {}),
        warnings: f.warnings,
        durationMs: Math.round(monotonicMs() - options.started),
      };
      emit?.({ type: 'done', summary });
      return summary;
    },
  };
}
