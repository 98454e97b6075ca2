import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { type CacheArgs, parseCacheArgs } from './cache-command.ts';
import { type FleetArgs, parseFleet, remoteCacheArgs, remoteCacheOptions } from './fleet-command.ts';

/** A command-line mistake: printed with a hint to `--help`, exit code 2. */
export class UsageError extends Error {
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/** Compression names the CLI accepts. */
export type CompressionName = 'gzip' | 'zstd' | 'none';

/** Parsed `irb build`. */
export interface BuildArgs {
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
  | { command: 'help'; topic?: string }
  | { command: 'version' };

/** The commands, in help order. */
export const COMMANDS = ['build', 'inspect', 'list-layers', 'ls', 'boot', 'cache', 'push', 'pull'] as const;

/** Default output name for a compression (what `-o` defaults to). */
export function defaultOutput(compression: CompressionName): string {
  return compression === 'gzip'
    ? 'initramfs.cpio.gz'
    : compression === 'zstd'
      ? 'initramfs.cpio.zst'
      : 'initramfs.cpio';
}

const registryOptions = {
  platform: { type: 'string' },
  'insecure-registry': { type: 'string', multiple: true },
  keychain: { type: 'string', multiple: true },
} as const;

function parse(
  command: string,
  argv: string[],
  options: ParseArgsOptionsConfig,
): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Record<string, unknown>, positionals };
  } catch (error) {
    // node:util's messages are good but long-winded; keep the first sentence.
    const message = error instanceof Error ? error.message.split('. ')[0]!.replace(/\.$/, '') : String(error);
    throw new UsageError(message, command);
  }
}

function platform(command: string, raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (!/^[a-z0-9_-]+\/[a-z0-9_-]+(\/[a-z0-9_.-]+)?$/i.test(text)) {
    throw new UsageError(`--platform wants os/arch[/variant] (e.g. linux/arm64/v8), not "${text}"`, command);
  }
  return text;
}

function one(command: string, positionals: string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`missing ${what}`, command);
  if (positionals.length > 1) {
    throw new UsageError(`unexpected argument "${positionals[1]}" (one ${what} expected)`, command);
  }
  return positionals[0]!;
}

function integer(command: string, flag: string, raw: unknown, min: number, max: number): number | undefined {
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

const LEVELS: Record<CompressionName, [number, number]> = { gzip: [1, 9], zstd: [1, 19], none: [0, 0] };

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
      const { values, positionals } = parse(first, rest, {
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
      const { values, positionals } = parse(first, rest, {
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
    default:
      throw new UsageError(
        first.startsWith('-')
          ? `unknown option "${first}"`
          : `unknown command "${first}" (commands: ${COMMANDS.join(', ')})`,
      );
  }
}

function parseBuild(argv: string[]): CliArgs {
  const { values, positionals } = parse('build', argv, {
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
    exclude: { type: 'string', multiple: true },
    'cache-dir': { type: 'string' },
    'no-cache': { type: 'boolean' },
    ...remoteCacheOptions,
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    verbose: { type: 'boolean' },
  });
  if (values.help) return { command: 'help', topic: 'build' };
  const image = one('build', positionals, 'IMAGE');
  const compression = (values.compression ?? 'gzip') as string;
  if (compression !== 'gzip' && compression !== 'zstd' && compression !== 'none') {
    throw new UsageError(`-c must be gzip, zstd or none, not "${compression}"`, 'build');
  }
  const [lo, hi] = LEVELS[compression];
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
  }
  const args: BuildArgs = {
    command: 'build',
    image,
    output: (values.output as string | undefined) ?? defaultOutput(compression),
    compression,
    inject: (values.inject as string[] | undefined) ?? [],
    replaceInit: Boolean(values['replace-init']),
    keepInit: Boolean(values['keep-init']),
    onExit,
    exclude: (values.exclude as string[] | undefined) ?? [],
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
  if (values['cache-dir'] !== undefined) args.cacheDir = String(values['cache-dir']);
  Object.assign(args, remoteCacheArgs(values));
  return args;
}

function parseBoot(argv: string[]): CliArgs {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const kernelArgs = dash < 0 ? [] : argv.slice(dash + 1);
  const { values, positionals } = parse('boot', own, {
    kernel: { type: 'string' },
    memory: { type: 'string', short: 'm' },
    timeout: { type: 'string' },
    expect: { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
    verbose: { type: 'boolean' },
  });
  if (values.help) return { command: 'help', topic: 'boot' };
  const args: BootArgs = {
    command: 'boot',
    archive: one('boot', positionals, 'ARCHIVE'),
    kernelArgs,
    quiet: Boolean(values.quiet),
    verbose: Boolean(values.verbose),
  };
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
