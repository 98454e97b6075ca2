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
