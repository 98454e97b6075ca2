export { compareKernelVersions, defaultKernelDirs, type FindKernelOptions, findKernel } from './kernel.ts';
export {
  type BootAccel,
  type BootMachine,
  type BootOptions,
  type BootResult,
  bootInitramfs,
  kernelCommandLine,
  probeKvm,
  qemuArguments,
} from './qemu.ts';
