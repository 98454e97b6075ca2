import { IrbError } from '@irb/errors';
import type { BootAccel, BootMachine } from './arch.ts';
import { type BootArch, hostArch } from './arch.ts';
import { type InitramfsInfo, inspectInitramfs } from './archive.ts';
import { qemuArguments, qemuBinary } from './command.ts';
import { findKernel, readable } from './kernel.ts';
import { inspectKernel, type KernelInfo } from './kernel-image.ts';
import { chooseAccel } from './kvm.ts';
import { checkModuleReleases, checkNetDriver } from './modules.ts';
import {
  type BootForward,
  type BootNetOptions,
  bindForwards,
  HOSTFWD_FAILED,
  type NoNetDevice,
  netForwards,
  noNetDeviceMessage,
  type PortForward,
  parseNoNetDevice,
  portInUse,
} from './net.ts';
import { runQemu } from './process.ts';

/** Options of {@link bootInitramfs}. */
export interface BootOptions {
  /** Kernel image. Default: {@link findKernel} for the guest's architecture. */
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
  /** Stops QEMU; the promise resolves with `stopped: true` (a caller that has what it wanted). */
  stopSignal?: AbortSignal;
  /** Receives console output as it arrives (carriage returns removed). */
  onOutput?: (text: string) => void;
  /** Called when QEMU has started (again, if a picked host port was lost to another process and QEMU was restarted). */
  onStart?: (start: BootStart) => void;
  /** Bytes for the guest's serial console (what a user types), forwarded until QEMU exits. Default: none. */
  input?: AsyncIterable<Uint8Array>;
  /**
   * Guest architecture. Default: the host's. `'auto'` reads it from the archive's /init (the ELF
   * itself, or a script's interpreter; see {@link inspectInitramfs}), else from the kernel image,
   * else the host's.
   */
  arch?: 'auto' | BootArch;
  /**
   * What {@link inspectInitramfs} says of `initramfs`, when the caller already read it (see
   * `createInitramfsInspector`): `arch: 'auto'` and `net` then read the archive no more.
   */
  initramfsInfo?: InitramfsInfo;
  /** Default `'auto'`: on x86_64 `microvm` with KVM, `pc` with TCG; on aarch64 `virt`. */
  machine?: 'auto' | BootMachine;
  /**
   * Default `'auto'`: KVM when the guest has the host's architecture and a probe boot shows KVM
   * works (also `IRB_ACCEL=kvm|tcg`), else TCG.
   */
  accel?: 'auto' | BootAccel;
  /** QEMU binary. Default `qemu-system-<arch>`. */
  qemu?: string;
  /**
   * A network for the guest: QEMU's user networking with `restrict=on` (the guest reaches nothing
   * outside this VM), a virtio-net device on the machine's bus, the matching `ip=` kernel argument
   * (unless `append` has an `ip=`, or `ip` is false), and `forwards` from 127.0.0.1 on the host into the guest.
   * `true`: a network without forwards.
   */
  net?: boolean | BootNetOptions;
  /**
   * The kernel's module tree (`…/lib/modules/<release>`), whose `modules.builtin` tells whether
   * the network driver is built in. Default: `lib/modules/<release>` beside the kernel's
   * directory, else `/lib/modules/<release>`.
   */
  kernelModules?: string;
}

/** What {@link BootOptions.onStart} learns. */
export interface BootStart {
  /** QEMU's process id. */
  pid: number | undefined;
  /** `performance.now()` just before QEMU was spawned: the zero of the host-clock times. */
  startMs: number;
  /** The forwards as bound (picked ports filled in). */
  forwards: readonly BootForward[];
  /** The full QEMU command line. */
  command: readonly string[];
}

