/** `irb boot ARCHIVE`: QEMU with the console on this terminal (or `--timeline`: when each phase was reached). */
import type { BootResult, PortForward } from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { bytesOf, type CliInput, type CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { integer, one, parseOptions, seconds, strings } from '../kit/options.ts';
import { UsageError } from '../kit/usage.ts';
import { corruptArchiveReason, forwardLine, OUT_OF_MEMORY, unpackFailure } from './boot-verdict.ts';

/** Parsed `irb boot`. */
export interface BootArgs {
  archive: string;
  kernel?: string;
  memoryMb?: number;
  timeoutS?: number;
  expect?: string;
  kernelArgs: string[];
  /** `--net`, or `--forward` (which implies it): a network for the guest. */
  net: boolean;
  /** `--forward [127.0.0.1:]HOSTPORT:GUESTPORT` as given (checked by {@link run}, which loads the parser). */
  forwards: string[];
  /** `--timeline`: boot `runs` times and print each phase's median instead of the console. */
  timeline: boolean;
  runs: number;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
}

export const name = 'boot';
export const synopsis = 'boot ARCHIVE [-- ARGS]';
export const summary =
  'boot an initramfs in QEMU and stream the console\n(--timeline: when each boot phase was reached)';
export const help = `Usage: irb boot ARCHIVE [options] [-- KERNEL_ARGS...]

Boots ARCHIVE in QEMU for the architecture of its /init (x86_64: microvm with KVM
when usable, otherwise software emulation on the pc machine; aarch64: virt) and
streams the console to stdout.

  --kernel PATH      kernel image: bzImage, arm64 Image, EFI zboot or ELF vmlinux (default:
                     $IRB_KERNEL_X86_64 / $IRB_KERNEL_AARCH64, else $IRB_KERNEL, else
                     the newest readable /boot/vmlinuz-*, else one unpacked in
                     ~/.cache/irb/kernel or kernel-aarch64: scripts/ensure-env.sh puts
                     Debian's there in a checkout of irb; installed from npm, point
                     $IRB_KERNEL at a distribution kernel, e.g. linux-image-amd64's)
  -m, --memory MB    guest RAM (default: what the archive needs to unpack + 256, at
                     least 512)
  --timeout S|none   give up after S seconds (default 120); none: run until the guest
                     powers off or irb is stopped (a VM that serves, such as an agent)
  --expect TEXT      succeed as soon as TEXT appears on the console; fail if it never does
  --net              give the guest a network: QEMU's user networking, which reaches
                     nothing outside the VM (not the host, not the internet), virtio-net,
                     and ip= for it (unless -- KERNEL_ARGS has one); the archive needs the
                     kernel's virtio_net and virtio_pci (virtio_mmio on microvm) modules
                     unless the kernel has them built in
  --forward [127.0.0.1:]HOSTPORT:GUESTPORT
                     make guest port GUESTPORT reachable at 127.0.0.1:HOSTPORT (0: a free
                     port); implies --net; repeatable. Each bound port is printed on
                     stderr ("irb: forward 127.0.0.1:41234 -> guest port 80")
  --timeline         do not stream the console; print when each phase was reached
                     (kernel unpack start, unpacked, /init, modules loaded, network up,
                     program exec, first line, VM end, wall), in ms on the guest's clock,
                     with a bar per phase; with --forward, the first forward is asked
                     (an HTTP GET) until it answers: network answers, port accepts, first
                     answer, in ms on the host's clock since QEMU started, and the VM is
                     stopped once the answer came
  --runs N           with --timeline: boot N times and print each phase's median
  --json             with --timeline: one JSON object, a field per phase in ms
  -q, --quiet        do not stream the console
  --verbose          also print the QEMU command line (with its forwards); with errors,
                     the code and causes

Console input: on a terminal, keys go to the guest (Ctrl-C too); Ctrl-A x stops
the VM (exit 130), Ctrl-A Ctrl-A sends Ctrl-A. Piped stdin is sent to the console
once the kernel has started /init.

Exits with N when a generated /init reports "irb: exit status N" (0 when the guest
program succeeded), 0 when TEXT appeared or the guest powered off by itself, 1 on
a kernel panic, too little memory, a timeout or a missing TEXT, 2 for a bad value
(a kernel of another architecture, modules for another kernel release, a --forward
that is malformed or whose host port is taken).`;

export function parse(argv: string[]): BootArgs | 'help' {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const kernelArgs = dash < 0 ? [] : argv.slice(dash + 1);
  const { values, positionals } = parseOptions(own, {
    kernel: { type: 'string' },
    memory: { type: 'string', short: 'm' },
    timeout: { type: 'string' },
    expect: { type: 'string' },
    net: { type: 'boolean' },
    forward: { type: 'string', multiple: true },
    timeline: { type: 'boolean' },
    runs: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    verbose: { type: 'boolean' },
  });
  if (values.help) return 'help';
  const forwards = strings(values.forward);
  const args: BootArgs = {
    archive: one(positionals, 'ARCHIVE'),
    kernelArgs,
    net: Boolean(values.net) || forwards.length > 0,
    forwards,
    timeline: Boolean(values.timeline),
    runs: integer('runs', values.runs, 1, 100) ?? 1,
    json: Boolean(values.json),
    quiet: Boolean(values.quiet),
    verbose: Boolean(values.verbose),
  };
  if (!args.timeline) {
    // Both only shape the timeline's report; without it they would be silently ignored.
    const stray = values.runs !== undefined ? '--runs' : values.json ? '--json' : undefined;
    if (stray)
      throw new UsageError(
        `${stray} goes with --timeline (irb boot ARCHIVE --timeline ${stray === '--runs' ? '--runs N' : '--json'})`,
      );
  } else if (values.expect !== undefined) {
    throw new UsageError('--timeline boots until the guest powers off; it excludes --expect');
  }
  if (values.kernel !== undefined) args.kernel = String(values.kernel);
  const memory = integer('memory', values.memory, 64, 1024 * 1024);
  if (memory !== undefined) args.memoryMb = memory;
  // `none`: a VM that serves (an agent) runs until it powers off or is stopped.
  const timeout = values.timeout === 'none' ? Number.POSITIVE_INFINITY : seconds('timeout', values.timeout);
  if (timeout !== undefined) args.timeoutS = timeout;
  if (values.expect !== undefined) {
    if (values.expect === '') throw new UsageError('--expect needs a non-empty text');
    args.expect = String(values.expect);
  }
  return args;
}

/** The escape key of the interactive console, as in QEMU: Ctrl-A, then x. */
const CTRL_A = 0x01;

/**
 * What the user types, for the guest's serial console. On a terminal: raw mode (so Ctrl-C reaches
 * the guest), and Ctrl-A x stops the VM (Ctrl-A Ctrl-A sends one Ctrl-A). From a pipe or a file:
 * the bytes unchanged, once `ready` resolves.
 */
async function* consoleInput(
  input: CliInput,
  ready: Promise<void>,
  onEscape: () => void,
): AsyncGenerator<Uint8Array> {
  if (!input.isTTY) {
    // The UART holds a few bytes and the kernel's serial driver flushes them when the console is
    // opened: piped bytes sent any earlier would be lost. Someone typing waits for a prompt anyway.
    await ready;
    yield* bytesOf(input);
    return;
  }
  let escaped = false;
  for await (const chunk of bytesOf(input)) {
    const out: number[] = [];
    for (const byte of chunk) {
      if (escaped) {
        escaped = false;
        if (byte === 0x78 || byte === 0x58) {
          onEscape();
          return;
        }
        if (byte !== CTRL_A) out.push(CTRL_A);
        out.push(byte);
      } else if (byte === CTRL_A) escaped = true;
      else out.push(byte);
    }
    if (out.length > 0) yield Uint8Array.from(out);
  }
}

/** The memory `irb boot` gives by default: what unpacking takes plus room for the program (help and README say so). */
export function defaultMemoryMiB(recommendedMemoryMiB: number): number {
  return Math.max(512, recommendedMemoryMiB + 256);
}

/** `--net`/`--forward` as the library's `net`: each forward read by `parse`, a bad one a usage error. */
function bootNet(
  args: BootArgs,
  parse: (spec: string) => PortForward,
): true | { forwards: PortForward[] } | undefined {
  if (!args.net) return undefined;
  if (args.forwards.length === 0) return true;
  return {
    forwards: args.forwards.map((spec) => {
      try {
        return parse(spec);
      } catch (error) {
        // The library's own words ('forward "x": …, write 8080:80 …'), as the flag's.
        const message = error instanceof Error ? error.message : String(error);
        throw new UsageError(message.replace(/^forward /, '--forward '));
      }
    }),
  };
}

/** `irb boot`: boots an archive in QEMU, streams the console, forwards input, exits with the guest program's status. */
export async function run(args: BootArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { bootInitramfs, bootProblem, measureArchive, parseForward } = await builder();
  // Before any work: a malformed --forward is a mistake on the command line.
  const net = bootNet(args, parseForward);
  const measure = async () =>
    defaultMemoryMiB((await measureArchive(args.archive, signal ? { signal } : {})).recommendedMemoryMiB);
  const memoryMb = args.memoryMb ?? (await measure());
  const timeoutS = args.timeoutS ?? 120;
  if (args.timeline) {
    const timeline = { ...args, memoryMb, timeoutS, ...(net ? { network: net } : {}) };
    return (await import('./boot-timeline.ts')).runTimeline(timeline, io, signal);
  }
  const stdin = io.stdin;
  const interactive = stdin?.isTTY === true;
  const escapeKey = new AbortController();
  const stopped = Object.assign(new Error('stopped with Ctrl-A x'), { name: 'AbortError' });
  const bootSignal = signal ? AbortSignal.any([signal, escapeKey.signal]) : escapeKey.signal;
  // Piped input waits until the kernel has opened the console for /init ("Run /init as init
  // process"; with `quiet` on the kernel command line, the first console text).
  const quietKernel = args.kernelArgs.includes('quiet');
  let consoleTail = '';
  let openConsole!: () => void;
  const consoleOpen = new Promise<void>((resolve) => {
    openConsole = resolve;
  });
  const watchConsole = (text: string): void => {
    consoleTail = (consoleTail + text).slice(-256);
    if (quietKernel || /Run \S+ as init process/.test(consoleTail)) openConsole();
  };
  if (interactive) {
    stdin.setRawMode?.(true);
    io.stderr.write('irb: console input goes to the guest; Ctrl-A x stops the VM\n');
  }
  let result: BootResult;
  try {
    result = await bootInitramfs({
      // Without --kernel, the kernel for the archive's architecture (its /init says which).
      ...(args.kernel !== undefined ? { kernel: args.kernel } : {}),
      arch: 'auto',
      initramfs: args.archive,
      memoryMb,
      timeoutMs: Math.round(timeoutS * 1000),
      // Match through the end of the line, so the console shows the whole line before QEMU is stopped.
      ...(args.expect !== undefined ? { expect: new RegExp(`${escapeRegExp(args.expect)}[^\n]*\n`) } : {}),
      append: args.kernelArgs,
      ...(net ? { net } : {}),
      signal: bootSignal,
      // The ports are bound when QEMU starts (a free one for HOSTPORT 0): what a client needs now.
      onStart: (start) => {
        for (const forward of start.forwards) io.stderr.write(`${forwardLine(forward)}\n`);
      },
      ...(stdin ? { input: consoleInput(stdin, consoleOpen, () => escapeKey.abort(stopped)) } : {}),
      onOutput: (text: string) => {
        watchConsole(text);
        if (!args.quiet) io.stdout.write(text);
      },
    });
  } catch (error) {
    if (escapeKey.signal.aborted && !signal?.aborted) {
      io.stderr.write('\nirb: stopped with Ctrl-A x\n');
      return EXIT.interrupted;
    }
    throw error;
  } finally {
    if (interactive) stdin.setRawMode?.(false);
    // A read waiting on stdin would keep the process alive after the VM is gone.
    stdin?.destroy?.();
  }
  if (args.verbose) io.stderr.write(`irb: ${result.command.join(' ')}\n`);
  // A generated /init reports the program's status, which becomes irb's exit code (as with
  // `docker run`); with --expect, the text decides.
  // The last report counts: the program's own output might hold the same words.
  const status = [...result.output.matchAll(/irb: exit status (\d+)/g)].at(-1)?.[1];
  const silent = result.output.trim() === '';
  if (result.ok && !silent) {
    // The program ran, but without the network it was given: say which modules to add.
    if (result.noNetDevice) io.stderr.write(`irb: warning: ${result.noNetDevice.message}\n`);
    if (args.expect !== undefined || status === undefined) return EXIT.ok;
    if (status !== '0') io.stderr.write(`irb: the guest program exited with status ${status}\n`);
    return Number(status);
  }
  // A kernel short of memory either says so or, below about 64 MiB, stops before its first line.
  // The default for this archive is what to suggest, unless the guest already had that much.
  // "Initramfs unpacking failed" is memory only for a full tmpfs; a broken archive says so too.
  const corrupt = unpackFailure(result.output);
  const oom = corrupt === undefined && OUT_OF_MEMORY.test(result.output);
  const defaultMb =
    oom || silent
      ? args.memoryMb === undefined
        ? memoryMb
        : await measure().catch(() => undefined)
      : undefined;
  const tooLittle = oom || (silent && defaultMb !== undefined && memoryMb < defaultMb);
  const suggestMb = defaultMb !== undefined && memoryMb < defaultMb ? defaultMb : memoryMb * 2;
  const reason =
    corrupt !== undefined
      ? corruptArchiveReason(corrupt)
      : tooLittle
        ? `the guest ran out of memory with ${memoryMb} MiB${silent ? ' (the kernel stopped before printing anything)' : ''}; ` +
          `give it more with --memory ${suggestMb}${args.memoryMb !== undefined && suggestMb === defaultMb ? ' or leave --memory out' : ''}`
        : // What the console cannot say: a timeout before the first line, QEMU's own error, no network device.
          (bootProblem(result) ??
          (silent
            ? `the kernel printed nothing on the console; check that ${args.kernel !== undefined ? `--kernel ${args.kernel}` : 'the kernel'} is built for ${result.arch} with a serial console`
            : result.panicked
              ? 'the kernel panicked; read the console above for the cause'
              : result.timedOut
                ? args.expect !== undefined
                  ? `"${args.expect}" did not appear within ${timeoutS} s; check the console above or raise --timeout`
                  : `the VM did not power off within ${timeoutS} s; raise --timeout or check the console above` +
                    (interactive
                      ? ''
                      : ' (a program waiting for input, such as a shell, gets it from a terminal or a pipe on stdin)')
                : args.expect !== undefined && !result.matched
                  ? `"${args.expect}" did not appear before the VM stopped; check the console above`
                  : `QEMU exited with status ${result.exitCode}: ${result.stderr.trim().split('\n')[0] ?? ''}`));
  // On a terminal, the console may have stopped mid-line (a prompt): start the verdict on its own line.
  const midLine = !args.quiet && io.stdout.isTTY && io.stderr.isTTY && !result.output.endsWith('\n');
  io.stderr.write(`${midLine ? '\n' : ''}irb: error: boot failed: ${reason}\n`);
  return EXIT.failure;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
