/**
 * `irb trace IMAGE -o TRACE.json`: build the image with irb's static init in trace mode, boot it
 * under QEMU, run its program, and write what the run used (see `traceImage` in @irb/builder) for
 * `irb build IMAGE --keep-only TRACE.json`.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BootTrace, SlimPreset, TraceOptions } from '@irb/builder';
import { IrbError, isIrbError } from '@irb/errors';
import { EXIT } from '../kit/errors.ts';
import { showWord, table } from '../kit/format.ts';
import type { CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { integer, one, parseOptions, strings } from '../kit/options.ts';
import { createProgressRenderer } from '../kit/progress.ts';
import { parseSlim } from '../kit/slim.ts';
import { SOURCE_FLAGS, type SourceFlagArgs, sourceFlagArgs, toSourceOptions } from '../kit/source.ts';
import { UsageError } from '../kit/usage.ts';

/** Where `irb trace` writes without `-o`. */
export const DEFAULT_TRACE_OUTPUT = 'trace.json';

/** Parsed `irb trace`. */
export interface TraceArgs extends SourceFlagArgs {
  image: string;
  output: string;
  inject: string[];
  exclude: string[];
  slim: SlimPreset[];
  /** The image has its own /init: trace with irb's in its place. */
  replaceInit: boolean;
  timeoutS?: number;
  kernel?: string;
  memoryMb?: number;
}

export const name = 'trace';
export const synopsis = 'trace IMAGE -o TRACE.json';
export const summary = 'record what the program uses (for build --keep-only)';

export function parse(argv: string[]): TraceArgs | 'help' {
  const { values, positionals } = parseOptions(argv, {
    output: { type: 'string', short: 'o' },
    ...SOURCE_FLAGS,
    inject: { type: 'string', multiple: true },
    exclude: { type: 'string', multiple: true },
    slim: { type: 'string', multiple: true },
    'replace-init': { type: 'boolean' },
    timeout: { type: 'string' },
    kernel: { type: 'string' },
    memory: { type: 'string', short: 'm' },
  });
  if (values.help) return 'help';
  const image = one(positionals, 'IMAGE');
  const flags = sourceFlagArgs(values);
  const output = (values.output as string | undefined) ?? DEFAULT_TRACE_OUTPUT;
  if (output === '' || output === '-') {
    throw new UsageError('-o needs a file name (the trace is read back by build --keep-only)');
  }
  const inject = strings(values.inject);
  for (const spec of inject) {
    const colon = spec.lastIndexOf(':');
    if (colon <= 0 || !spec.slice(colon + 1).startsWith('/')) {
      throw new UsageError(`--inject wants SRC:DEST with DEST an absolute path in the image, not "${spec}"`);
    }
  }
  const args: TraceArgs = {
    image,
    output,
    inject,
    exclude: strings(values.exclude),
    slim: parseSlim(strings(values.slim)),
    replaceInit: Boolean(values['replace-init']),
    ...flags,
  };
  // The init counts whole seconds before it stops the program.
  const timeout = integer('timeout', values.timeout, 1, 86_400);
  if (timeout !== undefined) args.timeoutS = timeout;
  if (values.kernel !== undefined) args.kernel = String(values.kernel);
  const memory = integer('memory', values.memory, 64, 1024 * 1024);
  if (memory !== undefined) args.memoryMb = memory;
  return args;
}

/** Fails before the build and the boot when the trace could not be written at the end. */
async function checkOutput(output: string): Promise<void> {
  const info = await stat(output).catch(() => undefined);
  if (info?.isDirectory()) throw new UsageError(`-o ${output} is a directory; name a file`);
  try {
    await access(dirname(output), constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(
      `-o ${output}: ${code === 'ENOENT' ? 'its directory does not exist' : 'its directory is not writable'}; choose another path`,
    );
  }
}

/** A kernel log line (`[    3.644729] reboot: Power down`). */
const PRINTK = /^\[\s*\d+\.\d+\]/;
/** The init's timeline markers (`irb: init 4.964002`), for `irb boot --timeline`, not for people. */
const MARKER = /^irb: (init|exec) \d/;

/** Console lines a person wants to see while the program runs: not the kernel's, not the trace list. */
function programConsole(io: CliIo, verbose: boolean): (text: string) => void {
  let started = verbose;
  let partial = '';
  return (text) => {
    const parts = (partial + text).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (!started && /Run \S+ as init process/.test(line)) started = true;
      else if (
        started &&
        (verbose || !(line.startsWith('irb-trace: ') || PRINTK.test(line) || MARKER.test(line)))
      )
        io.stderr.write(`${line}\n`);
    }
  };
}

