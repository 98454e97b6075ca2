/**
 * `irb push` and `irb pull`: an initramfs to and from an OCI registry (see `pushInitramfs` and
 * `pullInitramfs` in @irb/builder). Parsing, help and output live here; args.ts, cli.ts and
 * help.ts only dispatch to this file.
 */
import type { ParseArgsOptionsConfig } from 'node:util';
import type {
  AttachedInitramfs,
  InitramfsBuilderOptions,
  PullInitramfsOptions,
  PushInitramfsOptions,
} from '@irb/builder';
import type { BuildArgs } from './args.ts';
import { parseOptions, UsageError } from './args.ts';
import { summaryJson, summaryText } from './cli.ts';
import { formatBytes, table } from './format.ts';
import { builder, keychains } from './lib.ts';
import { SOURCE_OPTIONS, type SourceArgs, sourceArgs } from './source-options.ts';

/** The commands this file handles. */
export const FLEET_COMMANDS = ['push', 'pull'] as const;

/** Parsed `irb push`. */
export interface PushArgs extends SourceArgs {
  command: 'push';
  archive: string;
  ref: string;
  source?: string;
  annotations: Record<string, string>;
  chunkSize?: number;
}

/** Parsed `irb pull`. */
export interface PullArgs extends SourceArgs {
  command: 'pull';
  /** A reference, or the image whose attached initramfs is wanted (`--for`). */
  from: string | { for: string };
  output: string;
}

/** What `irb push` / `irb pull` were asked. */
export type FleetArgs = PushArgs | PullArgs;

const common = {
  ...SOURCE_OPTIONS,
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsOptionsConfig;

function parse(command: string, argv: string[], options: ParseArgsOptionsConfig) {
  return parseOptions(command, argv, { ...common, ...options });
}

/** Parses `irb push …` / `irb pull …` (argv after the command); throws `UsageError` on mistakes. */
export function parseFleet(
  command: (typeof FLEET_COMMANDS)[number],
  argv: string[],
): FleetArgs | { command: 'help'; topic: string } {
  if (command === 'push') {
    const { values, positionals } = parse(command, argv, {
      annotation: { type: 'string', multiple: true },
      source: { type: 'string' },
      'chunk-size': { type: 'string' },
    });
    if (values.help) return { command: 'help', topic: command };
    if (positionals.length !== 2) {
      throw new UsageError(
        positionals.length < 2
          ? 'push wants ARCHIVE and REF (e.g. irb push initramfs.cpio.gz host/app:initramfs)'
          : `unexpected argument "${positionals[2]}"`,
        command,
      );
    }
    const annotations: Record<string, string> = {};
    for (const spec of (values.annotation as string[] | undefined) ?? []) {
      const eq = spec.indexOf('=');
      if (eq <= 0) throw new UsageError(`--annotation wants KEY=VALUE, not "${spec}"`, command);
      annotations[spec.slice(0, eq)] = spec.slice(eq + 1);
    }
    const args: PushArgs = {
      command,
      archive: positionals[0]!,
      ref: positionals[1]!,
      annotations,
      ...sourceArgs(command, values),
    };
    if (values.source !== undefined) args.source = String(values.source);
    if (values['chunk-size'] !== undefined) {
      const text = String(values['chunk-size']);
      const match = /^(\d+)([KM]i?B?)?$/i.exec(text);
      const size = match
        ? Number(match[1]) * (match[2] ? (/^m/i.test(match[2]) ? 1024 * 1024 : 1024) : 1)
        : 0;
      if (!match || size < 1)
        throw new UsageError(`--chunk-size wants a size like 5MiB or 65536, not "${text}"`, command);
      args.chunkSize = size;
    }
    return args;
  }
  const { values, positionals } = parse(command, argv, {
    output: { type: 'string', short: 'o' },
    for: { type: 'string' },
  });
  if (values.help) return { command: 'help', topic: command };
  if (values.for !== undefined && positionals.length > 0) {
    throw new UsageError('give either REF or --for IMAGE, not both', command);
  }
  if (values.for === undefined && positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? 'missing REF (or --for IMAGE)' : `unexpected argument "${positionals[1]}"`,
      command,
    );
  }
  const output = values.output as string | undefined;
  if (!output) throw new UsageError('pull wants -o FILE (where to write the initramfs)', command);
  return {
    command,
    from: values.for !== undefined ? { for: String(values.for) } : positionals[0]!,
    output,
    ...sourceArgs(command, values),
  };
}

/** Help texts of `irb push` and `irb pull`. */
export const FLEET_HELP: Record<string, string> = {
  push: `Usage: irb push ARCHIVE REF [--source IMAGE] [--annotation K=V]... [options]

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
  --json, -q/--quiet, --verbose

REF without a tag pushes by digest only; that needs --source in the same repository.
Credentials need push permission.`,
  pull: `Usage: irb pull REF -o FILE [--platform OS/ARCH[/V]] [options]
       irb pull --for IMAGE -o FILE [--platform OS/ARCH[/V]] [options]

Downloads an initramfs pushed by "irb push" into FILE, verified against its digest
and through the blob cache (a second pull downloads nothing); FILE appears only
once complete. --for finds the initramfs attached to IMAGE; --platform chooses
when several platforms are attached.

  -o, --output FILE       where to write the archive
  --for IMAGE             the image the initramfs was built from
  --platform OS/ARCH[/V]  which one, when several are attached
  --insecure-registry HOST, --keychain MODULE, --cache-dir DIR, --no-cache
  --json, -q/--quiet, --verbose`,
};

