import { spawn } from 'node:child_process';
import { constants, readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import type {
  ArchiveEntry,
  BuildSummary,
  ImageInspection,
  InitramfsBuilderOptions,
  LayerInfo,
} from '@irb/builder';
import { type BuildArgs, didYouMean, type ImageArgs, type LsArgs, parseCli, UsageError } from './args.ts';
import { cliWording, describeError, EXIT } from './errors.ts';
import { formatBytes, formatDuration, formatMode, formatTime, table } from './format.ts';
import { HELP } from './help.ts';
import { builder, keychains } from './lib.ts';
import { createProgressRenderer } from './progress.ts';

/** A writable text stream (process.stdout in production, a collector in tests). */
export interface CliStream {
  /** Returns `false` when the caller should wait for `drain` (Node streams). */
  write(text: string | Uint8Array): unknown;
  once?(event: 'drain', listener: () => void): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** A readable byte stream (process.stdin in production). */
export interface CliInput extends AsyncIterable<Uint8Array | string> {
  isTTY?: boolean;
  /** Terminal raw mode: keys arrive one by one, Ctrl-C as a byte rather than a signal. */
  setRawMode?(raw: boolean): unknown;
  /** Stops reading, so a pending read does not keep the process alive. */
  destroy?(): unknown;
}

/** What the CLI talks to. */
export interface CliIo {
  stdout: CliStream;
  stderr: CliStream;
  /** Read by `irb ls -` and forwarded to the guest by `irb boot`. Default: nothing. */
  stdin?: CliInput;
}

function packageJson(): { version: string; engines: { node: string } } {
  return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
}

/** The CLI's version, from its package.json (next to src/ and dist/ alike). */
export function version(): string {
  return packageJson().version;
}

/** First line of `command --version`, or `undefined` when it cannot be run. */
function firstLineOf(command: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    let out = '';
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', () => resolve(undefined));
    child.on('close', (code) => resolve(code === 0 ? out.split('\n')[0]?.trim() : undefined));
  });
}

