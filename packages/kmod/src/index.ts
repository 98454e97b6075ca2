export type { ModuleReason, ResolvedRequest } from './closure.ts';
export { type DebModuleSourceOptions, debModuleSource } from './deb.ts';
export { directoryModuleSource } from './directory.ts';
export { type ModuleEntriesOptions, moduleEntries } from './entries.ts';
export type { ModuleCompression } from './names.ts';
export { MODULE_PRESETS, type ModulePreset } from './presets.ts';
export { DEFAULT_MODULES_PREFIX, resolveModules } from './resolve.ts';
export {
  canonicalSourcePath,
  type ModuleSource,
  type ModuleSourceBody,
  type ModuleSourceFile,
} from './source.ts';
export { type TarModuleSourceOptions, tarModuleSource } from './tar-source.ts';
export type { ResolvedModule, ResolvedModules, ResolveModulesOptions } from './types.ts';
