/** Option parsing in the CLI's words: flags, positionals, numbers and platforms. */
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { didYouMean, UsageError } from './usage.ts';

/** What {@link parseOptions} read: flag values by long name, and the positional words. */
export interface ParsedOptions {
  values: Record<string, unknown>;
  positionals: string[];
}

/** How a flag of `options` is written for a person: `--output`, `-o/--output`. */
function flagName(options: ParseArgsOptionsConfig, long: string): string {
  const short = options[long]?.short;
  return short ? `-${short}/--${long}` : `--${long}`;
}

/** The long name of the flag `word` (`--output`, `--output=x`, `-o`) among `options`. */
function longName(options: ParseArgsOptionsConfig, word: string): string | undefined {
  if (word.startsWith('--')) return word.slice(2).split('=')[0];
  if (word.length === 2) return Object.entries(options).find(([, o]) => o.short === word[1])?.[0];
  return undefined;
}

/**
 * `--timeout -1` as `--timeout=-1`: a negative number after a flag that takes a value is that
 * value (parseArgs would take it for an option), so the flag's own check can refuse it in words.
 */
function joinNegativeNumbers(argv: readonly string[], options: ParseArgsOptionsConfig): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    const next = argv[i + 1];
    const long = longName(options, word);
    if (!word.includes('=') && long && options[long]?.type === 'string' && next && /^-\d/.test(next)) {
      out.push(`--${long}=${next}`);
      i++;
    } else out.push(word);
  }
  return out;
}

/** node:util's parse error in the CLI's words: one line, naming the flag as a user writes it. */
function parseError(error: unknown, argv: readonly string[], options: ParseArgsOptionsConfig): UsageError {
  const text = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown }).code;
  const unknown = /Unknown option '([^']+)'/.exec(text)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown !== undefined) {
    const flags = Object.entries(options).flatMap(([name, o]) => [
      `--${name}`,
      ...(o.short ? [`-${o.short}`] : []),
    ]);
    // "--no-cach" and "--no-cache=1" are typos of --no-cache; "-cache-dir" of --cache-dir.
    const word = unknown.split('=')[0]!;
    const guess = didYouMean(word, flags) ?? didYouMean(`-${word}`, flags);
    return new UsageError(`unknown option "${unknown}"${guess ? ` (did you mean ${guess}?)` : ''}`);
  }
  // "Option '-o, --output <value>' argument missing", "Option '--timeout' argument is ambiguous…",
  // "Option '--json' does not take an argument": the flag is the last word of the quoted part.
  const quoted = /^Option '([^']+)'/.exec(text)?.[1];
  const long = quoted
    ? longName(
        options,
        quoted
          .replace(/ <value>$/, '')
          .split(', ')
          .at(-1)!,
      )
    : undefined;
  if (long !== undefined && options[long]) {
    const name = flagName(options, long);
    if (/does not take an argument/.test(text)) return new UsageError(`${name} takes no value`);
    if (/argument is ambiguous/.test(text)) {
      const at = argv.findIndex((w) => longName(options, w) === long && !w.includes('='));
      const next = argv[at + 1];
      return new UsageError(
        `${name} needs a value; "${next}" looks like an option (if it is the value, write --${long}=${next})`,
      );
    }
    if (/argument missing/.test(text)) return new UsageError(`${name} needs a value`);
  }
  // Anything else node:util says: its first sentence.
  return new UsageError(text.split(/\.\s/)[0]!.replace(/\.$/, ''));
}

/**
 * node:util parseArgs with `-h/--help`, strict, in the CLI's words: an unknown option gets a
 * "did you mean", a missing value is named; every mistake is a {@link UsageError}.
 */
export function parseOptions(argv: string[], options: ParseArgsOptionsConfig): ParsedOptions {
  const all: ParseArgsOptionsConfig = { ...options, help: { type: 'boolean', short: 'h' } };
  const args = joinNegativeNumbers(argv, all);
  try {
    const { values, positionals } = parseArgs({ args, options: all, allowPositionals: true, strict: true });
    return { values: values as Record<string, unknown>, positionals };
  } catch (error) {
    throw parseError(error, args, all);
  }
}

/** The one positional argument `what`; none or more is a usage error. */
export function one(positionals: string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`missing ${what}`);
  if (positionals.length > 1) {
    throw new UsageError(`unexpected argument "${positionals[1]}" (one ${what} expected)`);
  }
  return positionals[0]!;
}

/** A whole number flag from `min` to `max`, or `undefined` when not given. */
export function integer(flag: string, raw: unknown, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, not "${text}"`);
  }
  return Number(text);
}

/** A positive number of seconds (fractions allowed), or `undefined` when not given. */
export function seconds(flag: string, raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) {
    throw new UsageError(`--${flag} must be a positive number of seconds, not "${text}"`);
  }
  return Number(text);
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
export function normalizePlatform(raw: string): string {
  const text = raw.trim();
  const first = text.split('/')[0]!.toLowerCase();
  const full = ARCHITECTURES.has(first) ? `linux/${text}` : text;
  if (!/^[a-z0-9_-]+\/[a-z0-9_-]+(\/[a-z0-9_.-]+)?$/i.test(full)) {
    throw new UsageError(
      `--platform wants os/arch[/variant] or an architecture (e.g. linux/arm64/v8, arm64), not "${raw}"`,
    );
  }
  return full;
}

/** Strings of a repeatable flag (none given: empty). */
export function strings(raw: unknown): string[] {
  return (raw as string[] | undefined) ?? [];
}

/** What a command that reads one archive and prints it (`irb ls`, `irb config`) parses. */
export interface ArchiveArgs {
  archive: string;
  json: boolean;
  verbose: boolean;
}

/** Parses `ARCHIVE|- [--json] [--verbose]`. */
export function parseArchiveArgs(argv: string[]): ArchiveArgs | 'help' {
  const { values, positionals } = parseOptions(argv, {
    json: { type: 'boolean' },
    verbose: { type: 'boolean' },
  });
  if (values.help) return 'help';
  return {
    archive: one(positionals, 'ARCHIVE'),
    json: Boolean(values.json),
    verbose: Boolean(values.verbose),
  };
}
