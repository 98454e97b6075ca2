import type { BootAccel, BootArch, BootMachine } from './arch.ts';
import { qemuNetArguments, USER_NET_IP_ARGUMENT } from './net.ts';

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
  /** User networking with these forwards (see {@link qemuNetArguments}), and `ip=` for it unless `append` has one or `ip` is false. */
  net?: { forwards: readonly { hostPort: number; guestPort: number }[]; ip?: boolean };
}): string[] {
  const { machine, accel, net } = options;
  const append = options.append ?? [];
  const ip =
    net && net.ip !== false && !append.some((a) => a.startsWith('ip=')) ? [USER_NET_IP_ARGUMENT] : [];
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
    ...(net ? qemuNetArguments(machine, net.forwards) : []),
    '-kernel',
    options.kernel,
    '-initrd',
    options.initramfs,
    '-append',
    kernelCommandLine(machine, [...ip, ...append]),
  ];
}
