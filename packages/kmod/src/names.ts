/*
 * Module names, file names and alias patterns, compared the way kmod compares them.
 */

/** How a module file is stored: plain `.ko`, or compressed as `.ko.gz`, `.ko.xz`, `.ko.zst`. */
export type ModuleCompression = 'none' | 'gzip' | 'xz' | 'zstd';

const MODULE_FILE = /^(.+)\.ko(\.gz|\.xz|\.zst)?$/;
const BY_SUFFIX: Record<string, ModuleCompression> = {
  '': 'none',
  '.gz': 'gzip',
  '.xz': 'xz',
  '.zst': 'zstd',
};

/**
 * A module name as the kernel and kmod know it: `-` and `_` are the same character, so
 * `virtio-net` and `virtio_net` name one module (the kernel's KBUILD_MODNAME has `_`).
 */
export function normalizeModuleName(name: string): string {
  return name.replaceAll('-', '_');
}

/** The module name and compression of a module file path (`…/virtio-rng.ko.xz` → `virtio_rng`, `xz`), or `undefined` for any other file. */
export function moduleFileOf(path: string): { name: string; compression: ModuleCompression } | undefined {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const m = MODULE_FILE.exec(base);
  if (!m) return undefined;
  return {
    name: normalizeModuleName(m[1] as string),
    compression: BY_SUFFIX[m[2] ?? ''] as ModuleCompression,
  };
}

/** The path of a module file with its compression suffix dropped: what a decompressed copy is called. */
export function plainModulePath(path: string): string {
  return path.replace(/\.ko\.(gz|xz|zst)$/, '.ko');
}

/**
 * An alias or alias pattern as kmod compares it (`alias_normalize`): `-` becomes `_`, except
 * inside a `[…]` bracket expression, which is kept as it is.
 */
export function normalizeAlias(alias: string): string {
  let out = '';
  for (let i = 0; i < alias.length; i++) {
    const c = alias[i] as string;
    if (c === '[') {
      const end = alias.indexOf(']', i + 1);
      if (end < 0) return out + alias.slice(i);
      out += alias.slice(i, end + 1);
      i = end;
    } else out += c === '-' ? '_' : c;
  }
  return out;
}

/**
 * fnmatch(3) without flags, as kmod matches a modalias against the patterns of modules.alias:
 * `*`, `?`, bracket expressions with ranges and `!`/`^` negation, `\` escapes.
 */
export function aliasMatches(pattern: string, text: string): boolean {
  return matchFrom(pattern, 0, text, 0);
}

function matchFrom(p: string, pi: number, t: string, ti: number): boolean {
  // Iterative with one backtrack point for `*`, so long patterns stay linear.
  let starP = -1;
  let starT = -1;
  while (ti < t.length) {
    const c = p[pi];
    if (c === '*') {
      starP = pi++;
      starT = ti;
      continue;
    }
    if (c !== undefined) {
      const step = matchOne(p, pi, t[ti] as string);
      if (step > 0) {
        pi += step;
        ti++;
        continue;
      }
    }
    if (starP < 0) return false;
    pi = starP + 1;
    ti = ++starT;
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

/** Pattern characters consumed when pattern position `pi` matches `ch`, or 0. */
function matchOne(p: string, pi: number, ch: string): number {
  const c = p[pi] as string;
  if (c === '?') return 1;
  if (c === '\\' && pi + 1 < p.length) return p[pi + 1] === ch ? 2 : 0;
  if (c !== '[') return c === ch ? 1 : 0;
  let i = pi + 1;
  const negate = p[i] === '!' || p[i] === '^';
  if (negate) i++;
  let matched = false;
  let first = true;
  while (i < p.length && (first || p[i] !== ']')) {
    first = false;
    const lo = p[i] as string;
    if (p[i + 1] === '-' && i + 2 < p.length && p[i + 2] !== ']') {
      const hi = p[i + 2] as string;
      if (lo <= ch && ch <= hi) matched = true;
      i += 3;
    } else {
      if (lo === ch) matched = true;
      i++;
    }
  }
  // An unclosed bracket is a literal `[`, as in fnmatch.
  if (i >= p.length) return ch === '[' ? 1 : 0;
  return matched !== negate ? i + 1 - pi : 0;
}

/** Edit distance (insertions, deletions, substitutions, adjacent swaps) for did-you-mean. */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const prev = rows[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      }
      row.push(d);
    }
    rows.push(row);
  }
  return (rows[a.length] as number[])[b.length] as number;
}

/**
 * Up to `limit` candidates nearest to `word`: close in edit distance (at most a third of the
 * word, at least 2), or containing it, nearest first, then by name; none much worse than the best.
 */
export function nearest(word: string, candidates: Iterable<string>, limit = 3): string[] {
  const w = normalizeModuleName(word.toLowerCase());
  const scored: { name: string; score: number }[] = [];
  const max = Math.max(2, Math.floor(w.length / 3));
  for (const name of candidates) {
    const n = normalizeModuleName(name.toLowerCase());
    // A prefix or a part of a longer name is a good guess too (`virtio` → `virtio_net`), ranked
    // after the close typos.
    const distance = editDistance(w, n);
    if (distance <= max) scored.push({ name, score: distance });
    else if (w.length >= 3 && n.includes(w)) scored.push({ name, score: max + 1 + n.length - w.length });
  }
  scored.sort((a, b) => a.score - b.score || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // Far worse guesses than the best one only distract.
  const best = scored[0]?.score ?? 0;
  return scored
    .filter((s) => s.score <= best + 1)
    .slice(0, limit)
    .map((s) => s.name);
}