/** `irb --version --verbose`: what irb runs on, the things bug reports need. */
async function environmentReport(): Promise<string[]> {
  const lines = [`node      ${process.version} (irb needs ${packageJson().engines.node})`];
  for (const qemu of ['qemu-system-x86_64', 'qemu-system-aarch64']) {
    const found = await firstLineOf(qemu, ['--version']);
    lines.push(
      `${qemu.replace('qemu-system-', 'qemu ').padEnd(9)} ${found ?? `not found (${qemu} is not on PATH)`}`,
    );
  }
  let kvm: string;
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    kvm = '/dev/kvm is usable (irb boot checks with a probe boot that KVM really runs a guest)';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    kvm =
      code === 'ENOENT'
        ? 'no /dev/kvm; irb boot uses software emulation (TCG)'
        : `/dev/kvm is not usable (${code}); irb boot uses software emulation (TCG)`;
  }
  lines.push(`kvm       ${kvm}`);
  let zstd: string;
  try {
    // The backend -c zstd would use: zstd-napi, or node:zlib when the addon did not load
    // (IRB_ZSTD_BACKEND forces one). Output bytes depend on it.
    zstd = (await builder()).zstdBackend();
  } catch (error) {
    zstd = `unavailable: ${error instanceof Error ? error.message : String(error)}`;
  }
  lines.push(`zstd      ${zstd}`);
  return lines;
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
        if (text === undefined) {
          const guess = didYouMean(
            args.topic ?? '',
            Object.keys(HELP).filter((t) => t !== 'main'),
          );
          throw new UsageError(`no help for "${args.topic}"${guess ? ` (did you mean "${guess}"?)` : ''}`);
        }
        io.stdout.write(`${text}\n`);
        return EXIT.ok;
      }
      case 'version':
        io.stdout.write(`irb ${version()}\n`);
        if (verbose) io.stdout.write(`${(await environmentReport()).join('\n')}\n`);
        return EXIT.ok;
      case 'build':
        return await build(args, io, signal);
      case 'inspect':
        return await inspect(args, io, signal);
      case 'list-layers':
        return await layers(args, io, signal);
      case 'ls':
        return await ls(args, io, signal);
      // Each command's module is loaded when it runs (see lib.ts).
      case 'boot':
        return await (await import('./boot-command.ts')).boot(args, io, signal);
      case 'cache':
        return await (await import('./cache-command.ts')).runCache(args, io, signal);
      case 'push':
      case 'pull':
        return await (await import('./fleet-command.ts')).runFleet(args, io, signal);
      case 'analyze':
        return await (await import('./analyze-command.ts')).runAnalyze(args, io, signal);
      case 'trace':
        return await (await import('./trace-command.ts')).runTrace(args, io, signal);
      case 'append':
        return await (await import('./append-command.ts')).runAppend(args, io, signal);
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
  const toStdout = args.output === '-';
  // With the archive on stdout and --json, stderr carries the JSON summary and nothing else, so
  // `irb build … -o - --json 2>summary.json | …` leaves a valid JSON file (or one error line).
  const silent = args.quiet || (toStdout && args.json);
  const renderer = createProgressRenderer(io.stderr, {
    mode: silent ? 'none' : io.stderr.isTTY ? 'tty' : 'plain',
    compression: args.compression,
  });
  // Said once: zstd output bytes depend on the library that wrote them (zstd-napi or node:zlib).
  // The facade alone (`@irb/builder/build`): a cached rebuild loads no more than it needs.
  const { InitramfsBuilder } = await import('@irb/builder/build');
  if (args.verbose && args.compression === 'zstd')
    io.stderr.write(`irb: zstd backend: ${(await builder()).zstdBackend()}\n`);
  const options: InitramfsBuilderOptions = {
    image: args.image,
    compression: args.compression,
    inject: args.inject,
    exclude: args.exclude,
    slim: args.slim,
    keepOnly: args.keepOnly,
    keep: args.keep,
    replaceImageInit: args.replaceInit,
    keepImageInit: args.keepInit,
    exitAction: args.onExit,
    initKind: args.initKind,
    insecureRegistries: args.insecureRegistries,
    onProgress: (event) => renderer.onEvent(event),
  };
  if (args.level !== undefined) options.level = args.level;
  if (args.threads !== undefined) options.threads = args.threads;
  if (args.platform !== undefined) options.platform = args.platform;
  if (args.init !== undefined) options.init = args.init;
  if (args.allowArchMismatch) options.allowArchMismatch = true;
  if (args.cacheDir !== undefined) options.cacheDir = args.cacheDir;
  if (args.noCache) options.cache = false;
  const custom = await keychains(args.keychains);
  if (custom) options.keychains = custom;
  if (signal) options.signal = signal;
  if (args.cacheFrom !== undefined || args.cacheTo !== undefined)
    return (await import('./fleet-command.ts')).buildCached(args, options, io, renderer);
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
  // --quiet drops the summary, not what will stop the VM from working.
  else for (const w of summary.warnings) io.stderr.write(`irb: warning: ${cliWording(w)}\n`);
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
    initKind: s.initKind ?? null,
    command: s.command ?? null,
    entries: s.entries,
    excluded: s.excluded,
    filtered: s.filtered,
    uncompressedBytes: s.uncompressedBytes,
    compressedBytes: s.compressedBytes,
    unpackedBytes: s.unpackedBytes,
    recommendedMemoryMiB: s.recommendedMemoryMiB,
    lostXattrs: s.lostXattrs,
    warnings: s.warnings.map(cliWording),
    durationMs: s.durationMs,
  };
}

