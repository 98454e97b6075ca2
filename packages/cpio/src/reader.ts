import { cpioChecksum } from './checksum.ts';
import { CpioError } from './errors.ts';
import {
  CPIO_HEADER_SIZE,
  CPIO_TRAILER_NAME,
  type CpioHeader,
  padded4,
  parseCpioHeader,
  typeFromMode,
} from './newc.ts';
import type { CpioEntryType } from './types.ts';

/** One entry of an archive as {@link readCpio} found it: every header field plus the decoded parts. */
export interface CpioReadEntry extends CpioHeader {
  /** Which archive of a concatenation the entry came from, counting from 0 (each ends at a `TRAILER!!!`). */
  member: number;
  /** Byte offset of the entry's header in the input stream. */
  offset: number;
  /** Kind derived from the type bits of `mode`, or `unknown` for type bits no kind uses. */
  type: CpioEntryType | 'unknown';
  /** `mode & 0o7777`: permission bits including setuid, setgid and sticky. */
  permissions: number;
  /** The name decoded as UTF-8 (invalid sequences become U+FFFD; `nameBytes` has the exact bytes). */
  name: string;
  /** The exact name bytes, without the terminating NUL. */
  nameBytes: Uint8Array;
  /** For symlinks: the target decoded as UTF-8. */
  target?: string;
  /** For symlinks: the exact target bytes (the body). */
  targetBytes?: Uint8Array;
  /**
   * The body, streamed from the input. Read it before asking for the next entry; an unread
   * (or partly read) body is skipped automatically. It can be iterated once (symlinks: any time).
   */
  body: AsyncIterable<Uint8Array>;
  /** Collects the whole body into one array (same rules as `body`). */
  bytes(): Promise<Uint8Array>;
}

/** Where one archive of the input ended, reported through {@link ReadCpioOptions.onMemberEnd}. */
export interface CpioMemberInfo {
  /** Index of the archive in the input, from 0. */
  member: number;
  /** Offset of its first header. */
  start: number;
  /** Offset just past its `TRAILER!!!` record (including the record's padding to 4). */
  end: number;
  /** Entries it held, not counting the trailer. */
  entries: number;
}

/** How far {@link readCpio} read, reported through {@link ReadCpioOptions.onEnd}. */
export interface CpioReadEnd {
  /** Archives read completely. */
  members: number;
  /** Bytes of the input consumed: with `members: 'one'` exactly up to the end of the first trailer record. */
  bytesConsumed: number;
  /**
   * Bytes already pulled from the input but not consumed (the rest of the last chunk). Only
   * non-empty with `members: 'one'`; the data after it is still unread in the source iterator.
   */
  rest: Uint8Array;
}

/** Options of {@link readCpio}. */
export interface ReadCpioOptions {
  /**
   * `all` (default): read archives one after another as the Linux kernel does — NUL bytes may
   * separate them, each must start 4-byte aligned and end with `TRAILER!!!`.
   * `one`: stop right after the first `TRAILER!!!` record and leave the source iterator open
   * (not returned), so a caller can go on with what follows (e.g. a compressed member);
   * {@link ReadCpioOptions.onEnd} tells how many bytes belonged to the archive.
   */
  members?: 'all' | 'one';
  /** Check the 070702 sum of regular files (as GNU cpio and the kernel do). Default `true`. */
  verifyChecksum?: boolean;
  /** Largest accepted name size including the NUL. Default 65536; Linux itself takes at most 4096. */
  maxNameSize?: number;
  /** Largest symlink target that is read into memory. Default 65536; Linux itself takes at most 4095. */
  maxTargetSize?: number;
  /** Stops reading: the iterator throws `signal.reason`. */
  signal?: AbortSignal;
  /** Called at the end of each archive. */
  onMemberEnd?: (info: CpioMemberInfo) => void;
  /** Called once when reading stopped without error. */
  onEnd?: (info: CpioReadEnd) => void;
}

const EMPTY = new Uint8Array(0);
const decoder = new TextDecoder('utf-8', { fatal: false });
const TRAILER = new TextEncoder().encode(CPIO_TRAILER_NAME);

/** Pulls chunks from the source on demand and hands out bytes by count, copying only when a request spans chunks. */
class ByteSource {
  private readonly it: AsyncIterator<Uint8Array>;
  private cur: Uint8Array = EMPTY;
  private pos = 0;
  /** Absolute offset of the next unconsumed byte. */
  offset = 0;
  private ended = false;
  private readonly signal: AbortSignal | undefined;

  constructor(source: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined) {
    this.it = source[Symbol.asyncIterator]();
    this.signal = signal;
  }

