import { IrbError } from '@irb/errors';
import type { InitramfsBuilderOptions } from './types.ts';

/** The options that decide where `/init` comes from, and `injectsInit`: an `inject` entry targets /init. */
export type InitOptions = Pick<InitramfsBuilderOptions, 'init' | 'keepImageInit' | 'initKind' | 'trace'> & {
  injectsInit?: boolean;
};

/** The init kinds `initKind` accepts. */
export const INIT_KINDS = ['auto', 'static', 'sh'] as const;

/**
 * A rule of the init options that `options` break: `option` cannot stand beside `conflictsWith`
 * (which says not to generate an /init, or gives one), or `initKind` has an unknown `value`.
 * A CLI words it in its flags; {@link checkInitOptions} in the library's option names.
 */
export type InitOptionsConflict =
  | { option: 'initKind'; value: string; conflictsWith?: undefined }
  | { option: 'init' | 'initKind' | 'trace' | 'inject'; conflictsWith: 'init' | 'keepImageInit' };

/**
 * The rules of the init options, in one place: `init` and `keepImageInit` exclude each other;
 * `initKind` is auto, static or sh, and a kind other than auto chooses the generated /init, which
 * `init` and `keepImageInit` turn off, as they do for `trace` and an `inject` to /init. The first
 * rule broken, or `undefined`.
 */
export function initOptionsConflict(o: InitOptions): InitOptionsConflict | undefined {
  const against = o.init !== undefined ? 'init' : o.keepImageInit ? 'keepImageInit' : undefined;
  if (o.init !== undefined && o.keepImageInit) return { option: 'init', conflictsWith: 'keepImageInit' };
  const kind = o.initKind ?? 'auto';
  if (!(INIT_KINDS as readonly string[]).includes(kind)) return { option: 'initKind', value: String(kind) };
  if (against === undefined) return undefined;
  if (kind !== 'auto') return { option: 'initKind', conflictsWith: against };
  if (o.trace) return { option: 'trace', conflictsWith: against };
  if (o.injectsInit) return { option: 'inject', conflictsWith: against };
  return undefined;
}

/** Throws `IRB_OPTION_INVALID` for the first rule of {@link initOptionsConflict} that `o` breaks. */
export function checkInitOptions(o: InitOptions): void {
  const conflict = initOptionsConflict(o);
  if (conflict === undefined) return;
  const against = conflict.conflictsWith;
  let message: string;
  if (against === undefined) {
    message = `\`initKind\` "${conflict.value}" is unknown; use ${INIT_KINDS.join(', ').replace(/, (?=[^,]*$)/, ' or ')}`;
  } else if (conflict.option === 'init') {
    message = '`init` and `keepImageInit` exclude each other; set one of them';
  } else if (conflict.option === 'initKind') {
    message = `\`initKind\` chooses the generated /init, and \`${against}\` says not to generate one; keep only one of them`;
  } else if (conflict.option === 'trace') {
    message = `\`trace\` needs irb's static init, and \`${against}\` says not to generate one; keep only one of them`;
  } else {
    message = `\`inject\` targets /init and \`${against}\` says otherwise; keep only one of them`;
  }
  throw new IrbError('IRB_OPTION_INVALID', message);
}
