import { gzipSync, constants as zlibConstants, zstdCompressSync } from 'node:zlib';
import { pack as createPack } from 'tar-stream';

/**
 * Real tar layers for tests. Ordinary entries go through tar-stream's `pack`; what tar-stream
 * cannot write (names that are not UTF-8, GNU long-name records, binary xattr values, mode 0,
 * GNU sparse files, raw hostile bytes) is encoded here by hand, byte for byte like GNU tar does.
 */

/** A path or link target: text, or exact bytes (for names that are not UTF-8). */
export type TarName = string | Uint8Array;

/** Fields every tar entry spec can carry. */
export interface TarSpecCommon {
  /** Name inside the tar, written as given (no normalization: `./x`, `/x`, `../x` stay). */
  path: TarName;
  /** Permission bits incl. setuid/setgid/sticky. Default 0o644 for files, 0o755 for directories, 0o777 for symlinks. */
  mode?: number;
  /** Default 0. Values beyond the octal field (> 2097151) are written as PAX records. */
  uid?: number;
  /** Default 0. Values beyond the octal field (> 2097151) are written as PAX records. */
  gid?: number;
  uname?: string;
  gname?: string;
  /** Seconds since the epoch. Default 0 (deterministic fixtures). */
  mtime?: number;
  /** Extra PAX records for this entry (written verbatim). */
  pax?: Record<string, TarName>;
  /** Extended attributes, written as PAX `SCHILY.xattr.<key>` records. */
  xattrs?: Record<string, TarName>;
  /** How names or link targets longer than the ustar fields are written. Default `pax`. */
  longNames?: 'pax' | 'gnu';
}

/** One entry of a tar built by {@link buildTar}. */
export type TarSpec =
  | (TarSpecCommon & { type: 'file'; content?: TarName })
  | (TarSpecCommon & { type: 'directory' })
  | (TarSpecCommon & { type: 'symlink'; target: TarName })
  /** A hard link to `target` (a name earlier in this or a lower layer). */
  | (TarSpecCommon & { type: 'link'; target: TarName })
  | (TarSpecCommon & { type: 'char' | 'block'; major: number; minor: number })
  | (TarSpecCommon & { type: 'fifo' })
  /**
   * A GNU (old format, typeflag `S`) sparse file of `size` bytes whose only data are `chunks`;
   * everything else reads as zeros. Keep chunk lengths multiples of 512 except the last, as GNU tar
   * writes them: GNU tar reads each chunk from a block boundary, bsdtar and Go read them back to back.
   */
  | (TarSpecCommon & { type: 'sparse'; size: number; chunks: Array<{ offset: number; data: Uint8Array }> })
  /** Bytes written as they are (hand-made hostile headers, garbage). */
  | { type: 'raw'; bytes: Uint8Array };

/** Options of {@link buildTar}. */
export interface BuildTarOptions {
  /** Write the two zero blocks that end a tar. Default true; false makes a truncated-looking tar. */
  end?: boolean;
  /** Compress the result. Default `none`. */
  compression?: 'none' | 'gzip' | 'zstd';
}

const encoder = new TextEncoder();
const USTAR_MAX_OCTAL_7 = 0o7777777;

function bytesOf(name: TarName): Uint8Array {
  return typeof name === 'string' ? encoder.encode(name) : name;
}

function isUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const part of parts) total += part.byteLength;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

function padding(size: number): Uint8Array {
  const rest = size % 512;
  return new Uint8Array(rest === 0 ? 0 : 512 - rest);
}

