export { type BootArch, elfArch, hostArch, initramfsArch } from './arch.ts';
export {
  compareKernelVersions,
  defaultKernelDirs,
  type FindKernelOptions,
  findKernel,
  type KernelImageFormat,
  kernelImageFormat,
} from './kernel.ts';
export {
  type BootAccel,
  type BootMachine,
  type BootOptions,
  type BootResult,
  bootInitramfs,
  chooseAccel,
  kernelCommandLine,
  probeKvm,
  qemuArguments,
  qemuBinary,
} from './qemu.ts';
export {
  type BootTimeline,
  type BootTimelineOptions,
  type BootTimelineReport,
  bootTimeline,
  type ConsoleLine,
  parseBootTimeline,
  TIMELINE_PHASES,
  type TimelinePhase,
} from './timeline.ts';
