export {
  type ArchiveFile,
  type BootAccel,
  type BootArch,
  type BootMachine,
  type ElfHeaderInfo,
  elfArch,
  elfHeader,
  hostArch,
  INIT_HEAD_BYTES,
  initElfOf,
} from './arch.ts';
export {
  type ArchiveModule,
  createInitramfsInspector,
  type InitramfsInfo,
  type InitramfsInspector,
  type InspectedEntry,
  initramfsArch,
  initramfsInitElf,
  inspectInitramfs,
} from './archive.ts';
export { kernelCommandLine, qemuArguments, qemuBinary } from './command.ts';
export { bootProblem } from './diagnose.ts';
export {
  defaultKernelDirs,
  type FindKernelOptions,
  findKernel,
} from './kernel.ts';
export { inspectKernel, type KernelImageFormat, type KernelInfo, kernelImageFormat } from './kernel-image.ts';
export { chooseAccel, probeKvm } from './kvm.ts';
export {
  checkModuleReleases,
  checkNetDriver,
  kernelModulesDir,
  type ModuleCheckKernel,
} from './modules.ts';
export {
  type BootForward,
  type BootNetOptions,
  type NoNetDevice,
  netDevice,
  netDriverModules,
  type PortForward,
  parseForward,
  parseNoNetDevice,
  qemuNetArguments,
  USER_NET,
  USER_NET_IP_ARGUMENT,
} from './net.ts';
export {
  type ForwardProbeOptions,
  type ForwardProbeResult,
  HTTP_PROBE_REQUEST,
  probeForward,
} from './probe.ts';
export { type BootOptions, type BootResult, type BootStart, bootInitramfs } from './qemu.ts';
export {
  type BootTimeline,
  type BootTimelineOptions,
  type BootTimelineReport,
  bootTimeline,
  type ConsoleLine,
  FORWARD_PHASES,
  type ForwardPhase,
  parseBootTimeline,
  TIMELINE_PHASES,
  type TimelinePhase,
  type TimelineProbeOptions,
} from './timeline.ts';
