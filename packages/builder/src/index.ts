export { type WriteFileAtomicOptions, writeFileAtomic } from './atomic.ts';
export {
  DEFAULT_PATH,
  type InitPlan,
  type InitRootfsView,
  type InitScriptParts,
  type PlanInitOptions,
  planInit,
  renderInitScript,
  renderRunSection,
  type UserSwitch,
} from './init.ts';
export {
  type GuestMemoryInput,
  KERNEL_OVERHEAD_BYTES,
  PAGE_SIZE,
  recommendGuestMemory,
  tmpfsFootprint,
} from './memory.ts';
export { isShellName, shellJoin, shellQuote } from './shell.ts';
export type * from './types.ts';
export {
  type GroupEntry,
  type PasswdEntry,
  parseGroup,
  parsePasswd,
  type ResolvedUser,
  resolveUser,
} from './user.ts';
