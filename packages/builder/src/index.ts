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
  analyzeImage,
  type DuplicateGroup,
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
export {
  type ArchiveConfig,
  type ArchiveConfigOptions,
  type ArchiveJob,
  archiveConfig,
  decodeInitScript,
} from './archive-config.ts';
export { type WriteFileAtomicOptions, writeFileAtomic } from './atomic.ts';
export {
  type BuildKeyInput,
  buildCacheTag,
  buildKey,
  buildKeyInput,
} from './build-key.ts';
export { InitramfsBuilder } from './builder.ts';
export * from './cache.ts';
export { type KeepOnlySet, readKeepOnly } from './filter.ts';
export {
  type FleetOptions,
  IRB_VERSION,
  type PushInitramfsOptions,
  type PushInitramfsResult,
  pushInitramfs,
} from './fleet.ts';
export {
  type AttachedInitramfs,
  findInitramfs,
  type PullInitramfsOptions,
  type PullInitramfsResult,
  pullInitramfs,
} from './fleet-pull.ts';
export type { ExitAction } from './init.ts';
export { type ImageInspection, type InspectOptions, inspectImage, listLayers } from './inspect.ts';
export { type LoadKeychainModuleOptions, loadKeychainModule } from './keychain-module.ts';
export { type GuestMemoryInput, recommendGuestMemory } from './memory.ts';
export {
  buildWithRemoteCache,
  type CachedBuildResult,
  type RemoteCacheOptions,
} from './remote-cache.ts';
export type { RunOptions } from './run-options.ts';
export {
  parseSlimPresets,
  SLIM_PRESET_INFO,
  SLIM_PRESETS,
  type SlimContext,
  type SlimPreset,
  type SlimPresetInfo,
  slimRemoves,
} from './slim.ts';
export { defaultKeychains } from './source-options.ts';
export { type BootTrace, parseTraceOutput, type TraceOptions, traceImage, traceOfRun } from './trace.ts';
export type * from './types.ts';
export { BUILD_FORMAT_VERSION } from './version.ts';
