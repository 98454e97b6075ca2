/** `irb list-layers IMAGE`: an image's layers, base first (see `listLayers` in @irb/builder). */
import type { LayerInfo } from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { formatBytes, table } from '../kit/format.ts';
import type { CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { one, parseOptions } from '../kit/options.ts';
import { REGISTRY_FLAGS, type SourceArgs, sourceArgs, toSourceOptions } from '../kit/source.ts';

/** Parsed `irb inspect` and `irb list-layers`: an image, where it comes from, how to print. */
export interface ImageArgs extends SourceArgs {
  image: string;
  json: boolean;
  verbose: boolean;
}

export const name = 'list-layers';
export const synopsis = 'list-layers IMAGE';
export const summary = "list an image's layers with digests and sizes";
export const help = `Usage: irb list-layers IMAGE [--platform OS/ARCH[/V]] [--insecure-registry HOST]... [--keychain MODULE]... [--json] [--verbose]

Lists the layers of IMAGE, base first: digest, media type, size, diff id.
--verbose adds the error code and the cause chain to an error.`;

/** Reads `IMAGE` and the registry flags (no cache flags: nothing is downloaded but metadata). */
export function parseImageArgs(argv: string[]): ImageArgs | 'help' {
  const { values, positionals } = parseOptions(argv, {
    ...REGISTRY_FLAGS,
    json: { type: 'boolean' },
    verbose: { type: 'boolean' },
  });
  if (values.help) return 'help';
  return {
    image: one(positionals, 'IMAGE'),
    ...sourceArgs(values),
    json: Boolean(values.json),
    verbose: Boolean(values.verbose),
  };
}

export const parse = parseImageArgs;

export async function run(args: ImageArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { listLayers } = await builder();
  const list = await listLayers(args.image, await toSourceOptions(args, signal));
  if (args.json) io.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
  else io.stdout.write(`${layerRows(list).join('\n')}\n`);
  return EXIT.ok;
}

/** The layer table of `irb list-layers` and `irb inspect`: number, digest, size, media type. */
export function layerRows(layers: LayerInfo[]): string[] {
  return table(
    layers.map((l, i) => [String(i + 1), l.digest, formatBytes(l.size), l.mediaType]),
    [true, false, true, false],
  );
}
