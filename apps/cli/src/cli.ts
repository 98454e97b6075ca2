import { readFileSync } from 'node:fs';
import {
  type ArchiveEntry,
  type BuildSummary,
  bootInitramfs,
  defaultKeychains,
  findKernel,
  type ImageInspection,
  InitramfsBuilder,
  type InitramfsBuilderOptions,
  inspectImage,
  type Keychain,
  type LayerInfo,
  listArchive,
  listLayers,
  loadKeychainModule,
  measureArchive,
} from '@irb/builder';
import { type BootArgs, type BuildArgs, type ImageArgs, type LsArgs, parseCli, UsageError } from './args.ts';
import { runCache } from './cache-command.ts';
import { describeError, EXIT } from './errors.ts';
import { attachedInitramfsLines, buildCached, runFleet } from './fleet-command.ts';
import { formatBytes, formatDuration, formatMode, formatTime, table } from './format.ts';
import { HELP } from './help.ts';
import { createProgressRenderer } from './progress.ts';

/** A writable text stream (process.stdout in production, a collector in tests). */
export interface CliStream {
  /** Returns `false` when the caller should wait for `drain` (Node streams). */
  write(text: string | Uint8Array): unknown;
  once?(event: 'drain', listener: () => void): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** What the CLI talks to. */
export interface CliIo {
  stdout: CliStream;
  stderr: CliStream;
}

/** The CLI's version, from its package.json (next to src/ and dist/ alike). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Runs `irb` with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  let verbose = argv.includes('--verbose');
  try {
    const args = parseCli(argv);
    if ('verbose' in args) verbose = args.verbose;
    switch (args.command) {
      case 'help': {
        const text = HELP[args.topic ?? 'main'];
        if (text === undefined) throw new UsageError(`no help for "${args.topic}"`);
        io.stdout.write(`${text}\n`);
        return EXIT.ok;
      }
      case 'version':
        io.stdout.write(`irb ${version()}\n`);
        return EXIT.ok;
      case 'build':
        return await build(args, io, signal);
      case 'inspect':
        return await inspect(args, io, signal);
      case 'list-layers':
        return await layers(args, io, signal);
      case 'ls':
        return await ls(args, io, signal);
      case 'boot':
        return await boot(args, io, signal);
      case 'cache':
        return await runCache(args, io, signal);
      case 'push':
      case 'pull':
        return await runFleet(args, io, signal);
    }
  } catch (error) {
    const { lines, code } = describeError(
      signal?.aborted && !isUsage(error) ? signal.reason : error,
      verbose,
      argv[0],
    );
    io.stderr.write(`${lines.join('\n')}\n`);
    return code;
  }
}

async function writeWithBackpressure(stream: CliStream, chunk: Uint8Array): Promise<void> {
  if (stream.write(chunk) === false && stream.once) {
    await new Promise<void>((resolve) => stream.once?.('drain', resolve));
  }
}

function isUsage(error: unknown): boolean {
  return error instanceof UsageError;
}

async function build(args: BuildArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const renderer = createProgressRenderer(io.stderr, {
    mode: args.quiet ? 'none' : io.stderr.isTTY ? 'tty' : 'plain',
    compression: args.compression,
  });
  const options: InitramfsBuilderOptions = {
    image: args.image,
    compression: args.compression,
    inject: args.inject,
    exclude: args.exclude,
    replaceImageInit: args.replaceInit,
    keepImageInit: args.keepInit,
    exitAction: args.onExit,
    insecureRegistries: args.insecureRegistries,
    onProgress: (event) => renderer.onEvent(event),
  };
  if (args.level !== undefined) options.level = args.level;
  if (args.threads !== undefined) options.threads = args.threads;
  if (args.platform !== undefined) options.platform = args.platform;
  if (args.init !== undefined) options.init = args.init;
  if (args.cacheDir !== undefined) options.cacheDir = args.cacheDir;
  if (args.noCache) options.cache = false;
  const custom = await keychains(args.keychains);
  if (custom) options.keychains = custom;
  if (signal) options.signal = signal;
  if (args.cacheFrom !== undefined || args.cacheTo !== undefined)
    return buildCached(args, options, io, renderer);
  const toStdout = args.output === '-';
  if (toStdout && io.stdout.isTTY) {
    throw new UsageError(
      'refusing to write a binary archive to a terminal; pipe or redirect stdout, or use -o FILE',
      'build',
    );
  }
  let summary: BuildSummary;
  try {
    const builder = new InitramfsBuilder(options);
    if (toStdout) {
      const stream = builder.stream();
      for await (const chunk of stream) await writeWithBackpressure(io.stdout, chunk);
      summary = await stream.summary;
    } else {
      summary = await builder.build(args.output);
    }
  } finally {
    renderer.finish();
  }
  // With the archive on stdout, the summary goes to stderr.
  const out = toStdout ? io.stderr : io.stdout;
  if (args.json) out.write(`${JSON.stringify(summaryJson(summary), null, 2)}\n`);
  else if (!args.quiet) out.write(`${summaryText(summary).join('\n')}\n`);
  return EXIT.ok;
}

/** The `--json` summary: stable keys, sizes in bytes, duration in milliseconds. */
export function summaryJson(s: BuildSummary): Record<string, unknown> {
  return {
    output: s.output,
    image: s.image,
    manifestDigest: s.manifestDigest,
    configDigest: s.configDigest,
    platform: s.platform,
    compression: s.compression,
    init: s.init,
    entries: s.entries,
    excluded: s.excluded,
    uncompressedBytes: s.uncompressedBytes,
    compressedBytes: s.compressedBytes,
    unpackedBytes: s.unpackedBytes,
    recommendedMemoryMiB: s.recommendedMemoryMiB,
    lostXattrs: s.lostXattrs,
    durationMs: s.durationMs,
  };
}

export function summaryText(s: BuildSummary): string[] {
  const rows = [
    ['image', `${s.image} (${s.platform})`],
    ['manifest', s.manifestDigest],
    ['config', s.configDigest],
    ['entries', `${s.entries}${s.excluded ? ` (${s.excluded} excluded)` : ''}, /init ${s.init}`],
    [
      'size',
      `${formatBytes(s.uncompressedBytes)} cpio → ${formatBytes(s.compressedBytes)} ${s.compression}` +
        (s.uncompressedBytes > 0 && s.compression !== 'none'
          ? ` (${((100 * s.compressedBytes) / s.uncompressedBytes).toFixed(1)}%)`
          : ''),
    ],
    [
      'memory',
      `boot with at least ${s.recommendedMemoryMiB} MiB (mem=${s.recommendedMemoryMiB}M) to unpack ${formatBytes(s.unpackedBytes)}`,
    ],
    ['time', formatDuration(s.durationMs)],
  ];
  const lines = [`wrote ${s.output}`, ...table(rows).map((l) => `  ${l}`)];
  if (s.lostXattrs.length > 0) {
    lines.push(`  warning: newc cannot store extended attributes; ${s.lostXattrs.length} files lost some:`);
    for (const x of s.lostXattrs.slice(0, 10)) lines.push(`    ${x.path}: ${x.names.join(', ')}`);
    if (s.lostXattrs.length > 10) lines.push(`    … and ${s.lostXattrs.length - 10} more (--json lists all)`);
  }
  return lines;
}

/** `--keychain` modules are asked first, then the built-in keychains. */
async function keychains(specs: readonly string[]): Promise<Keychain[] | undefined> {
  if (specs.length === 0) return undefined;
  const loaded: Keychain[] = [];
  for (const spec of specs) loaded.push(await loadKeychainModule(spec));
  return [...loaded, ...defaultKeychains()];
}

async function imageOptions(args: ImageArgs, signal?: AbortSignal) {
  const custom = await keychains(args.keychains);
  return {
    insecureRegistries: args.insecureRegistries,
    ...(custom ? { keychains: custom } : {}),
    ...(args.platform !== undefined ? { platform: args.platform } : {}),
    ...(signal ? { signal } : {}),
  };
}

async function inspect(args: ImageArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const info = await inspectImage(args.image, await imageOptions(args, signal));
  if (args.json) {
    io.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    return EXIT.ok;
  }
  io.stdout.write(`${inspectionText(info).join('\n')}\n`);
  return EXIT.ok;
}

function inspectionText(info: ImageInspection): string[] {
  const lines = [`image     ${info.image}`, `digest    ${info.digest}`];
  if (info.indexDigest) lines.push(`index     ${info.indexDigest}`);
  if (info.platforms.length > 0) {
    lines.push('platforms');
    for (const p of info.platforms) {
      lines.push(`  ${p.platform === info.platform ? '*' : ' '} ${p.platform.padEnd(20)} ${p.digest}`);
    }
  }
  lines.push(`platform  ${info.platform}`, `config    ${info.configDigest}`);
  const c = info.config;
  const json = (v: unknown) => (v === undefined || v === null ? '—' : JSON.stringify(v));
  lines.push(
    `  Entrypoint  ${json(c.Entrypoint)}`,
    `  Cmd         ${json(c.Cmd)}`,
    `  WorkingDir  ${c.WorkingDir || '/'}`,
    `  User        ${c.User || 'root'}`,
    `  Env`,
    ...(c.Env ?? []).map((e) => `    ${e}`),
  );
  lines.push(`layers    ${info.layers.length}, ${formatBytes(info.layers.reduce((n, l) => n + l.size, 0))}`);
  lines.push(...layerRows(info.layers).map((l) => `  ${l}`));
  lines.push(...attachedInitramfsLines(info.initramfs));
  return lines;
}

function layerRows(layers: LayerInfo[]): string[] {
  return table(
    layers.map((l, i) => [String(i + 1), l.digest, formatBytes(l.size), l.mediaType]),
    [true, false, true, false],
  );
}

async function layers(args: ImageArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const list = await listLayers(args.image, await imageOptions(args, signal));
  if (args.json) io.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
  else io.stdout.write(`${layerRows(list).join('\n')}\n`);
  return EXIT.ok;
}

/** One `irb ls` line, like `lsinitramfs -l` with numeric owners (an archive has no user names). */
export function lsLine(e: ArchiveEntry): string {
  const size = e.type === 'char' || e.type === 'block' ? `${e.rdevMajor}, ${e.rdevMinor}` : String(e.size);
  const name = e.type === 'symlink' && e.target !== undefined ? `${e.name} -> ${e.target}` : e.name;
  return [
    formatMode(e.type, e.mode),
    String(e.nlink).padStart(3),
    String(e.uid).padEnd(5),
    String(e.gid).padEnd(5),
    size.padStart(10),
    formatTime(e.mtime),
    name,
  ].join(' ');
}

async function ls(args: LsArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  let member = 0;
  for await (const entry of listArchive(args.archive, signal ? { signal } : {})) {
    if (args.json) {
      io.stdout.write(`${JSON.stringify(entry)}\n`);
      continue;
    }
    if (entry.member !== member) {
      member = entry.member;
      io.stdout.write(`--- archive member ${member + 1}\n`);
    }
    io.stdout.write(`${lsLine(entry)}\n`);
  }
  return EXIT.ok;
}

async function boot(args: BootArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const kernel = args.kernel ?? (await findKernel());
  let memoryMb = args.memoryMb;
  if (memoryMb === undefined) {
    const measured = await measureArchive(args.archive, signal ? { signal } : {});
    // The program needs memory of its own on top of what unpacking takes.
    memoryMb = Math.max(512, measured.recommendedMemoryMiB + 256);
  }
  const result = await bootInitramfs({
    kernel,
    initramfs: args.archive,
    memoryMb,
    timeoutMs: Math.round((args.timeoutS ?? 120) * 1000),
    // Match through the end of the line, so the console shows the whole line before QEMU is stopped.
    ...(args.expect !== undefined ? { expect: new RegExp(`${escapeRegExp(args.expect)}[^\n]*\n`) } : {}),
    append: args.kernelArgs,
    ...(signal ? { signal } : {}),
    onOutput: args.quiet ? () => {} : (text: string) => io.stdout.write(text),
  });
  if (args.verbose) io.stderr.write(`irb: ${result.command.join(' ')}\n`);
  // A generated /init reports the program's status; without --expect a failing program fails the boot.
  const status = /irb: exit status (\d+)/.exec(result.output)?.[1];
  const programFailed = args.expect === undefined && status !== undefined && status !== '0';
  if (result.ok && !programFailed) return EXIT.ok;
  const reason = result.panicked
    ? 'the kernel panicked; read the console above (too little --memory shows as "Initramfs unpacking failed")'
    : result.timedOut
      ? args.expect !== undefined
        ? `"${args.expect}" did not appear within ${args.timeoutS ?? 120} s; check the console above or raise --timeout`
        : `the VM did not power off within ${args.timeoutS ?? 120} s; raise --timeout or check the console above`
      : programFailed
        ? `the guest program exited with status ${status}; check the console above`
        : args.expect !== undefined && !result.matched
          ? `"${args.expect}" did not appear before the VM stopped; check the console above`
          : `QEMU exited with status ${result.exitCode}: ${result.stderr.trim().split('\n')[0] ?? ''}`;
  io.stderr.write(`irb: error: boot failed: ${reason}\n`);
  return EXIT.failure;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