/** Runs `irb trace`. */
export async function run(args: TraceArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  await checkOutput(args.output);
  const { traceImage, writeFileAtomic } = await builder();
  io.beforeWork?.();
  const renderer = createProgressRenderer(io.stderr, {
    mode: args.quiet ? 'none' : io.stderr.isTTY ? 'tty' : 'plain',
    compression: 'lz4',
  });
  const options: TraceOptions = {
    image: args.image,
    inject: args.inject,
    exclude: args.exclude,
    slim: args.slim,
    replaceImageInit: args.replaceInit,
    ...(await toSourceOptions(args, signal)),
    onProgress: (event) => {
      renderer.onEvent(event);
      if (event.type === 'done') {
        renderer.finish();
        if (!args.quiet) {
          io.stderr.write(
            `irb: booting under QEMU to trace ${args.timeoutS !== undefined ? `(the program is stopped after ${args.timeoutS} s)` : '(until the program exits; --timeout S stops a server)'}\n`,
          );
        }
      }
    },
    ...(args.quiet ? {} : { onConsole: programConsole(io, args.verbose) }),
  };
  if (args.timeoutS !== undefined) options.timeoutSeconds = args.timeoutS;
  if (args.kernel !== undefined) options.kernel = args.kernel;
  if (args.memoryMb !== undefined) options.memoryMb = args.memoryMb;
  let trace: BootTrace;
  try {
    trace = await traceImage(options);
  } catch (error) {
    // The library's advice names keepImageInit and init too, which a trace cannot use.
    if (isIrbError(error) && error.code === 'IRB_IMAGE_HAS_INIT') {
      throw new IrbError(
        'IRB_IMAGE_HAS_INIT',
        "the image has its own /init; irb trace runs the program with irb's init, so add --replace-init (the trace lists what the image's Entrypoint/Cmd used)",
        { cause: error },
      );
    }
    throw error;
  } finally {
    renderer.finish();
  }
  const text = `${JSON.stringify(trace, null, 2)}\n`;
  await writeFileAtomic(
    args.output,
    (async function* () {
      yield new TextEncoder().encode(text);
    })(),
    signal ? { signal } : {},
  );
  if (args.json) {
    io.stdout.write(`${JSON.stringify(traceSummaryJson(args.output, trace), null, 2)}\n`);
  } else if (!args.quiet) {
    io.stdout.write(`${traceSummaryText(args.output, args.image, trace).join('\n')}\n`);
  }
  return EXIT.ok;
}

/** `irb trace --json`: the trace's facts and its counts (the lists are in the file). */
export function traceSummaryJson(output: string, t: BootTrace): Record<string, unknown> {
  return {
    output,
    image: t.image,
    manifestDigest: t.manifestDigest,
    platform: t.platform,
    argv: t.argv,
    exitStatus: t.exitStatus ?? null,
    stopped: t.stopped,
    files: t.files.length,
    directories: t.directories.length,
    symlinks: t.symlinks.length,
    other: t.other.length,
  };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The text summary: what the run used, how it ended, and the next command. */
export function traceSummaryText(output: string, image: string, t: BootTrace): string[] {
  const ended = t.stopped
    ? `stopped at --timeout (what it used until then is listed)${t.exitStatus !== undefined ? `, exit status ${t.exitStatus}` : ''}`
    : t.exitStatus !== undefined
      ? `exit status ${t.exitStatus}`
      : 'no exit status reported';
  const rows = [
    ['image', `${t.image} (${t.platform})`],
    ['manifest', t.manifestDigest],
    ['program', t.argv.map(showWord).join(' ') || '—'],
    ['ended', ended],
    [
      'used',
      [
        plural(t.files.length, 'file'),
        plural(t.directories.length, 'directory', 'directories'),
        plural(t.symlinks.length, 'symlink'),
        ...(t.other.length ? [`${t.other.length} other`] : []),
      ].join(', '),
    ],
  ];
  const lines = [`wrote ${output}`, ...table(rows).map((l) => `  ${l}`)];
  if (!t.stopped && t.exitStatus !== undefined && t.exitStatus !== 0) {
    lines.push(
      `  warning: the program failed (status ${t.exitStatus}); the trace holds what that failing run used`,
    );
  }
  lines.push(
    `next: irb build ${showWord(image)} --keep-only ${showWord(output)}   (add --keep GLOB for what this run did not touch)`,
  );
  return lines;
}

export const help = `Usage: irb trace IMAGE [options] [-o TRACE.json]

Builds IMAGE with irb's static /init in trace mode, boots it under QEMU, runs its
Entrypoint + Cmd, and writes every file, directory and symlink the run read,
executed, mapped or followed to TRACE.json (default ${DEFAULT_TRACE_OUTPUT}). Then:

  irb build IMAGE --keep-only TRACE.json [--keep GLOB]...

builds an archive with only those paths (their parent directories, /etc/passwd,
/etc/group, injected files and /init added). --keep-only is repeatable: traces of
several runs are merged.

What a trace cannot see: paths the program only stat()ed or checked for, and code
paths this run did not take (another input, an error path, a plugin loaded later).
Every file of a directory the run listed is kept; keep the rest with --keep GLOB.

  -o, --output FILE            the trace (default ${DEFAULT_TRACE_OUTPUT}; written atomically)
      --timeout S              stop the program after S seconds (SIGTERM, then SIGKILL) and
                               trace what it used so far: for servers that never exit
                               (default: wait until it exits)
      --kernel PATH            kernel to boot (as irb boot)
  -m, --memory MB              guest RAM (default: what the archive needs to unpack)
Image and contents (as for irb build):
      --platform OS/ARCH[/V]   --insecure-registry HOST   --keychain MODULE[#EXPORT]
      --cache-dir DIR / --no-cache
      --inject SRC:DEST        --exclude GLOB             --slim PRESET[,PRESET]
      --replace-init           the image has its own /init: trace with irb's instead
Output control:
      --json                   print the summary as JSON (the lists stay in the file)
  -q, --quiet                  no progress, no program output, no summary
      --verbose                the whole console (kernel log and trace lines too)

The program's console output is shown on stderr while it runs. The trace lists
irb's own /init too; every build replaces it anyway.`;
