/** `-o`, `-c` and `--level`: the compressions irb writes and what a file name's ending says. */
import { integer } from './options.ts';
import { UsageError } from './usage.ts';

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

/** Default output name for a compression (what `-o` defaults to). */
export function defaultOutput(compression: CompressionName): string {
  return COMPRESSIONS[compression].output;
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

/** The parseArgs table of `-c` and `--level`. */
export const COMPRESSION_FLAGS = {
  compression: { type: 'string', short: 'c' },
  level: { type: 'string' },
} as const;

/** What `-o`, `-c` and `--level` chose. */
export interface CompressionArgs {
  compression: CompressionName;
  level?: number;
}

/**
 * The compression `-o`'s name says (`x.cpio.zst`: zstd), `undefined` for a name that says none
 * (`x.img`, `-`); a compression irb does not write (`x.xz`) is refused.
 */
export function namedCompression(output: string | undefined): CompressionName | undefined {
  const named = output !== undefined && output !== '-' ? compressionFromName(output) : undefined;
  if (named !== undefined && 'foreign' in named) {
    const endings = Object.values(COMPRESSIONS).map((c) => c.endings[0]);
    throw new UsageError(
      `-o ${output}: irb does not write ${named.foreign}; name the file ${endings.slice(0, -1).join(', ')} or ${endings.at(-1)}`,
    );
  }
  return named?.writes;
}

/**
 * The compression `-c` and `-o`'s name choose, `undefined` when neither says. A known ending
 * decides when `-c` is not given, and must agree with `-c` when it is: `-o x.cpio.zst` holding
 * gzip would be a trap for whoever reads the name.
 */
export function chosenCompression(
  values: Record<string, unknown>,
  output: string | undefined,
): CompressionName | undefined {
  const names = Object.keys(COMPRESSIONS);
  const given = values.compression as string | undefined;
  if (given !== undefined && !isCompressionName(given)) {
    throw new UsageError(`-c must be ${names.slice(0, -1).join(', ')} or ${names.at(-1)}, not "${given}"`);
  }
  const named = namedCompression(output);
  if (given !== undefined && named !== undefined && given !== named) {
    throw new UsageError(
      `-o ${output} names ${named === 'none' ? 'a plain cpio' : named} but -c ${given} was given; drop -c or rename the output`,
    );
  }
  return given ?? named;
}

/** `--level` checked against `compression`'s levels; `undefined` when not given. */
export function levelFor(values: Record<string, unknown>, compression: CompressionName): number | undefined {
  if (values.level === undefined) return undefined;
  if (compression === 'none') throw new UsageError('--level does not apply to -c none');
  const [lo, hi] = COMPRESSIONS[compression].levels;
  // "from 1 to 1" would read like a typo of ours: a compression with one level says so.
  if (lo === hi && String(values.level) !== String(lo)) {
    throw new UsageError(`--level ${values.level}: ${compression} has one level (${lo}); leave --level out`);
  }
  return integer('level', values.level, lo, hi);
}

/** Reads `-c` and `--level` against `-o`'s name for a command that writes gzip by default. */
export function compressionArgs(
  values: Record<string, unknown>,
  output: string | undefined,
): CompressionArgs {
  const compression = chosenCompression(values, output) ?? 'gzip';
  const level = levelFor(values, compression);
  return level === undefined ? { compression } : { compression, level };
}
