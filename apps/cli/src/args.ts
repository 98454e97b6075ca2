import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { type AnalyzeArgs, parseAnalyze } from './analyze-command.ts';
import { type AppendArgs, parseAppendArgs } from './append-command.ts';
import { type CacheArgs, parseCacheArgs } from './cache-command.ts';
import { type FleetArgs, parseFleet, remoteCacheArgs, remoteCacheOptions } from './fleet-command.ts';
import { SLIM_OPTIONS, type SlimArgs, slimArgs } from './slim-options.ts';
import { registryOptions } from './source-options.ts';
import { parseTrace, type TraceArgs } from './trace-command.ts';

/** A command-line mistake: printed with a hint to `--help`, exit code 2. */
export class UsageError extends Error {
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/**
 * The compressions `irb build` writes: the one table behind `-c`, its levels, the default output
 * name and the `-o` endings that pick it. A new compression is one more row.
 */
export const COMPRESSIONS = {
  gzip: { levels: [1, 9], output: 'initramfs.cpio.gz', endings: ['.gz', '.gzip'] },
  zstd: { levels: [1, 19], output: 'initramfs.cpio.zst', endings: ['.zst', '.zstd'] },
  // The kernel's legacy lz4 format: one level; fast to unpack, larger than zstd.
  lz4: { levels: [1, 1], output: 'initramfs.cpio.lz4', endings: ['.lz4'] },
  none: { levels: [0, 0], output: 'initramfs.cpio', endings: ['.cpio'] },
} as const satisfies Record<string, { levels: [number, number]; output: string; endings: readonly string[] }>;

/** Compression names the CLI accepts. */
export type CompressionName = keyof typeof COMPRESSIONS;

/** Endings of compressions irb reads about but does not write: refused for `-o`. */
const FOREIGN_ENDINGS: Record<string, string> = {
  '.xz': 'xz',
  '.lzma': 'lzma',
  '.bz2': 'bzip2',
};

function isCompressionName(name: string): name is CompressionName {
  return Object.hasOwn(COMPRESSIONS, name);
}

/** Parsed `irb build` (`slim`, `keepOnly`, `keep`: see slim-options.ts). */
export interface BuildArgs extends SlimArgs {
  command: 'build';
  image: string;
  output: string;
  compression: CompressionName;
  level?: number;
  threads?: number;
  platform?: string;
  inject: string[];
  init?: string;
  replaceInit: boolean;
  keepInit: boolean;
  onExit: 'poweroff' | 'reboot';
  initKind: 'auto' | 'static' | 'sh';
  /** `--allow-arch-mismatch`: a program built for another architecture is a warning, not an error. */
  allowArchMismatch?: true;
  exclude: string[];
  cacheDir?: string;
  noCache: boolean;
  /** `--cache-from` / `--cache-to` repositories (see fleet-command.ts). */
  cacheFrom?: string;
  cacheTo?: string;
  insecureRegistries: string[];
  keychains: string[];
  json: boolean;
  quiet: boolean;
  verbose: boolean;
}

/** Parsed `irb inspect` and `irb list-layers`. */
export interface ImageArgs {
  command: 'inspect' | 'list-layers';
  image: string;
  platform?: string;
  insecureRegistries: string[];
  keychains: string[];
  json: boolean;
  verbose: boolean;
}

/** Parsed `irb ls`. */
export interface LsArgs {
  command: 'ls';
  archive: string;
  json: boolean;
  verbose: boolean;
}

/** Parsed `irb boot`. */
export interface BootArgs {
  command: 'boot';
  archive: string;
  kernel?: string;
  memoryMb?: number;
  timeoutS?: number;
  expect?: string;
  kernelArgs: string[];
  /** `--timeline`: boot `runs` times and print each phase's median instead of the console. */
  timeline: boolean;
  runs: number;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
}

/** What `irb` was asked to do. */
export type CliArgs =
  | BuildArgs
  | ImageArgs
  | LsArgs
  | BootArgs
  | CacheArgs
  | FleetArgs
  | AnalyzeArgs
  | TraceArgs
  | AppendArgs
  | { command: 'help'; topic?: string }
  | { command: 'version' };

/** The commands, in help order. */
export const COMMANDS = [
  'build',
  'append',
  'inspect',
  'list-layers',
  'ls',
  'analyze',
  'boot',
  'trace',
  'cache',
  'push',
  'pull',
] as const;

/** Default output name for a compression (what `-o` defaults to). */
export function defaultOutput(compression: CompressionName): string {
  return COMPRESSIONS[compression].output;
}

/** The flags every command that reads an image takes. */

/** Edit distance (insertions, deletions, substitutions, adjacent swaps) between two short words. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate closest to `word`, when it is close enough to be a typo of it. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // A third of the word may be wrong (at least one letter, at most three): "--cach-dir", "buld".
  const allowed = Math.min(3, Math.max(1, Math.floor(word.replace(/^-+/, '').length / 3)));
  if (best !== undefined && bestDistance <= allowed) return best;
  // A unique prefix counts too: "--insecure" for "--insecure-registry".
  const prefixed = candidates.filter((c) => word.length >= 3 && c.startsWith(word));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/**
 * node:util parseArgs with `-h/--help`, strict, in the CLI's words: an unknown option gets a
 * "did you mean"; every mistake is a {@link UsageError} for `command`.
 */
export function parseOptions(
  command: string,
  argv: string[],
  options: ParseArgsOptionsConfig,
): { values: Record<string, unknown>; positionals: string[] } {
  const all: ParseArgsOptionsConfig = { ...options, help: { type: 'boolean', short: 'h' } };
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: all,
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Record<string, unknown>, positionals };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const unknown = error instanceof Error ? /Unknown option '([^']+)'/.exec(error.message)?.[1] : undefined;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown !== undefined) {
      const flags = Object.entries(all).flatMap(([name, o]) => [
        `--${name}`,
        ...(o.short ? [`-${o.short}`] : []),
      ]);
      // "--no-cach" and "--no-cache=1" are typos of --no-cache; "-cache-dir" of --cache-dir.
      const word = unknown.split('=')[0]!;
      const guess = didYouMean(word, flags) ?? didYouMean(`-${word}`, flags);
      throw new UsageError(`unknown option "${unknown}"${guess ? ` (did you mean ${guess}?)` : ''}`, command);
    }
    // node:util's messages are good but long-winded; keep the first sentence.
    const message = error instanceof Error ? error.message.split('. ')[0]!.replace(/\.$/, '') : String(error);
    throw new UsageError(message, command);
  }
}