/** What happened during {@link bootInitramfs}. */
export interface BootResult {
  /**
   * `expect` matched (or, without `expect`, the guest powered off with QEMU exiting 0, or the
   * caller stopped it with `stopSignal`), no panic, no timeout.
   */
  ok: boolean;
  /** `expect` was seen on the console. */
  matched: boolean;
  /** The kernel panicked ("Kernel panic" on the console). */
  panicked: boolean;
  /** QEMU's exit code; `null` when it was stopped by a signal. */
  exitCode: number | null;
  /** `timeoutMs` passed first. */
  timedOut: boolean;
  /** `stopSignal` stopped QEMU. */
  stopped: boolean;
  /** The timeout the boot had, in ms. */
  timeoutMs: number;
  /** Host ms from QEMU's start to the first console byte; `undefined`: the console stayed empty. */
  firstOutputMs?: number;
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
  /** The kernel image booted. */
  kernel: string;
  /** Its release, when the image says (see {@link inspectKernel}). */
  kernelRelease?: string;
  /** The forwards as bound (empty without `net`). */
  forwards: BootForward[];
  /** The guest's init said no network device appeared (`irb: net: no device …`), with the one line that says which modules to add. */
  noNetDevice?: NoNetDevice & { message: string };
  /** The full QEMU command line. */
  command: string[];
  /** QEMU's process id (it has exited when the promise settles). */
  pid: number | undefined;
}

/** How often QEMU is started again when a picked host port was taken before QEMU bound it. */
const PORT_RACE_ATTEMPTS = 3;

async function kernelInfo(kernel: string): Promise<KernelInfo> {
  if (!(await readable(kernel))) {
    throw new IrbError(
      'IRB_BOOT_KERNEL_NOT_FOUND',
      `kernel ${kernel} is not a readable file; pass another kernel`,
    );
  }
  const info = await inspectKernel(kernel);
  if (info === undefined) {
    throw new IrbError(
      'IRB_BOOT_KERNEL_INVALID',
      `${kernel} is not a bootable Linux kernel (no bzImage, arm64 Image, EFI zboot, ELF or gzip header); pass a kernel image (vmlinuz) as \`kernel\``,
    );
  }
  return info;
}

function archMismatch(
  kernel: string,
  info: KernelInfo,
  arch: BootArch,
  archive: InitramfsInfo | undefined,
): IrbError {
  const what =
    archive?.arch === arch ? `the archive's /init is ${arch}` : `the guest architecture asked for is ${arch}`;
  return new IrbError(
    'IRB_BOOT_KERNEL_ARCH_MISMATCH',
    `kernel ${kernel} is an ${info.arch} kernel (its ${info.format} header says so) but ${what}; boot it with an ${arch} kernel, or without one to use the ${arch} kernel irb finds`,
  );
}

/**
 * Boots `kernel` with `initramfs` under QEMU and watches the serial console: resolves when
 * `expect` appeared (QEMU is then stopped), the guest powered off, the kernel panicked
 * (`panic=-1` with `-no-reboot` makes QEMU exit), `stopSignal` aborted, or `timeoutMs` passed
 * (QEMU is killed). QEMU never outlives the call; it is also killed if the Node process exits.
 *
 * Before QEMU starts, the kernel image's header is checked against the guest's architecture, and
 * (with `arch: 'auto'` or `net`, which read the archive) the archive's kernel modules against the
 * kernel's release, and with `net` the network driver (see {@link checkNetDriver}).
 *
 * @throws IrbError `IRB_BOOT_KERNEL_NOT_FOUND`, `IRB_BOOT_KERNEL_INVALID`, `IRB_BOOT_KERNEL_ARCH_MISMATCH`,
 *   `IRB_BOOT_INITRAMFS_NOT_FOUND`, `IRB_BOOT_MODULES_MISMATCH`, `IRB_BOOT_NET_DRIVER_MISSING`,
 *   `IRB_BOOT_FORWARD_PORT_IN_USE`, `IRB_BOOT_QEMU_NOT_FOUND`, `IRB_OPTION_INVALID`; the signal's
 *   reason on abort.
 */
