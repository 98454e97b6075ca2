import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BootOptions, bootInitramfs } from '@irb/boot';
import { IrbError } from '@irb/errors';
import { InitramfsBuilder } from './builder.ts';
import type { BootTrace } from './trace-file.ts';
import type { BuildSummary, InitramfsBuilderOptions } from './types.ts';

export type { BootTrace } from './trace-file.ts';

/**
 * Options of {@link traceImage}: a build's (modules, network and program overrides included:
 * the traced run is the program the archive will run), and the boot's.
 */
export interface TraceOptions
  extends Omit<
    InitramfsBuilderOptions,
    'compression' | 'level' | 'initKind' | 'trace' | 'init' | 'keepImageInit'
  > {
  /** Stop the program after this many seconds (SIGTERM, then SIGKILL) and trace what it used so far. Default: wait until it exits. */
  timeoutSeconds?: number;
  /** Kernel to boot. Default: `findKernel()`. */
  kernel?: string;
  /** Guest memory in MiB. Default: what the build recommends. */
  memoryMb?: number;
  /** Receives the guest's console output as it arrives. */
  onConsole?: (text: string) => void;
  /** Passed to QEMU: machine, accel, qemu binary. */
  boot?: Pick<BootOptions, 'machine' | 'accel' | 'qemu' | 'arch'>;
}

const LINE = /^irb-trace: ([fdlo]) ([0-9a-f]*)$/;

/** Hex of path bytes → the trace's path text: UTF-8 text, or `hex:…` when the bytes are not UTF-8. */
function pathText(hex: string): string {
  const bytes = Buffer.from(hex, 'hex');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return `hex:${hex}`;
  }
}

/**
 * The trace of one run of a tracing archive (`trace: true`): what the build's summary says of the
 * image and the program, and what the init printed on the console (the lists, the exit status,
 * whether `stopAfterSeconds` stopped it). For a caller that boots the archive itself (with its own
 * forwards, say) instead of through {@link traceImage}.
 *
 * @throws IrbError `IRB_TRACE_INCOMPLETE` when the console has no complete trace.
 */
export function traceOfRun(
  summary: Pick<BuildSummary, 'image' | 'manifestDigest' | 'platform' | 'command'>,
  console: string,
): BootTrace {
  const lists = parseTraceOutput(console);
  const status = /irb: exit status (\d+)/.exec(console);
  return {
    irbTrace: 1,
    image: summary.image,
    manifestDigest: summary.manifestDigest,
    platform: summary.platform,
    argv: summary.command ?? [],
    ...(status ? { exitStatus: Number(status[1]) } : {}),
    stopped: console.includes('irb: time is up; stopping the program'),
    ...lists,
  };
}

/**
 * Reads the init's trace lines (`irb-trace: <kind> <hex>` between `irb-trace: begin` and
 * `irb-trace: end <count>`) from a console transcript.
 *
 * @throws IrbError `IRB_TRACE_INCOMPLETE` when the transcript has no complete trace.
 */
export function parseTraceOutput(
  console: string,
): Pick<BootTrace, 'files' | 'directories' | 'symlinks' | 'other'> {
  // The kernel shares the serial console: a late message (a clocksource warning under load, …)
  // can land in the middle of a trace line. Its text, up to its newline, is cut out first.
  const lines = console
    .replace(/\r\n/g, '\n')
    .replace(/\[\s*\d+\.\d+\] [^\n]*\n/g, '')
    .split('\n');
  const begin = lines.lastIndexOf('irb-trace: begin');
  const endIndex = lines.findIndex((l, i) => i > begin && l.startsWith('irb-trace: end '));
  if (begin < 0 || endIndex < 0) {
    throw new IrbError(
      'IRB_TRACE_INCOMPLETE',
      'the traced boot ended before the init listed what the program used; see the console output, and give the run more `timeoutSeconds` or memory',
    );
  }
  const out = {
    files: [] as string[],
    directories: [] as string[],
    symlinks: [] as string[],
    other: [] as string[],
  };
  let count = 0;
  for (const line of lines.slice(begin + 1, endIndex)) {
    const m = LINE.exec(line);
    // The program's own output may interleave with the list; only complete trace lines count.
    if (!m) continue;
    count++;
    const path = pathText(m[2] as string);
    if (m[1] === 'f') out.files.push(path);
    else if (m[1] === 'd') out.directories.push(path);
    else if (m[1] === 'l') out.symlinks.push(path);
    else out.other.push(path);
  }
  const expected = Number((lines[endIndex] as string).slice('irb-trace: end '.length));
  if (count !== expected) {
    throw new IrbError(
      'IRB_TRACE_INCOMPLETE',
      `the trace lists ${count} paths but the init counted ${expected}: console lines were lost; trace again`,
    );
  }
  for (const list of Object.values(out)) list.sort();
  return out;
}

/**
 * Builds the image with irb's static init in trace mode, boots it under QEMU, runs its workload
 * (Entrypoint + Cmd, or until `timeoutSeconds`), and returns what the run used.
 *
 * The init compares each path's access time with its modification time: the kernel unpacks
 * them equal, and a read, exec, mmap or symlink walk moves the access time. What tracing cannot
 * see: code paths this run did not take, files only stat()ed or checked for existence, and
 * paths the program opens only under other inputs — keep those with `keep` globs.
 */
export async function traceImage(options: TraceOptions): Promise<BootTrace> {
  const { timeoutSeconds, kernel, memoryMb, onConsole, boot, ...build } = options;
  if (timeoutSeconds !== undefined && (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `\`timeoutSeconds\` ${timeoutSeconds} is not a whole number of seconds ≥ 1`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'irb-trace-'));
  try {
    const archive = join(dir, 'trace.cpio.lz4');
    const summary: BuildSummary = await new InitramfsBuilder({
      ...build,
      compression: 'lz4',
      initKind: 'static',
      trace: timeoutSeconds !== undefined ? { stopAfterSeconds: timeoutSeconds } : true,
    }).build(archive);
    const result = await bootInitramfs({
      initramfs: archive,
      ...(kernel !== undefined ? { kernel } : {}),
      memoryMb: memoryMb ?? summary.recommendedMemoryMiB,
      stopOnMatch: false,
      // A traced program that configures or uses its network meets one: QEMU's user network, which
      // reaches nothing outside the VM (its `ip=` wins over the baked value, as on any platform).
      ...(build.net !== undefined ? { net: true } : {}),
      // Unpacking and the kernel take seconds under emulation; the program gets its own time on top.
      timeoutMs: ((timeoutSeconds ?? 600) + 300) * 1000,
      ...(boot ?? {}),
      ...(onConsole ? { onOutput: onConsole } : {}),
      ...(build.signal ? { signal: build.signal } : {}),
    });
    return traceOfRun(summary, result.output);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