/** Architectures that, given alone (`arm64`, `arm64/v8`), mean that architecture on Linux. */
const ARCHITECTURES = new Set([
  'amd64',
  'arm64',
  'arm',
  '386',
  'ppc64le',
  's390x',
  'riscv64',
  'mips64le',
  'loong64',
]);

/** `os/arch[/variant]`; an architecture alone means Linux, as docker, crane and skopeo read it. */
export function normalizePlatform(command: string, raw: string): string {
  const text = raw.trim();
  const first = text.split('/')[0]!.toLowerCase();
  const full = ARCHITECTURES.has(first) ? `linux/${text}` : text;
  if (!/^[a-z0-9_-]+\/[a-z0-9_-]+(\/[a-z0-9_.-]+)?$/i.test(full)) {
    throw new UsageError(
      `--platform wants os/arch[/variant] or an architecture (e.g. linux/arm64/v8, arm64), not "${raw}"`,
      command,
    );
  }
  return full;
}

function platform(command: string, raw: unknown): string | undefined {
  return raw === undefined ? undefined : normalizePlatform(command, String(raw));
}

/**
 * What a known file name ending says about its compression: `{ writes }` for one irb writes,
 * `{ foreign }` for one it does not, `undefined` for an ending that says nothing (`.img`).
 */
