export {
  type BootForward,
  type BootNetOptions,
  type BootOptions,
  type BootResult,
  type BootTimeline,
  type BootTimelineOptions,
  type BootTimelineReport,
  bootProblem,
  chooseAccel,
  type FindKernelOptions,
  FORWARD_PHASES,
  type ForwardPhase,
  findKernel,
  kernelCommandLine,
  type PortForward,
  parseForward,
  TIMELINE_PHASES,
  type TimelinePhase,
  type TimelineProbeOptions,
} from '@irb/boot';
export { type ZstdBackend, zstdBackend } from '@irb/compress';
export { IrbError, isIrbError } from '@irb/errors';
export type { AuthScope, Credential, Keychain } from '@irb/registry';
export {
  type AnalyzeOptions,
  type ArchiveAnalysis,
  analyzeArchive,
  analyzeEntries,
  analyzeImage,
  type DuplicateGroup,
  type FileKind,
  fileKind,
  type SizeGroup,
} from './analyze.ts';
export {
  type AppendOverlayOptions,
  type AppendStream,
  type AppendSummary,
  appendOverlay,
  type BaseFormat,
  baseFormat,
} from './append.ts';
export {
  type ArchiveEntry,
  type ArchiveMeasure,
  bootInitramfs,
  bootTimeline,
  type ListArchiveOptions,
  listArchive,
  measureArchive,
} from './archive.ts';
export { type WriteFileAtomicOptions, writeFileAtomic } from './atomic.ts';
export {
  BUILD_FORMAT_VERSION,
  type BuildKeyInput,
  buildCacheTag,
  buildKey,
  buildKeyInput,
  canonicalJson,
  contentDigest,
  NEUTRAL_OPTIONS,
} from './build-key.ts';
export { defaultKeychains, InitramfsBuilder } from './builder.ts';
export * from './cache.ts';
export { withExtras } from './extras.ts';
export { type KeepOnlySet, type PathFilterInput, pathFilter, readKeepOnly } from './filter.ts';
export {
  type AttachedInitramfs,
  type FleetOptions,
  findInitramfs,
  IRB_VERSION,
  type PullInitramfsOptions,
  type PullInitramfsResult,
  type PushInitramfsOptions,
  type PushInitramfsResult,
  pullInitramfs,
  pushInitramfs,
} from './fleet.ts';
export {
  DEFAULT_PATH,
  type ExitAction,
  INIT_HELPER_PATH,
  type InitPlan,
  type InitRootfsView,
  type InitScriptParts,
  type PlanInitOptions,
  planInit,
  renderInitScript,
  renderRunSection,
  type UserSwitch,
} from './init.ts';
export { type ImageInspection, type InspectOptions, inspectImage, listLayers } from './inspect.ts';
export { type LoadKeychainModuleOptions, loadKeychainModule } from './keychain-module.ts';
export {
  BOOT_WORKING_BYTES,
  type GuestMemoryInput,
  KERNEL_OVERHEAD_BYTES,
  MEMORY_MARGIN,
  PAGE_SIZE,
  recommendGuestMemory,
  tmpfsFootprint,
} from './memory.ts';
export {
  buildWithRemoteCache,
  type CachedBuildResult,
  type RemoteCacheOptions,
} from './remote-cache.ts';
export { isShellName, shellJoin, shellQuote } from './shell.ts';
export {
  localesFromEnv,
  parseSlimPresets,
  SLIM_PRESET_INFO,
  SLIM_PRESETS,
  type SlimContext,
  type SlimPreset,
  type SlimPresetInfo,
  slimRemoves,
} from './slim.ts';
export { planStaticInit, type StaticInitPlan } from './static-init.ts';
export { type BootTrace, parseTraceOutput, type TraceOptions, traceImage } from './trace.ts';
export type * from './types.ts';
export {
  type GroupEntry,
  type PasswdEntry,
  parseGroup,
  parsePasswd,
  type ResolvedUser,
  resolveUser,
} from './user.ts';
