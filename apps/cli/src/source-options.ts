import type { ParseArgsOptionsConfig } from 'node:util';
import { normalizePlatform, UsageError } from './args.ts';

// A module of its own, imported by args.ts and by the command files that args.ts imports: its
// constants must exist before any of them is evaluated (args.ts' own would not yet, in that cycle).

/** Where an image comes from: platform, insecure registries, keychain modules. */
export const registryOptions = {
  platform: { type: 'string' },
  'insecure-registry': { type: 'string', multiple: true },
  keychain: { type: 'string', multiple: true },
} as const satisfies ParseArgsOptionsConfig;

/**
 * The options of every command that reads an image or a registry and prints a result: where the
 * image comes from (platform, insecure registries, keychains, the cache) and how the result is
 * printed. {@link sourceArgs} reads them.
 */
export const SOURCE_OPTIONS = {
  ...registryOptions,
  'cache-dir': { type: 'string' },
  'no-cache': { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  verbose: { type: 'boolean' },
} as const satisfies ParseArgsOptionsConfig;

/** What {@link SOURCE_OPTIONS} parse to. */
export interface SourceArgs {
  platform?: string;
  insecureRegistries: string[];
  keychains: string[];
  cacheDir?: string;
  noCache: boolean;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
}

/** Reads {@link SOURCE_OPTIONS}, refusing flags that exclude each other. */
export function sourceArgs(command: string, values: Record<string, unknown>): SourceArgs {
  if (values['cache-dir'] !== undefined && values['no-cache']) {
    throw new UsageError('--cache-dir and --no-cache exclude each other', command);
  }
  if (values.quiet && values.verbose) {
    throw new UsageError('--quiet and --verbose exclude each other', command);
  }
  // `arm64` means linux/arm64 for every command, as docker, crane and skopeo read it.
  const platform =
    values.platform === undefined ? undefined : normalizePlatform(command, String(values.platform));
  return {
    insecureRegistries: (values['insecure-registry'] as string[] | undefined) ?? [],
    keychains: (values.keychain as string[] | undefined) ?? [],
    noCache: Boolean(values['no-cache']),
    json: Boolean(values.json),
    quiet: Boolean(values.quiet),
    verbose: Boolean(values.verbose),
    ...(values['cache-dir'] !== undefined ? { cacheDir: String(values['cache-dir']) } : {}),
    ...(platform !== undefined ? { platform } : {}),
  };
}