  /** Makes at least one byte available; false at the end of the input. */
  async fill(): Promise<boolean> {
    while (this.pos >= this.cur.length) {
      if (this.ended) return false;
      this.signal?.throwIfAborted();
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        this.cur = EMPTY;
        this.pos = 0;
        return false;
      }
      const chunk: unknown = r.value;
      if (!(chunk instanceof Uint8Array)) {
        throw new CpioError(
          'IRB_CPIO_INPUT_INVALID',
          `cpio input yielded a ${typeof chunk}; it must yield Uint8Array chunks (do not set an encoding on the stream)`,
        );
      }
      this.cur = chunk;
      this.pos = 0;
    }
    return true;
  }

  peek(): number {
    return this.cur[this.pos]!;
  }

  /** `n` bytes if the current chunk holds them (no await needed), else undefined. */
  readNow(n: number): Uint8Array | undefined {
    if (this.cur.length - this.pos < n) return undefined;
    const out = this.cur.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /** Skips `n` bytes if the current chunk holds them; false otherwise (nothing skipped). */
  skipNow(n: number): boolean {
    if (this.cur.length - this.pos < n) return false;
    this.pos += n;
    this.offset += n;
    return true;
  }

  /** Exactly `n` contiguous bytes, or null when the input ends first. */
  async read(n: number): Promise<Uint8Array | null> {
    const now = this.readNow(n);
    if (now) return now;
    const out = new Uint8Array(n);
    let have = 0;
    while (have < n) {
      if (!(await this.fill())) return null;
      const take = Math.min(n - have, this.cur.length - this.pos);
      out.set(this.cur.subarray(this.pos, this.pos + take), have);
      this.pos += take;
      this.offset += take;
      have += take;
    }
    return out;
  }

  /** Up to `max` bytes from the current chunk without copying; empty at the end of the input. */
  async chunk(max: number): Promise<Uint8Array> {
    if (this.pos >= this.cur.length && !(await this.fill())) return EMPTY;
    const take = Math.min(max, this.cur.length - this.pos);
    const out = this.cur.subarray(this.pos, this.pos + take);
    this.pos += take;
    this.offset += take;
    return out;
  }

  /** Skips NUL bytes; returns false at the end of the input. */
  async skipZeros(): Promise<boolean> {
    while (await this.fill()) {
      const { cur } = this;
      let p = this.pos;
      while (p < cur.length && cur[p] === 0) p++;
      this.offset += p - this.pos;
      this.pos = p;
      if (p < cur.length) return true;
    }
    return false;
  }

  rest(): Uint8Array {
    return this.cur.subarray(this.pos);
  }

  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      await this.it.return?.();
    }
  }
}

function truncated(what: string, offset: number): CpioError {
  return new CpioError(
    'IRB_CPIO_TRUNCATED',
    `cpio input ends inside ${what} (at byte ${offset}); the archive is truncated — download or decompress it again`,
  );
}

/** Names are nearly always ASCII; TextDecoder's per-call cost dominates for them. */
function decodeName(bytes: Uint8Array): string {
  if (bytes.length <= 256) {
    let ascii = true;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  return decoder.decode(bytes);
}

/** A fresh plain Uint8Array (Buffer#slice would return a view that keeps the whole input chunk alive). */
function copyBytes(from: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  out.set(from.subarray(0, length));
  return out;
}

function isTrailer(name: Uint8Array): boolean {
  if (name.length !== TRAILER.length) return false;
  for (let i = 0; i < name.length; i++) if (name[i] !== TRAILER[i]) return false;
  return true;
}

/** Reading context shared by the bodies of one {@link readCpio} run. */
interface BodyContext {
  src: ByteSource;
  /** Bumped when the reader moves to the next entry; a body of an older generation is gone. */
  generation: number;
}

/** The streamed body of one entry; a class so each entry costs one small object, not a set of closures. */
class EntryBody implements AsyncIterable<Uint8Array> {
  remaining: number;
  sum = 0;
  started = false;
  verified = false;
  private readonly ctx: BodyContext;
  private readonly generation: number;
  private readonly sumIt: boolean;
  private readonly check: number;
  private readonly name: string;
  private readonly offset: number;

  constructor(ctx: BodyContext, size: number, sumIt: boolean, check: number, name: string, offset: number) {
    this.ctx = ctx;
    this.generation = ctx.generation;
    this.remaining = size;
    this.sumIt = sumIt;
    this.check = check;
    this.name = name;
    this.offset = offset;
  }

  async pull(): Promise<Uint8Array> {
    const c = await this.ctx.src.chunk(this.remaining);
    if (c.length === 0) throw truncated(`the body of ${JSON.stringify(this.name)}`, this.ctx.src.offset);
    this.remaining -= c.length;
    if (this.sumIt) this.sum = cpioChecksum(c, this.sum);
    return c;
  }

  /** Consumes what the reader left of the body, verifying the checksum if one is due. */
  async skipRest(): Promise<void> {
    if (this.sumIt) {
      while (this.remaining > 0) await this.pull();
      this.finish();
      return;
    }
    const { src } = this.ctx;
    while (this.remaining > 0) {
      const c = await src.chunk(this.remaining);
      if (c.length === 0) throw truncated(`the body of ${JSON.stringify(this.name)}`, src.offset);
      this.remaining -= c.length;
    }
  }

  finish(): void {
    this.verified = true;
    if (this.sumIt && this.sum !== this.check) {
      throw new CpioError(
        'IRB_CPIO_CHECKSUM_MISMATCH',
        `checksum of ${JSON.stringify(this.name)} (entry at byte ${this.offset}) is ${this.sum} but its 070702 header says ${this.check}; the archive is corrupt`,
      );
    }
  }

  private unavailable(): CpioError {
    return new CpioError(
      'IRB_CPIO_BODY_UNAVAILABLE',
      `body of ${JSON.stringify(this.name)} was already read or the reader moved past it; read each body once, before asking for the next entry`,
    );
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.started || this.generation !== this.ctx.generation) throw this.unavailable();
    this.started = true;
    while (this.remaining > 0) {
      if (this.generation !== this.ctx.generation) throw this.unavailable();
      yield await this.pull();
    }
    this.finish();
  }

  async bytes(size: number): Promise<Uint8Array> {
    const out = new Uint8Array(size);
    let n = 0;
    for await (const c of this) {
      out.set(c, n);
      n += c.length;
    }
    return out;
  }
}

