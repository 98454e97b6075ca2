/** Human sizes in binary units, as ls -h prints them. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

/** A rate such as `12.3 MiB/s`. */
export function formatRate(bytes: number, ms: number): string {
  if (ms <= 0) return '—';
  return `${formatBytes(Math.round((bytes * 1000) / ms))}/s`;
}

/** Seconds with one decimal. */
export function formatDuration(ms: number): string {
  return ms < 60_000
    ? `${(ms / 1000).toFixed(1)} s`
    : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

const TYPE_CHAR: Record<string, string> = {
  file: '-',
  directory: 'd',
  symlink: 'l',
  char: 'c',
  block: 'b',
  fifo: 'p',
  socket: 's',
};

/** `ls -l` style permission string, e.g. `-rwsr-xr-x`. */
export function formatMode(type: string, mode: number): string {
  const bits = ['r', 'w', 'x'];
  let out = TYPE_CHAR[type] ?? '?';
  for (let shift = 6; shift >= 0; shift -= 3) {
    for (let i = 0; i < 3; i++) out += mode & (1 << (shift + 2 - i)) ? bits[i] : '-';
  }
  const chars = out.split('');
  const special = (pos: number, bit: number, on: string, off: string) => {
    if (mode & bit) chars[pos] = chars[pos] === 'x' ? on : off;
  };
  special(3, 0o4000, 's', 'S');
  special(6, 0o2000, 's', 'S');
  special(9, 0o1000, 't', 'T');
  return chars.join('');
}

/** A date as `YYYY-MM-DD HH:MM` in UTC, stable across machines. */
export function formatTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(0, 16).replace('T', ' ');
}

/** Pads columns: each row is a list of cells, right-aligned where `right[i]`. */
export function table(rows: string[][], right: boolean[] = []): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, i) =>
        i === row.length - 1 ? cell : right[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!),
      )
      .join('  '),
  );
}

const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/**
 * A horizontal bar `value / max` of `width` cells, in eighths of a cell (so 3 % and 5 % differ).
 * A value above zero always shows at least a sliver.
 */
export function bar(value: number, max: number, width: number): string {
  if (!(max > 0) || !(value > 0)) return '';
  const eighths = Math.max(1, Math.round((Math.min(value, max) / max) * width * 8));
  return '█'.repeat(Math.floor(eighths / 8)) + EIGHTHS[eighths % 8];
}

/** A percentage with one decimal (`12.3%`), `<0.1%` for a sliver. */
export function formatPercent(part: number, whole: number): string {
  if (!(whole > 0)) return '—';
  const p = (100 * part) / whole;
  return p > 0 && p < 0.1 ? '<0.1%' : `${p.toFixed(1)}%`;
}

/** An argv word as a shell would need it, so the command line reads unambiguously. */
export function showWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

const UTF8 = new TextDecoder();

/** C's escapes for the control bytes that have one, and the backslash itself. */
const C_ESCAPES: Readonly<Record<number, string>> = {
  7: '\\a',
  8: '\\b',
  9: '\\t',
  10: '\\n',
  11: '\\v',
  12: '\\f',
  13: '\\r',
  92: '\\\\',
};

/** The length of the well-formed UTF-8 sequence at `i`, 0 when none starts there. */
function utf8Length(bytes: Uint8Array, i: number): number {
  const lead = bytes[i]!;
  let length: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) length = 2;
  else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead === 0xe0) lo = 0xa0;
    if (lead === 0xed) hi = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead === 0xf0) lo = 0x90;
    if (lead === 0xf4) hi = 0x8f;
  } else return 0;
  if (i + length > bytes.length || bytes[i + 1]! < lo || bytes[i + 1]! > hi) return 0;
  for (let k = 2; k < length; k++) if (bytes[i + k]! < 0x80 || bytes[i + k]! > 0xbf) return 0;
  return length;
}

/**
 * A name (bytes) as one safe line of text, as `ls -b` and bsdtar print it: control bytes and
 * bytes that are not UTF-8 become `\n`, `\t`, `\033`-style escapes and a backslash `\\`, so a
 * newline cannot split a line and no escape sequence reaches the terminal. Printable UTF-8 stays.
 */
export function escapeName(bytes: Uint8Array): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < bytes.length; ) {
    const byte = bytes[i]!;
    if (byte >= 0x20 && byte < 0x7f && byte !== 0x5c) {
      i++;
      continue;
    }
    const length = byte >= 0x80 ? utf8Length(bytes, i) : 0;
    // U+0080–U+009F (C2 80–C2 9F) are control characters too: a terminal may act on them.
    if (length > 0 && !(byte === 0xc2 && bytes[i + 1]! < 0xa0)) {
      i += length;
      continue;
    }
    out +=
      UTF8.decode(bytes.subarray(from, i)) + (C_ESCAPES[byte] ?? `\\${byte.toString(8).padStart(3, '0')}`);
    from = ++i;
  }
  return from === 0 ? UTF8.decode(bytes) : out + UTF8.decode(bytes.subarray(from));
}
