import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { IrbError } from '@irb/errors';
import { type BootArch, hostArch, initramfsArch } from './arch.ts';
import { findKernel, kernelImageFormat, readable } from './kernel.ts';

/**
 * QEMU machine type: on x86_64 `microvm` (fast, minimal) or `pc` (boots reliably under TCG);
 * on aarch64 `virt` (the only one).
 */
export type BootMachine = 'microvm' | 'pc' | 'virt';
/** QEMU accelerator: `kvm` (hardware) or `tcg` (software emulation). */
export type BootAccel = 'kvm' | 'tcg';

/** Options of {@link bootInitramfs}. */
export interface BootOptions {
  /** Kernel image. Default: {@link findKernel}. */
  kernel?: string;
  /** The initramfs file to boot. */
  initramfs: string;
  /** Guest memory in MiB. Default 256. */
  memoryMb?: number;
  /** Guest CPUs. Default 1. */
  cpus?: number;
  /** Gives up (and kills QEMU) after this long. Default 120 000 ms. */
  timeoutMs?: number;
  /** Console text that means success; QEMU is stopped once it appears (see `stopOnMatch`). */
  expect?: string | RegExp;
  /** Stop QEMU as soon as `expect` matched. Default `true`; `false` waits for the guest to power off. */
  stopOnMatch?: boolean;
  /** Extra kernel arguments, appended after irb's own. */
  append?: string[];
  /** Kills QEMU; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Receives console output as it arrives (carriage returns removed). */
  onOutput?: (text: string) => void;
  /** Bytes for the guest's serial console (what a user types), forwarded until QEMU exits. Default: none. */
  input?: AsyncIterable<Uint8Array>;
  /**
   * Guest architecture. Default: the host's. `'auto'` reads it from the archive's /init (the ELF
   * itself, or a script's interpreter; see {@link initramfsArch}), falling back to the host's.
   */
  arch?: 'auto' | BootArch;
  /** Default `'auto'`: on x86_64 `microvm` with KVM, `pc` with TCG; on aarch64 `virt`. */
  machine?: 'auto' | BootMachine;
  /**
   * Default `'auto'`: KVM when the guest has the host's architecture and a probe boot shows KVM
   * works (also `IRB_ACCEL=kvm|tcg`), else TCG.
   */
  accel?: 'auto' | BootAccel;
  /** QEMU binary. Default `qemu-system-<arch>`. */
  qemu?: string;
}

/** What happened during {@link bootInitramfs}. */
export interface BootResult {
  /** `expect` matched (or, without `expect`, the guest powered off with QEMU exiting 0), no panic, no timeout. */
  ok: boolean;
  /** `expect` was seen on the console. */
  matched: boolean;
  /** The kernel panicked ("Kernel panic" on the console). */
  panicked: boolean;
  /** QEMU's exit code; `null` when it was stopped by a signal. */
  exitCode: number | null;
  /** `timeoutMs` passed first. */
  timedOut: boolean;
  /** The console output (carriage returns removed; the last 4 MiB at most). */
  output: string;
  /** QEMU's own messages (warnings, errors). */
  stderr: string;
  /** The guest architecture booted. */
  arch: BootArch;
  /** The machine type used. */
  machine: BootMachine;
  /** The accelerator used. */
  accel: BootAccel;
  /** The full QEMU command line. */
  command: string[];
  /** QEMU's process id (it has exited when the promise settles). */
  pid: number | undefined;
}

const MAX_OUTPUT = 4 * 1024 * 1024;
const PANIC = /Kernel panic - not syncing/;
/** How far back before new console text a match may start. */
const MATCH_MARGIN = 64 * 1024;

/** Every QEMU this module started and that still runs: killed if the process exits. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
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
function stop(child: ChildProcess, graceMs = 3000): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  timer.unref();
  child.once('exit', () => clearTimeout(timer));
}

/** The QEMU binary for a guest architecture. */
export function qemuBinary(arch: BootArch): string {
  return `qemu-system-${arch}`;
}

/** The kernel command line irb boots with. */
export function kernelCommandLine(machine: BootMachine, append: readonly string[] = []): string {
  // virt's first UART is a PL011 (ttyAMA0); the x86 machines have a 16550 (ttyS0).
  const args = [machine === 'virt' ? 'console=ttyAMA0' : 'console=ttyS0', 'panic=-1', 'rdinit=/init'];
  // microvm has no PIT or HPET to calibrate the TSC against; without a given frequency
  // the calibration hangs in about one boot of three under TCG.
  if (machine === 'microvm') args.push('tsc_early_khz=2000000');
  return [...args, ...append].join(' ');
}

