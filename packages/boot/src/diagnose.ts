import type { BootResult } from './qemu.ts';

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/**
 * One line on what went wrong in a boot that its console alone does not say, or `undefined`:
 * - the timeout passed before the kernel printed anything: the timeout, not the kernel, ended it
 *   (under TCG, firmware and kernel take seconds before the first line);
 * - QEMU exited by itself with the console empty: QEMU's own error, or a kernel that never
 *   reached its console;
 * - the guest's init found no network device: the kernel modules the archive lacks.
 *
 * Memory is not judged here: a guest given too little memory can stay silent too, and only the
 * caller knows what the archive needs.
 */
export function bootProblem(result: BootResult): string | undefined {
  const silent = result.output.trim() === '';
  const kernel = `${result.kernel}${result.kernelRelease ? ` (${result.kernelRelease})` : ''}`;
  if (silent && result.timedOut) {
    const emulated = result.accel === 'tcg' ? ' under TCG, which emulates the CPU' : '';
    return `the timeout (${seconds(result.timeoutMs)}) passed with nothing on the console yet: the kernel had not printed its first line, and booting${emulated} takes longer than that here; raise the timeout`;
  }
  if (silent && !result.stopped) {
    const stderr = result.stderr.trim().split('\n')[0];
    if (result.exitCode !== 0 && stderr) return `QEMU exited with status ${result.exitCode}: ${stderr}`;
    return `the kernel printed nothing on the console before QEMU exited; check that ${kernel} is built for ${result.arch} with a serial console`;
  }
  return result.noNetDevice?.message;
}