interface Io {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** Runs a parsed `irb push` / `irb pull`; returns the exit code (errors are thrown to the caller). */
export async function runFleet(args: FleetArgs, io: Io, signal?: AbortSignal): Promise<number> {
  const { pullInitramfs, pushInitramfs } = await builder();
  const custom = await keychains(args.keychains);
  const base = {
    insecureRegistries: args.insecureRegistries,
    ...(custom ? { keychains: custom } : {}),
    ...(args.cacheDir !== undefined ? { cacheDir: args.cacheDir } : {}),
    ...(args.noCache ? { cache: false } : {}),
    ...(signal ? { signal } : {}),
  };
  if (args.command === 'push') {
    const options: PushInitramfsOptions = { ...base, annotations: args.annotations };
    if (args.source !== undefined) options.source = args.source;
    if (args.platform !== undefined) options.platform = args.platform;
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
    return 0;
  }
  const options: PullInitramfsOptions = { ...base };
  if (args.platform !== undefined) options.platform = args.platform;
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
  return 0;
}

/** The `irb inspect` lines for initramfs artifacts attached to the image (none: no lines). */
export function attachedInitramfsLines(attached: readonly AttachedInitramfs[] | undefined): string[] {
  if (!attached || attached.length === 0) return [];
  return [
    `initramfs ${attached.length} attached (irb pull --for IMAGE -o FILE)`,
    ...table(
      attached.map((a) => [
        a.platform ?? '—',
        a.compression ?? '—',
        a.digest,
        a.via === 'api' ? 'referrers API' : 'tag fallback',
      ]),
    ).map((l) => `  ${l}`),
  ];
}

/** The `irb build` flags of the remote build cache (spread into its parser options). */
export const remoteCacheOptions = {
  'cache-from': { type: 'string' },
  'cache-to': { type: 'string' },
} as const satisfies ParseArgsOptionsConfig;

/** `--cache-from` / `--cache-to` values of a parsed `irb build`, checked. */
export function remoteCacheArgs(values: Record<string, unknown>): Pick<BuildArgs, 'cacheFrom' | 'cacheTo'> {
  const out: Pick<BuildArgs, 'cacheFrom' | 'cacheTo'> = {};
  for (const [flag, key] of [
    ['cache-from', 'cacheFrom'],
    ['cache-to', 'cacheTo'],
  ] as const) {
    const value = values[flag];
    if (value === undefined) continue;
    const text = String(value);
    if (!/^[^/\s]+\/[^\s@]+$/.test(text)) {
      throw new UsageError(
        `--${flag} wants a registry repository (host/repo, e.g. ghcr.io/acme/irb-cache), not "${text}"`,
        'build',
      );
    }
    out[key] = text;
  }
  if ((out.cacheFrom !== undefined || out.cacheTo !== undefined) && values.output === '-') {
    throw new UsageError('--cache-from and --cache-to need -o FILE, not -o -', 'build');
  }
  return out;
}

/**
 * `irb build` with `--cache-from` / `--cache-to`: a hit pulls the archive the key names instead
 * of building; a miss builds (and pushes with `--cache-to`). Prints like a build.
 */
export async function buildCached(
  args: BuildArgs,
  options: InitramfsBuilderOptions,
  io: Io,
  renderer: { finish(): void },
): Promise<number> {
  const remote = {
    ...(args.cacheFrom !== undefined ? { cacheFrom: args.cacheFrom } : {}),
    ...(args.cacheTo !== undefined ? { cacheTo: args.cacheTo } : {}),
  };
  const { buildWithRemoteCache } = await builder();
  let result: Awaited<ReturnType<typeof buildWithRemoteCache>>;
  try {
    result = await buildWithRemoteCache(options, args.output, remote);
  } finally {
    renderer.finish();
  }
  if (result.lookupError) {
    io.stderr.write(
      `irb: warning: could not look the build up in ${args.cacheFrom} (${result.lookupError.message.split('\n')[0]}); built it instead\n`,
    );
  }
  const pushed = result.pushed?.reference;
  if (result.summary) {
    if (args.json) {
      io.stdout.write(
        `${JSON.stringify({ ...summaryJson(result.summary), cache: 'miss', buildKey: result.key, ...(pushed ? { pushed } : {}) }, null, 2)}\n`,
      );
    } else if (!args.quiet) {
      const lines = summaryText(result.summary);
      lines.push(`  cache    miss, key ${result.key}${pushed ? `; pushed ${pushed}` : ''}`);
      io.stdout.write(`${lines.join('\n')}\n`);
    }
    return 0;
  }
  const pulled = result.pulled!;
  const memory = pulled.annotations['dev.irb.memory.recommended-mib'];
  if (args.json) {
    io.stdout.write(
      `${JSON.stringify(
        {
          output: args.output,
          image: args.image,
          manifestDigest: result.manifestDigest,
          platform: pulled.platform,
          compression: pulled.compression,
          compressedBytes: pulled.layer.size,
          recommendedMemoryMiB: memory === undefined ? undefined : Number(memory),
          cache: 'hit',
          buildKey: result.key,
          from: pulled.reference,
          ...(pushed ? { pushed } : {}),
        },
        null,
        2,
      )}\n`,
    );
  } else if (!args.quiet) {
    const rows = [
      ['image', `${args.image}${pulled.platform ? ` (${pulled.platform})` : ''}`],
      ['manifest', result.manifestDigest],
      ['size', `${formatBytes(pulled.layer.size)} ${pulled.compression}`],
      ['cache', `hit, pulled ${pulled.reference}`],
      ['key', result.key],
    ];
    if (memory) rows.push(['memory', `boot with at least ${memory} MiB (mem=${memory}M)`]);
    io.stdout.write(
      `wrote ${args.output} (remote cache hit, not built)\n${table(rows)
        .map((l) => `  ${l}`)
        .join('\n')}\n`,
    );
  }
  return 0;
}
