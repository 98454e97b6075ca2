import { type ChildProcess, spawn } from 'node:child_process';
import { IrbError } from '@irb/errors';
import type { BootArch } from './arch.ts';

const MAX_OUTPUT = 4 * 1024 * 1024;
const PANIC = /Kernel panic - not syncing/;
/** How far back before new console text a match may start. */
const MATCH_MARGIN = 64 * 1024;

/** Every QEMU this module started and that still runs: killed if the process exits. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Registers a QEMU to kill when this process exits. */
export function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of running) c.kill('SIGKILL');
    });
  }
}

/** Stops a QEMU: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
export function stop(child: ChildProcess, graceMs = 3000): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  timer.unref();
  child.once('exit', () => clearTimeout(timer));
}

function matcher(expect: string | RegExp | undefined): ((text: string) => boolean) | undefined {
  if (expect === undefined) return undefined;
  if (typeof expect === 'string') return (text) => text.includes(expect);
  const re = new RegExp(expect.source, expect.flags.replace(/[gy]/g, ''));
  return (text) => re.test(text);
}

/** What {@link runQemu} is told. */
export interface RunQemuOptions {
  qemu: string;
  args: readonly string[];
  /** For the install hint when QEMU is missing. */
  arch: BootArch;
  timeoutMs: number;
  expect?: string | RegExp;
  stopOnMatch: boolean;
  signal?: AbortSignal;
  stopSignal?: AbortSignal;
  onOutput?: (text: string) => void;
  input?: AsyncIterable<Uint8Array>;
  /** Called right after QEMU was spawned, with its pid and `performance.now()` just before the spawn. */
  onSpawn?: (pid: number | undefined, startMs: number) => void;
}

/** How a QEMU run ended. */
export interface QemuRun {
  matched: boolean;
  panicked: boolean;
  timedOut: boolean;
  stopped: boolean;
  exitCode: number | null;
  output: string;
  stderr: string;
  pid: number | undefined;
  /** Host ms from the spawn to the first console byte. */
  firstOutputMs?: number;
}

/**
 * Runs one QEMU and watches its console: stops it when `expect` matched (with `stopOnMatch`),
 * on `stopSignal`, on a panic (after the trace), and kills it on timeout; rejects on `signal`
 * with its reason, and when QEMU cannot be started.
 */
export function runQemu(options: RunQemuOptions): Promise<QemuRun> {
  const { qemu, signal, stopSignal } = options;
  const matches = matcher(options.expect);
  return new Promise<QemuRun>((resolve, reject) => {
    const startMs = performance.now();
    const child = spawn(qemu, options.args, { stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    options.onSpawn?.(child.pid, startMs);
    if (options.input) void forwardInput(options.input, child);
    let output = '';
    let stderr = '';
    let matched = false;
    let panicked = false;
    let timedOut = false;
    let stopped = false;
    let aborted = false;
    let firstOutputMs: number | undefined;
    let spawnError: unknown;
    const decoder = new TextDecoder();

    // An infinite timeout (a VM that serves until it is stopped) sets no timer: setTimeout would
    // read Infinity as 1 ms.
    const timer = Number.isFinite(options.timeoutMs)
      ? setTimeout(() => {
          timedOut = true;
          stop(child);
        }, options.timeoutMs)
      : undefined;
    const onAbort = (): void => {
      aborted = true;
      stop(child);
    };
    const onStop = (): void => {
      stopped = true;
      stop(child);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (stopSignal?.aborted) onStop();
    else stopSignal?.addEventListener('abort', onStop, { once: true });

    child.stdout!.on('data', (data: Buffer) => {
      firstOutputMs ??= performance.now() - startMs;
      const text = decoder.decode(data, { stream: true }).replace(/\r/g, '');
      if (text === '') return;
      options.onOutput?.(text);
      const before = output.length;
      output += text;
      if (output.length > MAX_OUTPUT) output = output.slice(output.length - MAX_OUTPUT);
      // Only the new text and a margin before it can hold a new match: keeps a chatty
      // guest from making every chunk rescan megabytes.
      const recent = output.slice(Math.max(0, Math.min(before, output.length - text.length) - MATCH_MARGIN));
      if (!panicked && PANIC.test(recent)) {
        panicked = true;
        // QEMU exits by itself (panic=-1, -no-reboot); give the trace a moment, then make sure.
        setTimeout(() => stop(child), 5000).unref();
      }
      if (!matched && matches?.(recent)) {
        matched = true;
        if (options.stopOnMatch) stop(child);
      }
    });
    child.stderr!.on('data', (data: Buffer) => {
      stderr += data.toString();
      if (stderr.length > 65536) stderr = stderr.slice(-65536);
    });
    child.stdin!.on('error', () => {});
    let settled = false;
    const finish = (code: number | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      stopSignal?.removeEventListener('abort', onStop);
      child.stdin!.destroy();
      if (spawnError !== undefined) {
        const missing = (spawnError as { code?: string }).code === 'ENOENT';
        reject(
          missing
            ? new IrbError(
                'IRB_BOOT_QEMU_NOT_FOUND',
                `${qemu} was not found; install QEMU (Debian: apt-get install ${options.arch === 'aarch64' ? 'qemu-system-arm' : 'qemu-system-x86'})`,
                { cause: spawnError },
              )
            : spawnError,
        );
        return;
      }
      if (aborted) {
        reject(signal?.reason ?? new Error('aborted'));
        return;
      }
      resolve({
        matched,
        panicked,
        timedOut,
        stopped,
        exitCode: code,
        output,
        stderr,
        pid: child.pid,
        ...(firstOutputMs !== undefined ? { firstOutputMs: Math.round(firstOutputMs * 10) / 10 } : {}),
      });
    };
    child.on('error', (error) => {
      spawnError = error;
      // A process that never started emits no 'close' we could rely on.
      if (child.pid === undefined) finish(null);
    });
    child.on('close', (code) => finish(code));
  });
}

/** Copies `input` into QEMU's stdin, which is the guest's serial console, until either ends. */
async function forwardInput(input: AsyncIterable<Uint8Array>, child: ChildProcess): Promise<void> {
  const stdin = child.stdin;
  if (!stdin) return;
  const iterator = input[Symbol.asyncIterator]();
  // Stop asking for input once QEMU is gone (the pending read ends whenever its source does).
  child.once('close', () => void iterator.return?.()?.catch(() => {}));
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done || stdin.destroyed) return;
      if (!stdin.write(next.value)) {
        await new Promise<void>((resolve) => {
          stdin.once('drain', resolve);
          stdin.once('close', resolve);
        });
      }
    }
  } catch {
    // A failing input source ends the forwarding, not the boot.
  }
}
