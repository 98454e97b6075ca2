/** `irb push ARCHIVE REF`: an initramfs into an OCI registry as an artifact (see `pushInitramfs`). */
import type { PushInitramfsOptions } from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { formatBytes, table } from '../kit/format.ts';
import type { CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { parseOptions, strings } from '../kit/options.ts';
import { SOURCE_FLAGS, type SourceFlagArgs, sourceFlagArgs, toSourceOptions } from '../kit/source.ts';
import { UsageError } from '../kit/usage.ts';

/** Parsed `irb push`. */
export interface PushArgs extends SourceFlagArgs {
  archive: string;
  ref: string;
  source?: string;
  annotations: Record<string, string>;
  chunkSize?: number;
}

export const name = 'push';
export const synopsis = 'push ARCHIVE REF';
export const summary = 'store an initramfs in an OCI registry';
export const help = `Usage: irb push ARCHIVE REF [--source IMAGE] [--annotation K=V]... [options]

Stores a built initramfs in an OCI registry as an artifact (artifactType
application/vnd.irb.initramfs.v1, empty config, one layer naming its compression).
Container tools do not mistake it for an image. Blobs the registry has are skipped;
pushing into the repository of --source attaches it to that image (subject), so
"irb pull --for IMAGE" finds it (referrers API, or the OCI 1.1 tag fallback).

  --source IMAGE          the image the archive was built from (annotations; subject
                          when REF is in the same repository)
  --annotation K=V        extra manifest annotation; repeatable
  --platform OS/ARCH[/V]  the archive's platform (default: its own, from its /init's
                          ELF machine; it also picks the --source manifest)
  --chunk-size SIZE       upload in chunks (e.g. 5MiB) instead of one request
  --insecure-registry HOST, --keychain MODULE, --cache-dir DIR, --no-cache
  --json, -q/--quiet, --verbose (with errors, the error code and the cause chain)

REF without a tag pushes by digest only; that needs --source in the same repository.
Credentials need push permission.`;

export function parse(argv: string[]): PushArgs | 'help' {
  const { values, positionals } = parseOptions(argv, {
    ...SOURCE_FLAGS,
    annotation: { type: 'string', multiple: true },
    source: { type: 'string' },
    'chunk-size': { type: 'string' },
  });
  if (values.help) return 'help';
  if (positionals.length !== 2) {
    throw new UsageError(
      positionals.length < 2
        ? 'push wants ARCHIVE and REF (e.g. irb push initramfs.cpio.gz host/app:initramfs)'
        : `unexpected argument "${positionals[2]}"`,
    );
  }
  const annotations: Record<string, string> = {};
  for (const spec of strings(values.annotation)) {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new UsageError(`--annotation wants KEY=VALUE, not "${spec}"`);
    annotations[spec.slice(0, eq)] = spec.slice(eq + 1);
  }
  const args: PushArgs = {
    archive: positionals[0]!,
    ref: positionals[1]!,
    annotations,
    ...sourceFlagArgs(values),
  };
  if (values.source !== undefined) args.source = String(values.source);
  if (values['chunk-size'] !== undefined) {
    const text = String(values['chunk-size']);
    const match = /^(\d+)([KM]i?B?)?$/i.exec(text);
    const size = match ? Number(match[1]) * (match[2] ? (/^m/i.test(match[2]) ? 1024 * 1024 : 1024) : 1) : 0;
    if (!match || size < 1)
      throw new UsageError(`--chunk-size wants a size like 5MiB or 65536, not "${text}"`);
    args.chunkSize = size;
  }
  return args;
}

export async function run(args: PushArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { pushInitramfs } = await builder();
  const options: PushInitramfsOptions = {
    ...(await toSourceOptions(args, signal)),
    annotations: args.annotations,
  };
  if (args.source !== undefined) options.source = args.source;
  if (args.chunkSize !== undefined) options.chunkSize = args.chunkSize;
  const r = await pushInitramfs(args.archive, args.ref, options);
  if (args.json) {
    io.stdout.write(
      `${JSON.stringify({ reference: r.reference, digest: r.digest, tag: r.tag, size: r.size, compression: r.compression, blob: r.blob, subject: r.subject, referrers: r.referrers, annotations: r.manifest.annotations ?? {} }, null, 2)}\n`,
    );
  } else if (!args.quiet) {
    const rows = [
      ['digest', r.digest],
      [
        'archive',
        `${formatBytes(r.size)} ${r.compression} (${r.blob === 'uploaded' ? 'uploaded' : r.blob === 'mounted' ? 'mounted from another repository' : 'already there'})`,
      ],
    ];
    if (r.tag) rows.push(['tag', r.tag]);
    if (r.subject) {
      rows.push([
        'subject',
        `${r.subject} (${r.referrers === 'api' ? 'referrers API' : 'tag-schema fallback index'})`,
      ]);
    }
    io.stdout.write(
      `pushed ${r.reference}\n${table(rows)
        .map((l) => `  ${l}`)
        .join('\n')}\n`,
    );
  }
  return EXIT.ok;
}
