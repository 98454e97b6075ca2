/**
 * The flags of every command that reads an image or a registry (where it comes from, the blob
 * cache) and of every command that prints a report (json, quiet, verbose), and the one mapping
 * from them to the library's options.
 */
import type { ParseArgsOptionsConfig } from 'node:util';
import type { Keychain } from '@irb/builder';
import { keychains } from './library.ts';
import { normalizePlatform, strings } from './options.ts';
import { UsageError } from './usage.ts';

/** Where an image comes from: platform, insecure registries, keychain modules. */
export const REGISTRY_FLAGS = {
  platform: { type: 'string' },
  'insecure-registry': { type: 'string', multiple: true },
  keychain: { type: 'string', multiple: true },
} as const satisfies ParseArgsOptionsConfig;

/** The blob cache: another directory, or none. */
export const CACHE_FLAGS = {
  'cache-dir': { type: 'string' },
  'no-cache': { type: 'boolean' },
} as const satisfies ParseArgsOptionsConfig;

/** How a result is printed. */
export const REPORT_FLAGS = {
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  verbose: { type: 'boolean' },
} as const satisfies ParseArgsOptionsConfig;

/** The flags of a command that reads an image through the cache and prints a report. */
export const SOURCE_FLAGS = { ...REGISTRY_FLAGS, ...CACHE_FLAGS, ...REPORT_FLAGS } as const;

/** What {@link REGISTRY_FLAGS} and {@link CACHE_FLAGS} parse to. */
export interface SourceArgs {
  platform?: string;
  insecureRegistries: string[];
  keychains: string[];
  cacheDir?: string;
  noCache: boolean;
}

/** What {@link REPORT_FLAGS} parse to. */
export interface ReportArgs {
  json: boolean;
  quiet: boolean;
  verbose: boolean;
}

/** Reads {@link REGISTRY_FLAGS} and {@link CACHE_FLAGS} (either may be absent from the command). */
export function sourceArgs(values: Record<string, unknown>): SourceArgs {
  if (values['cache-dir'] !== undefined && values['no-cache']) {
    throw new UsageError('--cache-dir and --no-cache exclude each other');
  }
  // `arm64` means linux/arm64 for every command, as docker, crane and skopeo read it.
  const platform = values.platform === undefined ? undefined : normalizePlatform(String(values.platform));
  return {
    insecureRegistries: strings(values['insecure-registry']),
    keychains: strings(values.keychain),
    noCache: Boolean(values['no-cache']),
    ...(values['cache-dir'] !== undefined ? { cacheDir: String(values['cache-dir']) } : {}),
    ...(platform !== undefined ? { platform } : {}),
  };
}

/** Reads {@link REPORT_FLAGS}, refusing --quiet with --verbose. */
export function reportArgs(values: Record<string, unknown>): ReportArgs {
  if (values.quiet && values.verbose) throw new UsageError('--quiet and --verbose exclude each other');
  return { json: Boolean(values.json), quiet: Boolean(values.quiet), verbose: Boolean(values.verbose) };
}

/** What {@link SOURCE_FLAGS} parse to. */
export type SourceFlagArgs = SourceArgs & ReportArgs;

/** Reads {@link SOURCE_FLAGS}. */
export function sourceFlagArgs(values: Record<string, unknown>): SourceFlagArgs {
  return { ...sourceArgs(values), ...reportArgs(values) };
}

/** The library's options for {@link SourceArgs}: every command's one mapping. */
export interface LibrarySourceOptions {
  insecureRegistries: string[];
  keychains?: Keychain[];
  platform?: string;
  cacheDir?: string;
  cache?: false;
  signal?: AbortSignal;
}

/** Maps parsed source flags to library options, loading `--keychain` modules. */
export async function toSourceOptions(args: SourceArgs, signal?: AbortSignal): Promise<LibrarySourceOptions> {
  const custom = await keychains(args.keychains);
  return {
    insecureRegistries: args.insecureRegistries,
    ...(custom ? { keychains: custom } : {}),
    ...(args.platform !== undefined ? { platform: args.platform } : {}),
    ...(args.cacheDir !== undefined ? { cacheDir: args.cacheDir } : {}),
    ...(args.noCache ? { cache: false as const } : {}),
    ...(signal ? { signal } : {}),
  };
}