export function summaryText(s: BuildSummary): string[] {
  const rows = [
    ['image', `${s.image} (${s.platform})`],
    ['manifest', s.manifestDigest],
    ['config', s.configDigest],
    ['entries', `${s.entries}${leftOut(s)}, /init ${s.init}${s.initKind ? ` (${s.initKind})` : ''}`],
    ...(s.command ? [['command', s.command.map(showWord).join(' ')]] : []),
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
  for (const w of s.warnings) lines.push(`  warning: ${cliWording(w)}`);
  if (s.lostXattrs.length > 0) {
    lines.push(`  warning: newc cannot store extended attributes; ${s.lostXattrs.length} files lost some:`);
    for (const x of s.lostXattrs.slice(0, 10)) lines.push(`    ${x.path}: ${x.names.join(', ')}`);
    if (s.lostXattrs.length > 10) lines.push(`    … and ${s.lostXattrs.length - 10} more (--json lists all)`);
  }
  return lines;
}

/** What the entries line says was left out: ` (3 excluded, 1200 filtered)`. */
function leftOut(s: BuildSummary): string {
  const parts = [
    ...(s.excluded ? [`${s.excluded} excluded`] : []),
    ...(s.filtered ? [`${s.filtered} left out by --slim/--keep-only`] : []),
  ];
  return parts.length ? ` (${parts.join(', ')})` : '';
}

/** An argv word as a shell would need it, so the command line reads unambiguously. */
export function showWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
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
  const { inspectImage } = await builder();
  const info = await inspectImage(args.image, await imageOptions(args, signal));
  if (args.json) {
    io.stdout.write(`${JSON.stringify(inspectionJson(info), null, 2)}\n`);
    return EXIT.ok;
  }
  const { attachedInitramfsLines } = await import('./fleet-command.ts');
  io.stdout.write(`${[...inspectionText(info), ...attachedInitramfsLines(info.initramfs)].join('\n')}\n`);
  return EXIT.ok;
}

/**
 * The `inspect --json` document, in the vocabulary of `build --json`: `manifestDigest`,
 * `configDigest`, `indexDigest`. The config carries what the text shows, with the defaults a
 * runtime applies filled in (`User` root, `WorkingDir` /, no `Env`, no `Entrypoint`/`Cmd`).
 */
export function inspectionJson(info: ImageInspection): Record<string, unknown> {
  const c = info.config;
  return {
    image: info.image,
    manifestDigest: info.digest,
    ...(info.indexDigest ? { indexDigest: info.indexDigest } : {}),
    platforms: info.platforms.map((p) => ({ platform: p.platform, manifestDigest: p.digest })),
    platform: info.platform,
    configDigest: info.configDigest,
    config: {
      ...c,
      Entrypoint: c.Entrypoint ?? null,
      Cmd: c.Cmd ?? null,
      WorkingDir: c.WorkingDir || '/',
      User: c.User || 'root',
      Env: c.Env ?? [],
    },
    ...(info.created ? { created: info.created } : {}),
    layers: info.layers,
    ...(info.initramfs ? { initramfs: info.initramfs } : {}),
  };
}

function inspectionText(info: ImageInspection): string[] {
  const lines = [`image     ${info.image}`, `manifest  ${info.digest}`];
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
  return lines;
}

function layerRows(layers: LayerInfo[]): string[] {
  return table(
    layers.map((l, i) => [String(i + 1), l.digest, formatBytes(l.size), l.mediaType]),
    [true, false, true, false],
  );
}

async function layers(args: ImageArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { listLayers } = await builder();
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

/** Bytes of a text-or-bytes stream (process.stdin yields Buffers unless an encoding was set). */
export async function* bytesOf(input: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  for await (const chunk of input) yield typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk;
}

async function ls(args: LsArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  let member = 0;
  let archive: string | AsyncIterable<Uint8Array> = args.archive;
  if (args.archive === '-') {
    if (!io.stdin || io.stdin.isTTY) {
      throw new UsageError(
        '"-" reads the archive from stdin; pipe one in (irb build … -o - | irb ls -)',
        'ls',
      );
    }
    archive = bytesOf(io.stdin);
  }
  const { listArchive } = await builder();
  for await (const entry of listArchive(archive, signal ? { signal } : {})) {
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