/** Writes `value` as NUL-terminated octal, or base-256 when it does not fit (as GNU tar does). */
function writeNumber(block: Uint8Array, offset: number, length: number, value: number): void {
  const octal = Math.trunc(value).toString(8);
  if (value >= 0 && octal.length <= length - 1) {
    block.set(encoder.encode(octal.padStart(length - 1, '0')), offset);
    block[offset + length - 1] = 0;
    return;
  }
  let rest = BigInt(Math.trunc(value));
  if (rest < 0n) rest = (1n << BigInt(8 * length)) + rest;
  for (let i = length - 1; i >= 0; i--) {
    block[offset + i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  block[offset] = value < 0 ? 0xff : (block[offset] ?? 0) | 0x80;
}

/** Fields of one hand-encoded header block. */
export interface RawHeaderFields {
  name: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** The typeflag character, e.g. `0`, `5`, `x`, `L`, `S`. */
  typeflag: string;
  linkname?: Uint8Array;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  /** `ustar` (POSIX magic) or `gnu` (`ustar  ` magic, needed for sparse and long-name records). */
  format?: 'ustar' | 'gnu';
  /** Called before the checksum is computed, to fill format-specific fields (sparse maps). */
  extra?: (block: Uint8Array) => void;
  /** Store this checksum instead of the right one (to make corrupt headers). */
  checksum?: number;
}

/** Encodes one 512-byte tar header block with exact bytes; names longer than their field are cut. */
export function encodeTarHeader(fields: RawHeaderFields): Uint8Array {
  const block = new Uint8Array(512);
  block.set(fields.name.subarray(0, 100), 0);
  writeNumber(block, 100, 8, fields.mode & 0o7777);
  writeNumber(block, 108, 8, Math.min(fields.uid, USTAR_MAX_OCTAL_7));
  writeNumber(block, 116, 8, Math.min(fields.gid, USTAR_MAX_OCTAL_7));
  writeNumber(block, 124, 12, fields.size);
  writeNumber(block, 136, 12, fields.mtime);
  block[156] = fields.typeflag.charCodeAt(0);
  if (fields.linkname) block.set(fields.linkname.subarray(0, 100), 157);
  if (fields.format === 'gnu') {
    block.set(encoder.encode('ustar  \0'), 257);
  } else {
    block.set(encoder.encode('ustar\u000000'), 257);
  }
  if (fields.uname) block.set(encoder.encode(fields.uname).subarray(0, 31), 265);
  if (fields.gname) block.set(encoder.encode(fields.gname).subarray(0, 31), 297);
  writeNumber(block, 329, 8, fields.devmajor ?? 0);
  writeNumber(block, 337, 8, fields.devminor ?? 0);
  fields.extra?.(block);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  const checksum = fields.checksum ?? sum;
  block.set(encoder.encode(checksum.toString(8).padStart(6, '0')), 148);
  block[154] = 0;
  block[155] = 0x20;
  return block;
}

/** Encodes PAX extended-header records (`<len> key=value\n`, value as exact bytes). */
export function encodePaxRecords(records: ReadonlyArray<readonly [string, TarName]>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [key, value] of records) {
    const body = concat([encoder.encode(` ${key}=`), bytesOf(value), encoder.encode('\n')]);
    let length = body.byteLength + 1;
    while (String(length).length + body.byteLength !== length)
      length = String(length).length + body.byteLength;
    parts.push(concat([encoder.encode(String(length)), body]));
  }
  return concat(parts);
}

/** A GNU `././@LongLink` member carrying a long name (`L`) or long link target (`K`), NUL-terminated. */
function gnuLongLink(typeflag: 'L' | 'K', bytes: Uint8Array): Uint8Array {
  const data = concat([bytes, new Uint8Array(1)]);
  return member(
    {
      name: encoder.encode('././@LongLink'),
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: data.byteLength,
      mtime: 0,
      typeflag,
      format: 'gnu',
    },
    data,
  );
}

/** A whole tar member: header (+ data + padding). */
function member(fields: RawHeaderFields, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concat([encodeTarHeader({ ...fields, size: fields.size }), data, padding(data.byteLength)]);
}

const TYPEFLAGS = {
  file: '0',
  link: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
  sparse: 'S',
} as const;

function defaultMode(spec: Exclude<TarSpec, { type: 'raw' }>): number {
  if (spec.mode !== undefined) return spec.mode;
  if (spec.type === 'directory') return 0o755;
  if (spec.type === 'symlink') return 0o777;
  return 0o644;
}

function linkTarget(spec: TarSpec): Uint8Array | undefined {
  return spec.type === 'symlink' || spec.type === 'link' ? bytesOf(spec.target) : undefined;
}

/** True when tar-stream's `pack` writes this spec exactly as asked. */
function packCanWrite(spec: Exclude<TarSpec, { type: 'raw' }>): boolean {
  if (spec.type === 'sparse' || spec.longNames === 'gnu') return false;
  if (spec.mode === 0) return false;
  // tar-stream writes uid/gid in 6 octal digits and the mtime through a 32-bit `| 0`.
  if ((spec.uid ?? 0) > 0o777777 || (spec.gid ?? 0) > 0o777777) return false;
  if ((spec.mtime ?? 0) < 0 || (spec.mtime ?? 0) > 0x7fff_ffff) return false;
  if (!isUtf8(bytesOf(spec.path))) return false;
  const target = linkTarget(spec);
  if (target && !isUtf8(target)) return false;
  for (const value of [...Object.values(spec.pax ?? {}), ...Object.values(spec.xattrs ?? {})]) {
    if (typeof value !== 'string' || value.includes('\n')) return false;
  }
  return true;
}

/** Hand-encodes a spec the way GNU tar would (PAX or GNU long-name records as needed). */
function encodeByHand(spec: Exclude<TarSpec, { type: 'raw' }>): Uint8Array {
  const name = bytesOf(spec.path);
  const target = linkTarget(spec);
  const uid = spec.uid ?? 0;
  const gid = spec.gid ?? 0;
  const mtime = spec.mtime ?? 0;
  const mode = defaultMode(spec);
  const parts: Uint8Array[] = [];
  const pax: Array<readonly [string, TarName]> = [];
  const gnu = spec.longNames === 'gnu' || spec.type === 'sparse';

  if (name.byteLength > 100) {
    if (spec.longNames === 'gnu') {
      parts.push(gnuLongLink('L', name));
    } else {
      pax.push(['path', name]);
    }
  }
  if (target && target.byteLength > 100) {
    if (spec.longNames === 'gnu') {
      parts.push(gnuLongLink('K', target));
    } else {
      pax.push(['linkpath', target]);
    }
  }
  if (uid > USTAR_MAX_OCTAL_7) pax.push(['uid', String(uid)]);
  if (gid > USTAR_MAX_OCTAL_7) pax.push(['gid', String(gid)]);
  for (const [key, value] of Object.entries(spec.xattrs ?? {})) pax.push([`SCHILY.xattr.${key}`, value]);
  for (const [key, value] of Object.entries(spec.pax ?? {})) pax.push([key, value]);
  if (pax.length > 0) {
    const data = encodePaxRecords(pax);
    const paxName = concat([encoder.encode('./PaxHeaders/'), name.subarray(0, 80)]);
    parts.push(
      member(
        { name: paxName, mode: 0o644, uid: 0, gid: 0, size: data.byteLength, mtime, typeflag: 'x' },
        data,
      ),
    );
  }

  let data: Uint8Array = new Uint8Array(0);
  let extra: ((block: Uint8Array) => void) | undefined;
  const extensions: Uint8Array[] = [];
  if (spec.type === 'file' && spec.content !== undefined) data = bytesOf(spec.content);
  if (spec.type === 'sparse') {
    const chunks = [...spec.chunks].sort((a, b) => a.offset - b.offset);
    data = concat(chunks.map((chunk) => chunk.data));
    // A GNU sparse map always ends with the file's end, so a trailing hole keeps its length.
    const map = chunks.map((chunk) => ({ offset: chunk.offset, size: chunk.data.byteLength }));
    const last = map[map.length - 1];
    if (!last || last.offset + last.size < spec.size) map.push({ offset: spec.size, size: 0 });
    const inHeader = map.slice(0, 4);
    const rest = map.slice(4);
    extra = (block) => {
      inHeader.forEach((entry, i) => {
        writeNumber(block, 386 + i * 24, 12, entry.offset);
        writeNumber(block, 386 + i * 24 + 12, 12, entry.size);
      });
      block[482] = rest.length > 0 ? 1 : 0;
      writeNumber(block, 483, 12, spec.size);
    };
    for (let i = 0; i < rest.length; i += 21) {
      const block = new Uint8Array(512);
      rest.slice(i, i + 21).forEach((entry, j) => {
        writeNumber(block, j * 24, 12, entry.offset);
        writeNumber(block, j * 24 + 12, 12, entry.size);
      });
      block[504] = i + 21 < rest.length ? 1 : 0;
      extensions.push(block);
    }
  }
  const header = encodeTarHeader({
    name,
    mode,
    uid,
    gid,
    size: data.byteLength,
    mtime,
    typeflag: TYPEFLAGS[spec.type],
    format: gnu ? 'gnu' : 'ustar',
    ...(target ? { linkname: target } : {}),
    ...(spec.uname !== undefined ? { uname: spec.uname } : {}),
    ...(spec.gname !== undefined ? { gname: spec.gname } : {}),
    ...(spec.type === 'char' || spec.type === 'block' ? { devmajor: spec.major, devminor: spec.minor } : {}),
    ...(extra ? { extra } : {}),
  });
  parts.push(header, ...extensions, data, padding(data.byteLength));
  return concat(parts);
}

const PACK_TYPES = {
  file: 'file',
  link: 'link',
  symlink: 'symlink',
  char: 'character-device',
  block: 'block-device',
  directory: 'directory',
  fifo: 'fifo',
} as const;

/**
 * Builds a tar (optionally gzip/zstd compressed) from entry specs, in the given order.
 * Nothing is normalized: hostile names, duplicate entries and markers are written as given.
 */
export async function buildTar(
  entries: readonly TarSpec[],
  options: BuildTarOptions = {},
): Promise<Uint8Array> {
  const pack = createPack();
  const chunks: Uint8Array[] = [];
  pack.on('data', (chunk: unknown) => chunks.push(chunk as Uint8Array));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });

  for (const spec of entries) {
    if (spec.type === 'raw') {
      pack.push(spec.bytes);
      continue;
    }
    if (spec.type === 'sparse' || !packCanWrite(spec)) {
      pack.push(encodeByHand(spec));
      continue;
    }
    const pax: Record<string, string> = {};
    for (const [key, value] of Object.entries(spec.xattrs ?? {}))
      pax[`SCHILY.xattr.${key}`] = value as string;
    for (const [key, value] of Object.entries(spec.pax ?? {})) pax[key] = value as string;
    const uid = spec.uid ?? 0;
    const gid = spec.gid ?? 0;
    if (uid > USTAR_MAX_OCTAL_7) pax.uid = String(uid);
    if (gid > USTAR_MAX_OCTAL_7) pax.gid = String(gid);
    const header = {
      name: typeof spec.path === 'string' ? spec.path : new TextDecoder().decode(spec.path),
      type: PACK_TYPES[spec.type],
      mode: defaultMode(spec),
      uid: Math.min(uid, USTAR_MAX_OCTAL_7),
      gid: Math.min(gid, USTAR_MAX_OCTAL_7),
      mtime: new Date((spec.mtime ?? 0) * 1000),
      ...(spec.uname !== undefined ? { uname: spec.uname } : {}),
      ...(spec.gname !== undefined ? { gname: spec.gname } : {}),
      ...(spec.type === 'symlink' || spec.type === 'link'
        ? { linkname: typeof spec.target === 'string' ? spec.target : new TextDecoder().decode(spec.target) }
        : {}),
      ...(spec.type === 'char' || spec.type === 'block'
        ? { devmajor: spec.major, devminor: spec.minor }
        : {}),
      ...(Object.keys(pax).length > 0 ? { pax } : {}),
    };
    const body = spec.type === 'file' ? bytesOf(spec.content ?? '') : undefined;
    await new Promise<void>((resolve, reject) => {
      const done = (error?: Error | null) => (error ? reject(error) : resolve());
      if (body) pack.entry({ ...header, size: body.byteLength }, body, done);
      else pack.entry(header, done);
    });
  }

  if (options.end === false) pack.push(null);
  else pack.finalize();
  await ended;
  const tar = concat(chunks);
  switch (options.compression ?? 'none') {
    case 'gzip':
      return new Uint8Array(gzipSync(tar));
    case 'zstd':
      return new Uint8Array(zstdCompressSync(tar, { params: { [zlibConstants.ZSTD_c_checksumFlag]: 1 } }));
    default:
      return tar;
  }
}

function splitPath(path: string): { dir: string; base: string } {
  const trimmed = path.replace(/\/+$/, '');
  const slash = trimmed.lastIndexOf('/');
  return slash === -1
    ? { dir: '', base: trimmed }
    : { dir: trimmed.slice(0, slash + 1), base: trimmed.slice(slash + 1) };
}

/** A whiteout marker deleting `path` (and what is below it) from lower layers: `dir/.wh.name`. */
export function whiteout(path: string, options: Omit<TarSpecCommon, 'path'> = {}): TarSpec {
  const { dir, base } = splitPath(path);
  return { ...options, type: 'file', path: `${dir}.wh.${base}` };
}

/** An opaque-directory marker hiding everything lower layers put in `dir`: `dir/.wh..wh..opq`. */
export function opaque(dir: string, options: Omit<TarSpecCommon, 'path'> = {}): TarSpec {
  const trimmed = dir.replace(/\/+$/, '');
  return { ...options, type: 'file', path: `${trimmed === '' ? '' : `${trimmed}/`}.wh..wh..opq` };
}