/** The QEMU arguments for a boot (exposed for logging and for `irb boot --dry-run`). */
export function qemuArguments(options: {
  kernel: string;
  initramfs: string;
  machine: BootMachine;
  accel: BootAccel;
  memoryMb?: number;
  cpus?: number;
  append?: readonly string[];
}): string[] {
  const { machine, accel } = options;
  // virt has no default CPU model under TCG; cortex-a57 is the one Debian's arm64 kernel and
  // every QEMU version know.
  const cpu = accel === 'kvm' ? ['-cpu', 'host'] : machine === 'virt' ? ['-cpu', 'cortex-a57'] : [];
  return [
    '-accel',
    accel,
    '-M',
    machine,
    ...cpu,
    '-m',
    String(options.memoryMb ?? 256),
    '-smp',
    String(options.cpus ?? 1),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    // The console on our stdout; signal=off so bytes on stdin never become signals.
    '-chardev',
    'stdio,id=console,signal=off',
    '-serial',
    'chardev:console',
    '-kernel',
    options.kernel,
    '-initrd',
    options.initramfs,
    '-append',
    kernelCommandLine(machine, options.append),
  ];
}

function probeCacheFile(): string {
  const cache = process.env.XDG_CACHE_HOME || join(process.env.HOME || homedir(), '.cache');
  return join(cache, 'irb', 'kvm-probe.json');
}

async function bootId(): Promise<string> {
  try {
    return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  } catch {
    return 'unknown';
  }
}

const probes = new Map<string, Promise<boolean>>();

/**
 * Whether KVM really runs a Linux guest here. An accessible /dev/kvm is not enough (some
 * sandboxes expose one that hangs the guest), so this boots `kernel` under KVM with no
 * initramfs and waits up to `timeoutMs` for its first console line. The answer is cached
 * in memory and in `~/.cache/irb/kvm-probe.json` until the host reboots.
 */
export function probeKvm(options: {
  kernel: string;
  qemu?: string;
  timeoutMs?: number;
  /** The guest's architecture; KVM runs only the host's. Default: the host's. */
  arch?: BootArch;
}): Promise<boolean> {
  const arch = options.arch ?? hostArch();
  if (arch !== hostArch()) return Promise.resolve(false);
  const qemu = options.qemu ?? qemuBinary(arch);
  const key = `${qemu}\0${options.kernel}`;
  let probe = probes.get(key);
  if (!probe) {
    probe = probeUncached(qemu, options.kernel, options.timeoutMs ?? 4000, arch);
    probes.set(key, probe);
  }
  return probe;
}

async function probeUncached(
  qemu: string,
  kernel: string,
  timeoutMs: number,
  arch: BootArch,
): Promise<boolean> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  const id = await bootId();
  const file = probeCacheFile();
  const cacheKey = `${qemu}|${kernel}`;
  let cache: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as {
      bootId?: string;
      results?: Record<string, unknown>;
    };
    if (parsed.bootId === id && parsed.results) cache = parsed.results;
  } catch {
    // no cache yet
  }
  const known = cache[cacheKey];
  if (typeof known === 'boolean') return known;

  const machine: BootMachine = arch === 'aarch64' ? 'virt' : 'microvm';
  const args = [...qemuArguments({ kernel, initramfs: '/dev/null', machine, accel: 'kvm', memoryMb: 128 })];
  // No initrd for the probe: drop it, and print from the very first instruction on.
  const initrd = args.indexOf('-initrd');
  args.splice(initrd, 2);
  args[args.length - 1] += arch === 'aarch64' ? ' earlycon=pl011,0x9000000' : ' earlyprintk=serial,ttyS0';
  const works = await new Promise<boolean>((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      resolve(false);
      return;
    }
    track(child);
    let text = '';
    const timer = setTimeout(() => finish(false), timeoutMs);
    function finish(result: boolean): void {
      clearTimeout(timer);
      stop(child, 500);
      resolve(result);
    }
    child.stdout?.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('Linux version')) finish(true);
    });
    child.on('error', () => finish(false));
    child.on('exit', () => finish(text.includes('Linux version')));
  });
  try {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify({ bootId: id, results: { ...cache, [cacheKey]: works } }));
  } catch {
    // a read-only cache only costs another probe next time
  }
  return works;
}

/**
 * The accelerator {@link bootInitramfs} uses for an `arch` guest booting `kernel` when the caller
 * does not choose: `IRB_ACCEL` when set, else KVM when {@link probeKvm} shows it runs a guest,
 * else TCG. For reports (`irb --version --verbose`) that must say what a boot will do.
 */
export async function chooseAccel(options: {
  kernel: string;
  qemu?: string;
  arch?: BootArch;
}): Promise<BootAccel> {
  const arch = options.arch ?? hostArch();
  const qemu = options.qemu ?? qemuBinary(arch);
  return accelFromEnv() ?? ((await probeKvm({ kernel: options.kernel, qemu, arch })) ? 'kvm' : 'tcg');
}

function accelFromEnv(): BootAccel | undefined {
  const value = process.env.IRB_ACCEL;
  return value === 'kvm' || value === 'tcg' ? value : undefined;
}

