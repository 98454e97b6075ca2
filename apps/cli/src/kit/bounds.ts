/** `--max-entries` and `--max-unpacked`: how large an image `irb build` and `irb trace` index. */
import type { InitramfsBuilderOptions } from '@irb/builder';
import { integer } from './options.ts';
import { UsageError } from './usage.ts';

/** The flags, for `parseOptions`. */
export const BOUNDS_FLAGS = {
  'max-entries': { type: 'string' },
  'max-unpacked': { type: 'string' },
} as const;

/** Parsed bounds: `none` is no limit; the size is checked by {@link boundsOptions}, which loads the parser. */
export interface BoundsArgs {
  maxEntries?: number;
  maxUnpacked?: string;
}

/** The help lines of the flags. */
export const BOUNDS_HELP = `      --max-entries N          index at most N tar members (all layers together; default
                               8000000); none: no count limit (a full heap still stops)
      --max-unpacked SIZE      fail when the files unpack to more than SIZE in the guest
                               (default 64G; e.g. 2G, 500M); none: no limit`;

/** The bounds of parsed `values`. */
export function boundsArgs(values: Record<string, unknown>): BoundsArgs {
  const args: BoundsArgs = {};
  const entries = values['max-entries'];
  if (entries === 'none') args.maxEntries = Number.POSITIVE_INFINITY;
  else {
    const n = integer('max-entries', entries, 1, Number.MAX_SAFE_INTEGER);
    if (n !== undefined) args.maxEntries = n;
  }
  if (values['max-unpacked'] !== undefined) args.maxUnpacked = String(values['max-unpacked']);
  return args;
}

/** The builder's options for the bounds; `parseByteSize` is the library's (loaded by the command). */
export function boundsOptions(
  args: BoundsArgs,
  parseByteSize: (text: string) => number | undefined,
): Pick<InitramfsBuilderOptions, 'maxEntries' | 'maxUnpackedBytes'> {
  const out: Pick<InitramfsBuilderOptions, 'maxEntries' | 'maxUnpackedBytes'> = {};
  if (args.maxEntries !== undefined) out.maxEntries = args.maxEntries;
  if (args.maxUnpacked !== undefined) {
    const bytes = args.maxUnpacked === 'none' ? Number.POSITIVE_INFINITY : parseByteSize(args.maxUnpacked);
    if (bytes === undefined) {
      throw new UsageError(
        `--max-unpacked wants a size such as 64G, 500M or 2GB (or none), not "${args.maxUnpacked}"`,
      );
    }
    out.maxUnpackedBytes = bytes;
  }
  return out;
}
