import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { COMPRESSION_LEVELS } from '@irb/compress';
import type { InitramfsBuilderOptions, InitramfsCompression } from './types.ts';

/*
 * Keys of the local output cache. The base member's key depends on the image and on the options
 * that shape the image's files only — never on what goes into the overlay (inject, /init and its
 * options) — so one cached base serves every job built on that image.
 *
 * When the remote build key (build-key.ts) lands beside this file, `baseKey` belongs there and
 * its canonical JSON is the same rule: sorted keys, no whitespace, absent values left out.
 */

/** Bumped whenever what irb writes into a base member for the same inputs changes. */
export const BASE_FORMAT_VERSION = 1;

/** JSON with sorted keys and no `undefined`: the same value always gives the same text. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => canonical(v ?? null)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined && typeof v !== 'function')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
}

let builderVersion: string | undefined;

/** This package's version (src/ and dist/ both sit beside package.json). */
export function irbBuilderVersion(): string {
  builderVersion ??= (
    JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  ).version;
  return builderVersion;
}

/** What the base member's bytes depend on. */
export interface BaseKeyInput {
  manifestDigest: string;
  compression: InitramfsCompression;
  options: Pick<InitramfsBuilderOptions, 'platform' | 'level' | 'exclude'>;
  sourceDateEpoch: number | undefined;
}

/**
 * The base member's key (64 hex digits): sha256 over the canonical JSON of the format version,
 * irb's builder version, the platform manifest digest, the platform, compression and level
 * (defaults filled in), `exclude`, the image-shaping options `slim`/`keepOnly` when the builder
 * has them, and SOURCE_DATE_EPOCH.
 */
export function baseKey(input: BaseKeyInput): string {
  const { compression, options } = input;
  const shaping = options as Record<string, unknown>;
  const text = canonical({
    format: BASE_FORMAT_VERSION,
    irb: irbBuilderVersion(),
    manifest: input.manifestDigest,
    platform: options.platform ?? 'linux/amd64',
    compression,
    level: compression === 'none' ? undefined : (options.level ?? COMPRESSION_LEVELS[compression].default),
    exclude: [...(options.exclude ?? [])],
    slim: shaping.slim,
    keepOnly: shaping.keepOnly,
    sourceDateEpoch: input.sourceDateEpoch,
  });
  return createHash('sha256').update(text).digest('hex');
}
