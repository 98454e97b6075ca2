export {
  INIT_ARCHES,
  type InitArch,
  initArchForPlatform,
  staticInitBinary,
  staticInitPath,
} from './binary.ts';
export {
  type DecodedInitConfig,
  decodeInitConfig,
  encodeInitConfig,
  INIT_CONFIG_MAGIC,
  INIT_CONFIG_MAX_BYTES,
  INIT_CONFIG_MAX_ENTRIES,
  INIT_CONFIG_PATH,
  type InitBytes,
  type InitExitAction,
  type StaticInitConfig,
} from './config.ts';
export {
  applyJobConfigs,
  applyRunOverrides,
  checkRunOverrides,
  decodeJobConfig,
  type EffectiveProgram,
  encodeJobConfig,
  JOB_CONFIG_DIR,
  JOB_CONFIG_MAGIC,
  jobConfigPath,
  type ProgramConfig,
  type RunOverrides,
} from './job.ts';
export {
  formatKernelIp,
  type KernelIpConfig,
  type KernelIpProblem,
  NET_WAIT_MS_DEFAULT,
  type NetConfig,
  parseKernelIp,
  parseNetOption,
  readKernelIp,
  staticIpValue,
} from './net.ts';
