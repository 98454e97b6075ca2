export {
  type ClosureOptions,
  type ModuleClosure,
  type ModuleReason,
  type ModuleRequest,
  moduleClosure,
  type ResolvedRequest,
  resolveRequest,
} from './closure.ts';
export { type DebModuleSourceOptions, debDataTar, debModuleSource } from './deb.ts';
export { directoryModuleSource } from './directory.ts';
export { type ModuleEntriesOptions, moduleEntries } from './entries.ts';
export {
  type AliasLine,
  type ModulesDepLine,
  parseBuiltinModinfo,
  parseKernelConfig,
  parseModulesAlias,
  parseModulesBuiltin,
  parseModulesDep,
  parseModulesSoftdep,
  type SoftDeps,
} from './indexes.ts';
export { type ModuleInfo, modinfoRecords, readModinfo, releaseOfVermagic } from './modinfo.ts';
export {
  type DepmodFiles,
  type IndexedModule,
  indexFromDepmod,
  indexFromModinfo,
  type Lookup,
  lookupModule,
  type ModuleIndex,
} from './module-index.ts';
export {
  aliasMatches,
  type ModuleCompression,
  moduleFileOf,
  normalizeAlias,
  normalizeModuleName,
} from './names.ts';
export { MODULE_PRESETS, type ModulePreset, VIRTIO_TRANSPORTS } from './presets.ts';
export { DEFAULT_MODULES_PREFIX, resolveModules } from './resolve.ts';
export {
  canonicalSourcePath,
  type ModuleSource,
  type ModuleSourceBody,
  type ModuleSourceFile,
} from './source.ts';
export { type TarModuleSourceOptions, tarModuleSource } from './tar-source.ts';
export type { ResolvedModule, ResolvedModules, ResolveModulesOptions } from './types.ts';
