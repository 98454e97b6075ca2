/**
 * `irb cache ls|prune|clear|path`: irb's one cache directory, listed, trimmed, emptied or located
 * (see `listCache`, `pruneCache`, `clearCache`, `cacheAreas` in @irb/store).
 */
import type { CacheEntry, PruneCacheResult } from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { formatBytes, table } from '../kit/format.ts';
import type { CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { parseOptions } from '../kit/options.ts';
import { didYouMean, UsageError } from '../kit/usage.ts';

const ACTIONS = ['ls', 'prune', 'clear', 'path'] as const;

/** Parsed `irb cache ACTION`. */
export interface CacheArgs {
  action: (typeof ACTIONS)[number];
  cacheDir?: string;
  /** `--max-size` as given (checked by {@link run}, which loads the parser). */
  maxSize?: string;
  /** `--older-than` as given. */
  olderThan?: string;
  json: boolean;
  verbose: boolean;
}

export const name = 'cache';
export const synopsis = 'cache ls|prune|clear|path';
export const summary = "list, trim or clear irb's cache, or show where it is";
export const help = `Usage: irb cache ls [--cache-dir DIR] [--json] [--verbose]
       irb cache prune [--max-size SIZE] [--older-than DURATION] [--cache-dir DIR] [--json] [--verbose]
       irb cache clear [--cache-dir DIR] [--json] [--verbose]
       irb cache path [--cache-dir DIR] [--json] [--verbose]

Everything irb caches lives in one directory: --cache-dir DIR, else $IRB_CACHE_DIR,
else $XDG_CACHE_HOME/irb, else ~/.cache/irb. Inside it: verified blobs by digest
(blobs/), parsed layer headers (index/), built members and the trees irb append read
of archives (output/), a running build's spool/, tmp/ and leases/, Node's compile
cache for irb and the KVM probe's answer. Nothing is written beside it, so removing
it makes the next build cold.

  ls                       list the cache: kind, digest (or path), size, last use, most
                           recent first; "in use" marks what a running build holds. Kinds:
                           blob, index, output; debris (what a killed build left), legacy
                           (files of an earlier irb's layout), other (small caches)
  prune                    remove least recently used entries first, and always debris and
                           legacy files; with neither option, trim to the automatic limit
                           ($IRB_CACHE_MAX_SIZE, default 10G)
      --max-size SIZE      keep at most SIZE (e.g. 5G, 500M, 2GB; K/M/G = 1024-based)
      --older-than DURATION  remove entries unused for longer (e.g. 30d, 12h, 90m)
  clear                    remove everything irb cached (entries, debris, legacy files, the
                           small caches); what a running build uses stays
  path                     print the cache directory, then each place in it and what it holds
      --cache-dir DIR      the cache directory (default as above)
      --json               print the result as JSON
      --verbose            prune, clear: list what was removed; with errors, the code and causes

A prune or clear never removes what a running build is reading, writing or copying,
and touches only files irb names (a kernel you unpacked under the directory stays).
After a build that stored something, the cache is trimmed to $IRB_CACHE_MAX_SIZE
(default 10G; "off" disables it).`;

export function parse(argv: string[]): CacheArgs | 'help' {
  const [action, ...rest] = argv;
  if (action === '-h' || action === '--help') return 'help';
  if (action === undefined) throw new UsageError('missing the action: ls, prune, clear or path');
  if (!(ACTIONS as readonly string[]).includes(action)) {
    const guess = didYouMean(action, ACTIONS);
    throw new UsageError(
      `unknown cache action "${action}" (${guess ? `did you mean "${guess}"?` : `actions: ${ACTIONS.join(', ')}`})`,
    );
  }
  const { values, positionals } = parseOptions(rest, {
    'cache-dir': { type: 'string' },
    json: { type: 'boolean' },
    verbose: { type: 'boolean' },
    ...(action === 'prune' ? { 'max-size': { type: 'string' }, 'older-than': { type: 'string' } } : {}),
  });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const args: CacheArgs = {
    action: action as CacheArgs['action'],
    json: Boolean(values.json),
    verbose: Boolean(values.verbose),
  };
  if (values['cache-dir'] !== undefined) {
    if (values['cache-dir'] === '') throw new UsageError('--cache-dir needs a directory');
    args.cacheDir = String(values['cache-dir']);
  }
  if (values['max-size'] !== undefined) args.maxSize = String(values['max-size']);
  if (values['older-than'] !== undefined) args.olderThan = String(values['older-than']);
  return args;
}

function entryJson(e: CacheEntry): Record<string, unknown> {
  return {
    kind: e.kind,
    digest: e.digest ?? null,
    size: e.size,
    lastUsed: e.lastUsed.toISOString(),
    inUse: e.inUse,
    path: e.path,
  };
}

/** A date as `YYYY-MM-DD HH:MM` in UTC, like `irb ls`. */
function when(date: Date): string {
  return date.toISOString().slice(0, 16).replace('T', ' ');
}

function json(io: CliIo, value: unknown): number {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  return EXIT.ok;
}

/** How the last line of `ls` counts each kind: blobs, indexes and outputs always, the rest when present. */
const KIND_WORDS: ReadonlyArray<[CacheEntry['kind'], string, boolean]> = [
  ['blob', 'blobs', true],
  ['index', 'layer indexes', true],
  ['output', 'output files', true],
  ['debris', 'debris files', false],
  ['legacy', 'legacy files', false],
  ['other', 'other', false],
];

function listText(root: string, entries: CacheEntry[]): string[] {
  const rows = [
    ['KIND', 'DIGEST OR PATH', 'SIZE', 'LAST USED', ''],
    ...entries.map((e) => [
      e.kind,
      e.digest ?? e.path,
      formatBytes(e.size),
      when(e.lastUsed),
      e.inUse ? 'in use' : '',
    ]),
  ];
  const lines = entries.length > 0 ? table(rows, [false, false, true]).map((l) => l.trimEnd()) : [];
  const counts = KIND_WORDS.flatMap(([kind, words, always]) => {
    const of = entries.filter((e) => e.kind === kind);
    if (of.length === 0 && !always) return [];
    return [`${of.length} ${words} (${formatBytes(of.reduce((s, e) => s + e.size, 0))})`];
  });
  const total = entries.reduce((sum, e) => sum + e.size, 0);
  lines.push(`${counts.join(', ')} in ${root}; ${formatBytes(total)} in all`);
  if (entries.some((e) => e.kind === 'debris' || e.kind === 'legacy'))
    lines.push('debris and legacy files are never read; irb cache prune removes them');
  return lines;
}

/** The lines every prune and clear print after their first: what was kept in use, leftovers, the list. */
function removalText(result: PruneCacheResult, verbose: boolean): string[] {
  const lines: string[] = [];
  if (result.keptInUse > 0) lines.push(`  ${result.keptInUse} kept because a running build uses them`);
  if (result.orphansRemoved > 0) lines.push(`  ${result.orphansRemoved} leftovers of killed builds removed`);
  if (result.legacyRemoved > 0)
    lines.push(`  ${result.legacyRemoved} files of an earlier irb's cache layout removed`);
  if (verbose) {
    for (const e of result.removed)
      lines.push(`  removed ${e.kind} ${e.digest ?? e.path} (${formatBytes(e.size)})`);
  }
  return lines;
}

/** What a prune or clear did, for `--json`. */
function removalJson(result: PruneCacheResult) {
  return {
    removedBytes: result.removedBytes,
    keptBytes: result.keptBytes,
    kept: result.kept,
    keptInUse: result.keptInUse,
    orphansRemoved: result.orphansRemoved,
    legacyRemoved: result.legacyRemoved,
    removed: result.removed.map(entryJson),
  };
}

/** `irb cache path`: the light entry alone, so locating the cache loads no registry or compressor. */
async function runPath(args: CacheArgs, io: CliIo): Promise<number> {
  const { cacheAreas, cacheLayout } = await import('@irb/builder/paths');
  const { root } = cacheLayout(args.cacheDir);
  const areas = cacheAreas(root);
  if (args.json) return json(io, { root, areas });
  // The root alone on the first line, for `$(irb cache path | head -n 1)`.
  const rows = areas.map((a) => [a.name, a.path, a.holds]);
  io.stdout.write(`${[root, ...table(rows).map((l) => `  ${l.trimEnd()}`)].join('\n')}\n`);
  return EXIT.ok;
}

/** Runs `irb cache ACTION` through the builder's public API; returns the exit code. */
export async function run(args: CacheArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  if (args.action === 'path') return runPath(args, io);
  const lib = await builder();
  const { root } = lib.cacheLayout(args.cacheDir);
  if (args.action === 'ls') {
    const entries = await lib.listCache(root);
    if (args.json) {
      const totalBytes = entries.reduce((sum, e) => sum + e.size, 0);
      return json(io, { root, totalBytes, entries: entries.map(entryJson) });
    }
    io.stdout.write(`${listText(root, entries).join('\n')}\n`);
    return EXIT.ok;
  }
  if (args.action === 'clear') {
    const result = await lib.clearCache(root, signal ? { signal } : {});
    if (args.json) return json(io, { root, ...removalJson(result) });
    const head = `cleared ${root}: removed ${result.removed.length} files (${formatBytes(result.removedBytes)})`;
    io.stdout.write(`${[head, ...removalText(result, args.verbose)].join('\n')}\n`);
    return EXIT.ok;
  }
  const limits: { maxBytes?: number; olderThanMs?: number } = {};
  if (args.maxSize !== undefined) {
    limits.maxBytes = lib.parseByteSize(args.maxSize);
    if (limits.maxBytes === undefined) {
      throw new UsageError(`--max-size wants a size such as 5G, 500M or 2GB, not "${args.maxSize}"`);
    }
  }
  if (args.olderThan !== undefined) {
    limits.olderThanMs = lib.parseDuration(args.olderThan);
    if (limits.olderThanMs === undefined) {
      throw new UsageError(`--older-than wants a duration such as 30d, 12h or 90m, not "${args.olderThan}"`);
    }
  }
  let maxBytes = limits.maxBytes;
  if (maxBytes === undefined && limits.olderThanMs === undefined) {
    maxBytes = lib.cacheMaxBytes();
    if (maxBytes === undefined) {
      throw new UsageError(
        'IRB_CACHE_MAX_SIZE is off, so there is no limit to trim to; give --max-size or --older-than',
      );
    }
  }
  const result = await lib.pruneCache(root, {
    ...(maxBytes !== undefined ? { maxBytes } : {}),
    ...(limits.olderThanMs !== undefined ? { olderThanMs: limits.olderThanMs } : {}),
    ...(signal ? { signal } : {}),
  });
  if (args.json) {
    return json(io, {
      root,
      maxBytes: maxBytes ?? null,
      olderThanMs: limits.olderThanMs ?? null,
      ...removalJson(result),
    });
  }
  const limit = [
    maxBytes !== undefined
      ? `to ${formatBytes(maxBytes)}${limits.maxBytes === undefined && maxBytes === lib.DEFAULT_CACHE_MAX_BYTES ? ' (the default limit)' : ''}`
      : undefined,
    limits.olderThanMs !== undefined ? 'by age' : undefined,
  ]
    .filter(Boolean)
    .join(' and ');
  const head = `pruned ${root} ${limit}: removed ${result.removed.length} entries (${formatBytes(result.removedBytes)}), kept ${result.kept} (${formatBytes(result.keptBytes)})`;
  io.stdout.write(`${[head, ...removalText(result, args.verbose)].join('\n')}\n`);
  return EXIT.ok;
}
