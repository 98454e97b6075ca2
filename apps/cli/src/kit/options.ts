/** Option parsing in the CLI's words: flags, positionals, numbers and platforms. */
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { didYouMean, UsageError } from './usage.ts';

/** What {@link parseOptions} read: flag values by long name, and the positional words. */
export interface ParsedOptions {
  values: Record<string, unknown>;
  positionals: string[];
}

/**
 * node:util parseArgs with `-h/--help`, strict, in the CLI's words: an unknown option gets a
 * "did you mean"; every mistake is a {@link UsageError}.
 */
export function parseOptions(argv: string[], options: ParseArgsOptionsConfig): ParsedOptions {
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
      throw new UsageError(`unknown option "${unknown}"${guess ? ` (did you mean ${guess}?)` : ''}`);
    }
    // node:util's messages are good but long-winded; keep the first sentence.
    const message = error instanceof Error ? error.message.split('. ')[0]!.replace(/\.$/, '') : String(error);
    throw new UsageError(message);
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