function symlinkBody(target: Uint8Array): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      if (target.length > 0) yield target;
    },
  };
}

/**
 * Reads CPIO newc archives (070701 and 070702) from a byte stream, entry by entry.
 *
 * By default it reads a concatenation of uncompressed archives like the Linux kernel:
 * each ends with `TRAILER!!!`, NUL padding may separate them, and every entry reports its
 * `member`. Bodies stream from the input and are skipped when not read. Compressed
 * members must be decompressed first (see `@irb/compress`); with `members: 'one'` and
 * `onEnd` a caller finds where a plain archive ends inside a mixed initramfs.
 *
 * @throws CpioError `IRB_CPIO_MAGIC_INVALID`, `IRB_CPIO_HEADER_INVALID`, `IRB_CPIO_HEADER_INVALID`, `IRB_CPIO_TRUNCATED`,
 *   `IRB_CPIO_CHECKSUM_MISMATCH`, `IRB_CPIO_TRAILING_DATA`, `IRB_CPIO_INPUT_INVALID`, `IRB_CPIO_BODY_UNAVAILABLE`.
 */
export async function* readCpio(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: ReadCpioOptions = {},
): AsyncGenerator<CpioReadEntry, void, undefined> {
  const { signal } = options;
  const verify = options.verifyChecksum ?? true;
  const maxNameSize = options.maxNameSize ?? 65536;
  const maxTargetSize = options.maxTargetSize ?? 65536;
  const one = options.members === 'one';
  const iterable: AsyncIterable<Uint8Array> =
    Symbol.asyncIterator in source
      ? source
      : (async function* () {
          yield* source;
        })();
  const src = new ByteSource(iterable, signal);
  const ctx: BodyContext = { src, generation: 0 };
  let member = 0;
  let inMember = false;
  let memberStart = 0;
  let memberEntries = 0;
  let keepOpen = false;

  try {
    for (;;) {
      if (signal?.aborted) signal.throwIfAborted();
      if (!inMember) {
        if (!(await src.skipZeros())) break;
        const at = src.offset;
        if (src.peek() !== 0x30 && member > 0) {
          throw new CpioError(
            'IRB_CPIO_TRAILING_DATA',
            `unexpected byte 0x${src.peek().toString(16).padStart(2, '0')} at ${at} after archive ${member - 1}; only NUL padding or another newc archive may follow (decompress compressed members first, e.g. with @irb/compress)`,
          );
        }
        if (at % 4 !== 0) {
          throw new CpioError(
            'IRB_CPIO_HEADER_INVALID',
            `cpio archive at byte ${at} does not start on a 4-byte boundary; the kernel rejects this, pad the preceding data with NULs to a multiple of 4`,
          );
        }
        inMember = true;
        memberStart = at;
        memberEntries = 0;
      }

      const offset = src.offset;
      const head = src.readNow(CPIO_HEADER_SIZE) ?? (await src.read(CPIO_HEADER_SIZE));
      if (head === null) throw truncated(`the header at byte ${offset}`, src.offset);
      const h = parseCpioHeader(head, 0, offset);
      if (h.nameSize === 0 || h.nameSize > maxNameSize) {
        throw new CpioError(
          'IRB_CPIO_HEADER_INVALID',
          `cpio header at byte ${offset} has namesize ${h.nameSize}; it must be 1 to ${maxNameSize} — the archive is corrupt`,
        );
      }
      const nameLen = padded4(CPIO_HEADER_SIZE + h.nameSize) - CPIO_HEADER_SIZE;
      const nameField = src.readNow(nameLen) ?? (await src.read(nameLen));
      if (nameField === null) throw truncated(`the name of the entry at byte ${offset}`, src.offset);
      if (nameField[h.nameSize - 1] !== 0) {
        throw new CpioError(
          'IRB_CPIO_HEADER_INVALID',
          `name of the cpio entry at byte ${offset} is not NUL-terminated; the archive is corrupt`,
        );
      }
      const nameBytes = copyBytes(nameField, h.nameSize - 1);
      const bodyLen = h.fileSize;
      const padLen = padded4(bodyLen) - bodyLen;

      if (isTrailer(nameBytes)) {
        await skipBytes(bodyLen + padLen, 'the trailer');
        options.onMemberEnd?.({ member, start: memberStart, end: src.offset, entries: memberEntries });
        member++;
        inMember = false;
        if (one) {
          keepOpen = true;
          break;
        }
        continue;
      }

      const type = typeFromMode(h.mode) ?? 'unknown';
      const name = decodeName(nameBytes);
      memberEntries++;
      const entry: CpioReadEntry = {
        format: h.format,
        magic: h.magic,
        ino: h.ino,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        nlink: h.nlink,
        mtime: h.mtime,
        fileSize: h.fileSize,
        devMajor: h.devMajor,
        devMinor: h.devMinor,
        rdevMajor: h.rdevMajor,
        rdevMinor: h.rdevMinor,
        nameSize: h.nameSize,
        check: h.check,
        member,
        offset,
        type,
        permissions: h.mode & 0o7777,
        name,
        nameBytes,
        body: EMPTY_BODY,
        bytes: EMPTY_BYTES,
      };

      if (type === 'symlink') {
        if (bodyLen > maxTargetSize) {
          throw new CpioError(
            'IRB_CPIO_HEADER_INVALID',
            `symlink ${JSON.stringify(name)} at byte ${offset} has a ${bodyLen}-byte target, more than ${maxTargetSize}; the archive is corrupt or raise maxTargetSize`,
          );
        }
        const t = src.readNow(bodyLen + padLen) ?? (await src.read(bodyLen + padLen));
        if (t === null) throw truncated(`the symlink target of ${JSON.stringify(name)}`, src.offset);
        const targetBytes = copyBytes(t, bodyLen);
        entry.target = decoder.decode(targetBytes);
        entry.targetBytes = targetBytes;
        entry.body = symlinkBody(targetBytes);
        entry.bytes = async () => copyBytes(targetBytes, bodyLen);
        yield entry;
        continue;
      }

      if (bodyLen === 0) {
        yield entry;
        if (!src.skipNow(padLen)) await skipBytes(padLen, `the padding after ${JSON.stringify(name)}`);
        continue;
      }
      const body = new EntryBody(
        ctx,
        bodyLen,
        verify && h.format === 'crc' && type === 'file',
        h.check,
        name,
        offset,
      );
      entry.body = body;
      entry.bytes = () => body.bytes(bodyLen);
      yield entry;
      // The consumer asked for the next entry: whatever it left of this body is skipped.
      ctx.generation++;
      if (body.remaining > 0) await body.skipRest();
      else if (!body.verified) body.finish();
      if (!src.skipNow(padLen)) await skipBytes(padLen, `the padding after ${JSON.stringify(name)}`);
    }
    if (inMember) {
      throw new CpioError(
        'IRB_CPIO_TRUNCATED',
        `cpio archive ${member} (from byte ${memberStart}) ends without TRAILER!!!; the archive is truncated — download or decompress it again`,
      );
    }
    options.onEnd?.({ members: member, bytesConsumed: src.offset, rest: keepOpen ? src.rest() : EMPTY });
  } finally {
    if (!keepOpen) await src.close();
  }

  async function skipBytes(n: number, what: string): Promise<void> {
    let left = n;
    while (left > 0) {
      const c = await src.chunk(left);
      if (c.length === 0) throw truncated(what, src.offset);
      left -= c.length;
    }
  }
}

const EMPTY_BODY: AsyncIterable<Uint8Array> = {
  async *[Symbol.asyncIterator]() {},
};

async function EMPTY_BYTES(): Promise<Uint8Array> {
  return new Uint8Array(0);
}