export function compressionFromName(
  name: string,
): { writes: CompressionName } | { foreign: string } | undefined {
  const lower = name.toLowerCase();
  for (const [compression, { endings }] of Object.entries(COMPRESSIONS)) {
    if (endings.some((e) => lower.endsWith(e))) return { writes: compression as CompressionName };
  }
  for (const [ending, foreign] of Object.entries(FOREIGN_ENDINGS)) {
    if (lower.endsWith(ending)) return { foreign };
  }
  return undefined;
}

/** The one positional argument `what`; none or more is a usage error. */
export function one(command: string, positionals: string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`missing ${what}`, command);
  if (positionals.length > 1) {
    throw new UsageError(`unexpected argument "${positionals[1]}" (one ${what} expected)`, command);
  }
  return positionals[0]!;
}

/** A whole number flag from `min` to `max`, or `undefined` when not given. */
export function integer(
  command: string,
  flag: string,
  raw: unknown,
  min: number,
  max: number,
): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, not "${text}"`, command);
  }
  return Number(text);
}

function seconds(command: string, flag: string, raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) {
    throw new UsageError(`--${flag} must be a positive number of seconds, not "${text}"`, command);
  }
  return Number(text);
}

/** Parses `irb`'s argv (without node and script); throws {@link UsageError} on mistakes. */
export function parseCli(argv: string[]): CliArgs {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help') return { command: 'help' };
  if (first === 'help') return rest[0] ? { command: 'help', topic: rest[0] } : { command: 'help' };
  if (first === '-v' || first === '--version' || first === 'version') return { command: 'version' };
  switch (first) {
    case 'build':
      return parseBuild(rest);
    case 'inspect':
    case 'list-layers': {
      const { values, positionals } = parseOptions(first, rest, {
        ...registryOptions,
        json: { type: 'boolean' },
        verbose: { type: 'boolean' },
      });
      if (values.help) return { command: 'help', topic: first };
      const args: ImageArgs = {
        command: first,
        image: one(first, positionals, 'IMAGE'),
        insecureRegistries: (values['insecure-registry'] as string[] | undefined) ?? [],
        keychains: (values.keychain as string[] | undefined) ?? [],
        json: Boolean(values.json),
        verbose: Boolean(values.verbose),
      };
      const p = platform(first, values.platform);
      if (p !== undefined) args.platform = p;
      return args;
    }
    case 'ls': {
      const { values, positionals } = parseOptions(first, rest, {
        json: { type: 'boolean' },
        verbose: { type: 'boolean' },
      });
      if (values.help) return { command: 'help', topic: first };
      return {
        command: 'ls',
        archive: one(first, positionals, 'ARCHIVE'),
        json: Boolean(values.json),
        verbose: Boolean(values.verbose),
      };
    }
    case 'boot':
      return parseBoot(rest);
    case 'cache':
      return parseCacheArgs(rest);
    case 'push':
    case 'pull':
      return parseFleet(first, rest);
    case 'analyze':
      return parseAnalyze(rest);
    case 'trace':
      return parseTrace(rest);
    case 'append':
      return parseAppendArgs(rest);
    default: {
      if (first.startsWith('-')) {
        const guess = didYouMean(first, ['--help', '--version', '-h', '-v']);
        throw new UsageError(`unknown option "${first}"${guess ? ` (did you mean ${guess}?)` : ''}`);
      }
      const guess = didYouMean(first, [...COMMANDS, 'help', 'version']);
      throw new UsageError(
        `unknown command "${first}" (${guess ? `did you mean "${guess}"?` : `commands: ${COMMANDS.join(', ')}`})`,
      );
    }
  }
}

function parseBuild(argv: string[]): CliArgs {
  const { values, positionals } = parseOptions('build', argv, {
    output: { type: 'string', short: 'o' },
    compression: { type: 'string', short: 'c' },
    level: { type: 'string' },
    threads: { type: 'string' },
    ...registryOptions,
    inject: { type: 'string', multiple: true },
    init: { type: 'string' },
    'replace-init': { type: 'boolean' },
    'keep-init': { type: 'boolean' },
    'on-exit': { type: 'string' },
    'init-kind': { type: 'string' },
    'allow-arch-mismatch': { type: 'boolean' },
    exclude: { type: 'string', multiple: true },
    ...SLIM_OPTIONS,
    'cache-dir': { type: 'string' },
    'no-cache': { type: 'boolean' },
    ...remoteCacheOptions,
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    verbose: { type: 'boolean' },
  });
  if (values.help) return { command: 'help', topic: 'build' };
  const image = one('build', positionals, 'IMAGE');
  const names = Object.keys(COMPRESSIONS);
  const given = values.compression as string | undefined;
  if (given !== undefined && !isCompressionName(given)) {
    throw new UsageError(
      `-c must be ${names.slice(0, -1).join(', ')} or ${names.at(-1)}, not "${given}"`,
      'build',
    );
  }
  const output = values.output as string | undefined;
  // A known ending of -o decides the compression when -c is not given, and must agree with -c
  // when it is: `-o x.cpio.zst` holding gzip would be a trap for whoever reads the name.
  const named = output !== undefined && output !== '-' ? compressionFromName(output) : undefined;
  if (named !== undefined && 'foreign' in named) {
    const endings = Object.values(COMPRESSIONS).map((c) => c.endings[0]);
    throw new UsageError(
      `-o ${output}: irb does not write ${named.foreign}; name the file ${endings.slice(0, -1).join(', ')} or ${endings.at(-1)}`,
      'build',
    );
  }
  if (given !== undefined && named !== undefined && given !== named.writes) {
    throw new UsageError(
      `-o ${output} names ${named.writes === 'none' ? 'a plain cpio' : named.writes} but -c ${given} was given; drop -c or rename the output`,
      'build',
    );
  }
  const compression: CompressionName = given ?? named?.writes ?? 'gzip';
  const [lo, hi] = COMPRESSIONS[compression].levels;
  if (compression === 'none' && values.level !== undefined) {
    throw new UsageError('--level does not apply to -c none', 'build');
  }
  if (values['cache-dir'] !== undefined && values['no-cache']) {
    throw new UsageError('--cache-dir and --no-cache exclude each other', 'build');
  }
  if (values['keep-init'] && (values['replace-init'] || values.init !== undefined)) {
    throw new UsageError('--keep-init excludes --replace-init and --init', 'build');
  }
  if (values.quiet && values.verbose) {
    throw new UsageError('--quiet and --verbose exclude each other', 'build');
  }
  const initKind = (values['init-kind'] ?? 'auto') as string;
  if (initKind !== 'auto' && initKind !== 'static' && initKind !== 'sh') {
    throw new UsageError(`--init-kind must be auto, static or sh, not "${initKind}"`, 'build');
  }
  if (values['init-kind'] !== undefined && (values.init !== undefined || values['keep-init'])) {
    throw new UsageError(
      `--init-kind chooses the generated /init; it excludes ${values.init !== undefined ? '--init' : '--keep-init'}`,
      'build',
    );
  }
  const onExit = (values['on-exit'] ?? 'poweroff') as string;
  if (onExit !== 'poweroff' && onExit !== 'reboot') {
    throw new UsageError(`--on-exit must be poweroff or reboot, not "${onExit}"`, 'build');
  }
  for (const spec of (values.inject as string[] | undefined) ?? []) {
    const colon = spec.lastIndexOf(':');
    if (colon <= 0 || colon === spec.length - 1) {
      throw new UsageError(
        `--inject wants SRC:DEST (a host path and an absolute path in the image), not "${spec}"`,
        'build',
      );
    }
    // A relative DEST has no meaning in an image (there is no working directory at build time);
    // guessing "relative to /" would hide a typo such as a missing leading slash.
    const dest = spec.slice(colon + 1);
    if (!dest.startsWith('/')) {
      throw new UsageError(
        `--inject ${spec}: DEST must be an absolute path in the image, e.g. ${spec.slice(0, colon)}:/${dest}`,
        'build',
      );
    }
  }
  const args: BuildArgs = {
    command: 'build',
    image,
    output: output ?? defaultOutput(compression),
    compression,
    inject: (values.inject as string[] | undefined) ?? [],
    replaceInit: Boolean(values['replace-init']),
    keepInit: Boolean(values['keep-init']),
    onExit,
    initKind,
    exclude: (values.exclude as string[] | undefined) ?? [],
    ...slimArgs('build', values),
    noCache: Boolean(values['no-cache']),
    insecureRegistries: (values['insecure-registry'] as string[] | undefined) ?? [],
    keychains: (values.keychain as string[] | undefined) ?? [],
    json: Boolean(values.json),
    quiet: Boolean(values.quiet),
    verbose: Boolean(values.verbose),
  };
  if (args.output === '') throw new UsageError('-o needs a file name', 'build');
  const level = integer('build', 'level', values.level, lo, hi);
  if (level !== undefined) args.level = level;
  const threads = integer('build', 'threads', values.threads, 1, 1024);
  if (threads !== undefined) args.threads = threads;
  const p = platform('build', values.platform);
  if (p !== undefined) args.platform = p;
  if (values.init !== undefined) args.init = String(values.init);
  if (values['allow-arch-mismatch']) args.allowArchMismatch = true;
  if (values['cache-dir'] !== undefined) args.cacheDir = String(values['cache-dir']);
  Object.assign(args, remoteCacheArgs(values));
  return args;
}

function parseBoot(argv: string[]): CliArgs {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const kernelArgs = dash < 0 ? [] : argv.slice(dash + 1);
  const { values, positionals } = parseOptions('boot', own, {
    kernel: { type: 'string' },
    memory: { type: 'string', short: 'm' },
    timeout: { type: 'string' },
    expect: { type: 'string' },
    timeline: { type: 'boolean' },
    runs: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    verbose: { type: 'boolean' },
  });
  if (values.help) return { command: 'help', topic: 'boot' };
  const args: BootArgs = {
    command: 'boot',
    archive: one('boot', positionals, 'ARCHIVE'),
    kernelArgs,
    timeline: Boolean(values.timeline),
    runs: integer('boot', 'runs', values.runs, 1, 100) ?? 1,
    json: Boolean(values.json),
    quiet: Boolean(values.quiet),
    verbose: Boolean(values.verbose),
  };
  if (!args.timeline) {
    // Both only shape the timeline's report; without it they would be silently ignored.
    const stray = values.runs !== undefined ? '--runs' : values.json ? '--json' : undefined;
    if (stray)
      throw new UsageError(
        `${stray} goes with --timeline (irb boot ARCHIVE --timeline ${stray === '--runs' ? '--runs N' : '--json'})`,
        'boot',
      );
  } else if (values.expect !== undefined) {
    throw new UsageError('--timeline boots until the guest powers off; it excludes --expect', 'boot');
  }
  if (values.kernel !== undefined) args.kernel = String(values.kernel);
  const memory = integer('boot', 'memory', values.memory, 64, 1024 * 1024);
  if (memory !== undefined) args.memoryMb = memory;
  const timeout = seconds('boot', 'timeout', values.timeout);
  if (timeout !== undefined) args.timeoutS = timeout;
  if (values.expect !== undefined) {
    if (values.expect === '') throw new UsageError('--expect needs a non-empty text', 'boot');
    args.expect = String(values.expect);
  }
  return args;
}