function matcher(expect: string | RegExp | undefined): ((text: string) => boolean) | undefined {
  if (expect === undefined) return undefined;
  if (typeof expect === 'string') return (text) => text.includes(expect);
  const re = new RegExp(expect.source, expect.flags.replace(/[gy]/g, ''));
  return (text) => re.test(text);
}

/**
 * Boots `kernel` with `initramfs` under QEMU and watches the serial console: resolves when
 * `expect` appeared (QEMU is then stopped), the guest powered off, the kernel panicked
 * (`panic=-1` with `-no-reboot` makes QEMU exit), or `timeoutMs` passed (QEMU is killed).
 * QEMU never outlives the call; it is also killed if the Node process exits.
 *
 * @throws IrbError `IRB_BOOT_KERNEL_NOT_FOUND`, `IRB_BOOT_KERNEL_INVALID`, `IRB_BOOT_INITRAMFS_NOT_FOUND`,
 *   `IRB_BOOT_QEMU_NOT_FOUND`; the signal's reason on abort.
 */
export async function bootInitramfs(options: BootOptions): Promise<BootResult> {
  const { signal } = options;
  signal?.throwIfAborted();
  const arch: BootArch =
    options.arch === 'auto'
      ? ((await initramfsArch(options.initramfs).catch(() => undefined)) ?? hostArch())
      : (options.arch ?? hostArch());
  if (arch !== 'x86_64' && arch !== 'aarch64') {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `guest architecture "${String(arch)}" is unknown; use x86_64 or aarch64`,
    );
  }
  const qemu = options.qemu ?? qemuBinary(arch);
  const kernel = options.kernel ?? (await findKernel({ arch }));
  if (!(await readable(kernel))) {
    throw new IrbError(
      'IRB_BOOT_KERNEL_NOT_FOUND',
      `kernel ${kernel} is not a readable file; pass another kernel`,
    );
  }
  if ((await kernelImageFormat(kernel)) === undefined) {
    throw new IrbError(
      'IRB_BOOT_KERNEL_INVALID',
      `${kernel} is not a bootable Linux kernel (no bzImage, arm64 Image, EFI zboot, ELF or gzip header); pass a kernel image (vmlinuz) as \`kernel\``,
    );
  }
  if (!(await readable(options.initramfs))) {
    throw new IrbError(
      'IRB_BOOT_INITRAMFS_NOT_FOUND',
      `initramfs ${options.initramfs} is not a readable file; build it first`,
    );
  }
  const accel: BootAccel =
    options.accel && options.accel !== 'auto' ? options.accel : await chooseAccel({ kernel, qemu, arch });
  const machine: BootMachine =
    options.machine && options.machine !== 'auto'
      ? options.machine
      : arch === 'aarch64'
        ? 'virt'
        : accel === 'kvm'
          ? 'microvm'
          : 'pc';
  if ((machine === 'virt') !== (arch === 'aarch64')) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `machine ${machine} does not run ${arch} guests; use ${arch === 'aarch64' ? 'virt' : 'microvm or pc'} (or auto)`,
    );
  }
  const args = qemuArguments({
    kernel,
    initramfs: options.initramfs,
    machine,
    accel,
    ...(options.memoryMb !== undefined ? { memoryMb: options.memoryMb } : {}),
    ...(options.cpus !== undefined ? { cpus: options.cpus } : {}),
    ...(options.append !== undefined ? { append: options.append } : {}),
  });
  signal?.throwIfAborted();
  const matches = matcher(options.expect);
  const stopOnMatch = options.stopOnMatch ?? true;

  return new Promise<BootResult>((resolve, reject) => {
    const child = spawn(qemu, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    if (options.input) void forwardInput(options.input, child);
    let output = '';
    let stderr = '';
    let matched = false;
    let panicked = false;
    let timedOut = false;
    let aborted = false;
    let spawnError: unknown;
    const decoder = new TextDecoder();

    const timer = setTimeout(() => {
      timedOut = true;
      stop(child);
    }, options.timeoutMs ?? 120_000);
    const onAbort = (): void => {
      aborted = true;
      stop(child);
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout!.on('data', (data: Buffer) => {
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
        if (stopOnMatch) stop(child);
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
      child.stdin!.destroy();
      if (spawnError !== undefined) {
        const missing = (spawnError as { code?: string }).code === 'ENOENT';
        reject(
          missing
            ? new IrbError(
                'IRB_BOOT_QEMU_NOT_FOUND',
                `${qemu} was not found; install QEMU (Debian: apt-get install ${arch === 'aarch64' ? 'qemu-system-arm' : 'qemu-system-x86'})`,
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
      const success = matches ? matched : code === 0;
      resolve({
        ok: success && !panicked && !timedOut,
        matched,
        panicked,
        exitCode: code,
        timedOut,
        output,
        stderr,
        arch,
        machine,
        accel,
        command: [qemu, ...args],
        pid: child.pid,
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
