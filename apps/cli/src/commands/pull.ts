/** `irb pull REF -o FILE` / `irb pull --for IMAGE -o FILE`: an initramfs from a registry (see `pullInitramfs`). */
import type { PullInitramfsOptions } from '@irb/builder';
import { type CompressionName, namedCompression } from '../kit/compression.ts';
import { EXIT } from '../kit/errors.ts';
import { formatBytes, table } from '../kit/format.ts';
import type { CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { parseOptions } from '../kit/options.ts';
import { SOURCE_FLAGS, type SourceFlagArgs, sourceFlagArgs, toSourceOptions } from '../kit/source.ts';
import { UsageError } from '../kit/usage.ts';

/** Parsed `irb pull`. */
export interface PullArgs extends SourceFlagArgs {
  /** A reference, or the image whose attached initramfs is wanted (`--for`). */
  from: string | { for: string };
  output: string;
  /** What `-o`'s name says the archive is (`x.cpio.gz`): another is refused. */
  compression?: CompressionName;
}

export const name = 'pull';
export const synopsis = 'pull REF -o FILE';
export const summary = 'fetch one (or: irb pull --for IMAGE -o FILE)';
export const help = `Usage: irb pull REF -o FILE [--platform OS/ARCH[/V]] [options]
       irb pull --for IMAGE -o FILE [--platform OS/ARCH[/V]] [options]

Downloads an initramfs pushed by "irb push" into FILE, verified against its digest
and through the blob cache (a second pull downloads nothing); FILE appears only
once complete. --for finds the initramfs attached to IMAGE; --platform chooses
when several platforms are attached.

  -o, --output FILE       where to write the archive; a .gz, .zst, .lz4 or .cpio ending
                          must match the artifact's compression (else nothing is written)
  --for IMAGE             the image the initramfs was built from
  --platform OS/ARCH[/V]  which one, when several are attached
  --insecure-registry HOST, --keychain MODULE, --cache-dir DIR, --no-cache
  --json, -q/--quiet, --verbose (with errors, the error code and the cause chain)`;

export function parse(argv: string[]): PullArgs | 'help' {
  const { values, positionals } = parseOptions(argv, {
    ...SOURCE_FLAGS,
    output: { type: 'string', short: 'o' },
    for: { type: 'string' },
  });
  if (values.help) return 'help';
  if (values.for !== undefined && positionals.length > 0) {
    throw new UsageError('give either REF or --for IMAGE, not both');
  }
  if (values.for === undefined && positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? 'missing REF (or --for IMAGE)' : `unexpected argument "${positionals[1]}"`,
    );
  }
  const output = values.output as string | undefined;
  if (!output) throw new UsageError('pull wants -o FILE (where to write the initramfs)');
  const compression = namedCompression(output);
  return {
    from: values.for !== undefined ? { for: String(values.for) } : positionals[0]!,
    output,
    ...(compression !== undefined ? { compression } : {}),
    ...sourceFlagArgs(values),
  };
}

export async function run(args: PullArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { pullInitramfs } = await builder();
  const options: PullInitramfsOptions = await toSourceOptions(args, signal);
  if (args.compression !== undefined) options.compression = args.compression;
  const r = await pullInitramfs(args.from, args.output, options);
  if (args.json) {
    io.stdout.write(
      `${JSON.stringify({ output: r.output, reference: r.reference, digest: r.digest, layer: r.layer, compression: r.compression, platform: r.platform, annotations: r.annotations }, null, 2)}\n`,
    );
  } else if (!args.quiet) {
    const memory = r.annotations['dev.irb.memory.recommended-mib'];
    const rows = [
      ['from', r.reference],
      ['archive', `${formatBytes(r.layer.size)} ${r.compression}${r.platform ? `, ${r.platform}` : ''}`],
    ];
    if (memory) rows.push(['memory', `boot with at least ${memory} MiB (mem=${memory}M)`]);
    io.stdout.write(
      `wrote ${r.output}\n${table(rows)
        .map((l) => `  ${l}`)
        .join('\n')}\n`,
    );
  }
  return EXIT.ok;
}
