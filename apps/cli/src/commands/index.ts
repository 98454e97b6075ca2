import type { Command } from '../kit/command.ts';

/**
 * The commands, in `irb --help` order. Each module is imported when its command runs (all of
 * them only for `irb --help`), so start-up costs what the command itself needs.
 */
export const COMMANDS = {
  build: () => import('./build.ts'),
  append: () => import('./append.ts'),
  inspect: () => import('./inspect.ts'),
  'list-layers': () => import('./list-layers.ts'),
  ls: () => import('./ls.ts'),
  analyze: () => import('./analyze.ts'),
  boot: () => import('./boot.ts'),
  trace: () => import('./trace.ts'),
  cache: () => import('./cache.ts'),
  push: () => import('./push.ts'),
  pull: () => import('./pull.ts'),
} satisfies Record<string, () => Promise<Command>>;

/** The command names, in help order. */
export const COMMAND_NAMES = Object.keys(COMMANDS) as ReadonlyArray<keyof typeof COMMANDS>;

/** Loads the command `name`, or `undefined` when irb has no such command. */
export function loadCommand(name: string): Promise<Command> | undefined {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name as keyof typeof COMMANDS]() : undefined;
}
