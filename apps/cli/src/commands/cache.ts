/** `irb cache ls|prune`: what builds keep on disk, listed or trimmed (see `listCache`, `pruneCache`). */
import type { CacheEntry } from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { formatBytes, table } from '../kit/format.ts';
import type { CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { parseOptions } from '../kit/options.ts';
import { didYouMean, UsageError } from '../kit/usage.ts';

/** Parsed `irb cache ls` / `irb cache prune`. */
export interface CacheArgs {
  action: 'ls' | 'prune';
  cacheDir?: string;
  /** `--max-size` as given (checked by {@link runCache}, which loads the parser). */
  maxSize?: string;
  /** `--older-than` as given. */
  olderThan?: string;
  json: boolean;
  verbose: boolean;
}

export const name = 'cache';
export const synopsis = 'cache ls|prune';
export const summary = 'list or trim the blob, layer index and output caches';
export const help = `Usage: irb cache ls [--cache-dir DIR] [--json] [--verbose]
       irb cache prune [--max-size SIZE] [--older-than DURATION] [--cache-dir DIR] [--json] [--verbose]

Shows or trims what builds keep on disk: verified blobs by digest in the cache
directory ($IRB_CACHE_DIR, else ~/.cache/irb/blobs), parsed layer headers in
the index directory beside it (~/.cache/irb/index, or DIR-index for any other DIR),
built members (image bases, overlays) and the trees irb append read of archives in
the output directory (~/.cache/irb/output, or DIR-output).

  ls                       list blobs, layer indexes and outputs: kind, digest, size, last use
                           (most recent first); "in use" marks blobs a running build holds
  prune                    remove least recently used entries first; with neither option,
                           trim to the automatic limit ($IRB_CACHE_MAX_SIZE, default 10G)
      --max-size SIZE      keep at most SIZE (e.g. 5G, 500M, 2GB; K/M/G = 1024-based)
      --older-than DURATION  remove entries unused for longer (e.g. 30d, 12h, 90m)
      --cache-dir DIR      the cache directory (default $IRB_CACHE_DIR or ~/.cache/irb/blobs)
      --json               print the result as JSON
      --verbose            prune: list what was removed; with errors, the code and causes

A prune never removes a blob a running build is reading or writing, and removes the
partial downloads of killed builds. After a build that downloaded something, the
cache is trimmed to $IRB_CACHE_MAX_SIZE (default 10G; "off" disables it).`;

export function parse(argv: string[]): CacheArgs | 'help' {
  const [action, ...rest] = argv;
  if (action === '-h' || action === '--help') return 'help';
  if (action === undefined) throw new UsageError('missing the action: ls or prune');
  if (action !== 'ls' && action !== 'prune') {
    const guess = didYouMean(action, ['ls', 'prune']);
    throw new UsageError(
      `unknown cache action "${action}" (${guess ? `did you mean "${guess}"?` : 'actions: ls, prune'})`,
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
    action,
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

/** Runs `irb cache ls|prune` through the builder's public API; returns the exit code. */
export async function run(args: CacheArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const {
    cacheLayout,
    cacheMaxBytes,
    DEFAULT_CACHE_MAX_BYTES,
    listCache,
    parseByteSize,
    parseDuration,
    pruneCache,
  } = await builder();
  const limits: { maxBytes?: number; olderThanMs?: number } = {};
  if (args.maxSize !== undefined) {
    limits.maxBytes = parseByteSize(args.maxSize);
    if (limits.maxBytes === undefined) {
      throw new UsageError(`--max-size wants a size such as 5G, 500M or 2GB, not "${args.maxSize}"`);
    }
  }
  if (args.olderThan !== undefined) {
    limits.olderThanMs = parseDuration(args.olderThan);
    if (limits.olderThanMs === undefined) {
      throw new UsageError(`--older-than wants a duration such as 30d, 12h or 90m, not "${args.olderThan}"`);
    }
  }
  const { root } = cacheLayout(args.cacheDir);
  if (args.action === 'ls') {
    const entries = await listCache(root);
    const total = entries.reduce((sum, e) => sum + e.size, 0);
    if (args.json) {
      io.stdout.write(
        `${JSON.stringify(
          {
            root,
            totalBytes: total,
            entries: entries.map(entryJson),
          },
          null,
          2,
        )}\n`,
      );
      return EXIT.ok;
    }
    const rows = [
      ['KIND', 'DIGEST', 'SIZE', 'LAST USED', ''],
      ...entries.map((e) => [
        e.kind,
        e.digest ?? '-',
        formatBytes(e.size),
        when(e.lastUsed),
        e.inUse ? 'in use' : '',
      ]),
    ];
    const lines = entries.length > 0 ? table(rows, [false, false, true]).map((l) => l.trimEnd()) : [];
    const blobs = entries.filter((e) => e.kind === 'blob');
    const indexes = entries.filter((e) => e.kind === 'index');
    const outputs = entries.filter((e) => e.kind === 'output');
    const sum = (list: CacheEntry[]) => formatBytes(list.reduce((s, e) => s + e.size, 0));
    lines.push(
      `${blobs.length} blobs (${sum(blobs)}), ${indexes.length} layer indexes (${sum(indexes)}), ${outputs.length} output files (${sum(outputs)}) in ${root}; ${formatBytes(total)} in all`,
    );
    io.stdout.write(`${lines.join('\n')}\n`);
    return EXIT.ok;
  }
  let maxBytes = limits.maxBytes;
  if (maxBytes === undefined && limits.olderThanMs === undefined) {
    maxBytes = cacheMaxBytes();
    if (maxBytes === undefined) {
      throw new UsageError(
        'IRB_CACHE_MAX_SIZE is off, so there is no limit to trim to; give --max-size or --older-than',
      );
    }
  }
  const result = await pruneCache(root, {
    ...(maxBytes !== undefined ? { maxBytes } : {}),
    ...(limits.olderThanMs !== undefined ? { olderThanMs: limits.olderThanMs } : {}),
    ...(signal ? { signal } : {}),
  });
  if (args.json) {
    io.stdout.write(
      `${JSON.stringify(
        {
          root,
          maxBytes: maxBytes ?? null,
          olderThanMs: limits.olderThanMs ?? null,
          removedBytes: result.removedBytes,
          keptBytes: result.keptBytes,
          kept: result.kept,
          keptInUse: result.keptInUse,
          orphansRemoved: result.orphansRemoved,
          removed: result.removed.map(entryJson),
        },
        null,
        2,
      )}\n`,
    );
    return EXIT.ok;
  }
  const limit = [
    maxBytes !== undefined
      ? `to ${formatBytes(maxBytes)}${limits.maxBytes === undefined && maxBytes === DEFAULT_CACHE_MAX_BYTES ? ' (the default limit)' : ''}`
      : undefined,
    limits.olderThanMs !== undefined ? 'by age' : undefined,
  ]
    .filter(Boolean)
    .join(' and ');
  const lines = [
    `pruned ${root} ${limit}: removed ${result.removed.length} entries (${formatBytes(result.removedBytes)}), kept ${result.kept} (${formatBytes(result.keptBytes)})`,
  ];
  if (result.keptInUse > 0) lines.push(`  ${result.keptInUse} kept because a running build uses them`);
  if (result.orphansRemoved > 0) lines.push(`  ${result.orphansRemoved} leftovers of killed builds removed`);
  if (args.verbose) {
    for (const e of result.removed)
      lines.push(`  removed ${e.kind} ${e.digest ?? e.path} (${formatBytes(e.size)})`);
  }
  io.stdout.write(`${lines.join('\n')}\n`);
  return EXIT.ok;
}