export async function bootInitramfs(options: BootOptions): Promise<BootResult> {
  const { signal } = options;
  signal?.throwIfAborted();
  const net = options.net === true ? {} : options.net || undefined;
  // Bad forwards are the caller's mistake: say so before anything is read.
  const asked: PortForward[] | undefined = net ? netForwards(net) : undefined;
  if (!(await readable(options.initramfs))) {
    throw new IrbError(
      'IRB_BOOT_INITRAMFS_NOT_FOUND',
      `initramfs ${options.initramfs} is not a readable file; build it first`,
    );
  }
  const archive =
    options.arch === 'auto' || net
      ? (options.initramfsInfo ?? (await inspectInitramfs(options.initramfs)))
      : undefined;
  let info = options.kernel !== undefined ? await kernelInfo(options.kernel) : undefined;
  const arch: BootArch =
    options.arch === 'auto' ? (archive?.arch ?? info?.arch ?? hostArch()) : (options.arch ?? hostArch());
  if (arch !== 'x86_64' && arch !== 'aarch64') {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `guest architecture "${String(arch)}" is unknown; use x86_64 or aarch64`,
    );
  }
  const kernel = options.kernel ?? (await findKernel({ arch }));
  info ??= await kernelInfo(kernel);
  if (info.arch !== undefined && info.arch !== arch) throw archMismatch(kernel, info, arch, archive);
  const release = info.release;
  if (archive && release !== undefined) checkModuleReleases(archive.modules, { path: kernel, release });

  const qemu = options.qemu ?? qemuBinary(arch);
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
  if (archive && net && release !== undefined) {
    await checkNetDriver(archive.modules, { path: kernel, release }, machine, options.kernelModules);
  }

  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    const forwards = asked ? await bindForwards(asked) : [];
    const args = qemuArguments({
      kernel,
      initramfs: options.initramfs,
      machine,
      accel,
      ...(options.memoryMb !== undefined ? { memoryMb: options.memoryMb } : {}),
      ...(options.cpus !== undefined ? { cpus: options.cpus } : {}),
      ...(options.append !== undefined ? { append: options.append } : {}),
      ...(net ? { net: { forwards, ...(net.ip === false ? { ip: false } : {}) } } : {}),
    });
    const command = [qemu, ...args];
    const timeoutMs = options.timeoutMs ?? 120_000;
    const run = await runQemu({
      qemu,
      args,
      arch,
      timeoutMs,
      stopOnMatch: options.stopOnMatch ?? true,
      ...(options.expect !== undefined ? { expect: options.expect } : {}),
      ...(signal ? { signal } : {}),
      ...(options.stopSignal ? { stopSignal: options.stopSignal } : {}),
      ...(options.onOutput ? { onOutput: options.onOutput } : {}),
      ...(options.input ? { input: options.input } : {}),
      onSpawn: (pid, startMs) => options.onStart?.({ pid, startMs, forwards, command }),
    });
    // QEMU binds the forwards at start: a picked port another process took in the meantime
    // fails it at once, and a new pick fixes that.
    const lost = run.output === '' ? HOSTFWD_FAILED.exec(run.stderr) : null;
    if (lost) {
      const port = Number(lost[1]);
      if (forwards.find((f) => f.hostPort === port)?.picked && attempt < PORT_RACE_ATTEMPTS) continue;
      throw portInUse(port);
    }
    const success = options.expect !== undefined ? run.matched : run.exitCode === 0 || run.stopped;
    const noDevice = parseNoNetDevice(run.output);
    return {
      ok: success && !run.panicked && !run.timedOut,
      matched: run.matched,
      panicked: run.panicked,
      exitCode: run.exitCode,
      timedOut: run.timedOut,
      stopped: run.stopped,
      timeoutMs,
      ...(run.firstOutputMs !== undefined ? { firstOutputMs: run.firstOutputMs } : {}),
      output: run.output,
      stderr: run.stderr,
      arch,
      machine,
      accel,
      kernel,
      ...(release !== undefined ? { kernelRelease: release } : {}),
      forwards,
      ...(noDevice
        ? { noNetDevice: { ...noDevice, message: noNetDeviceMessage(noDevice, machine, release) } }
        : {}),
      command,
      pid: run.pid,
    };
  }
}
