/**
 * `--slim`, `--keep-only` and `--keep`: what `irb build` (and `irb trace`, `--slim` only) leaves
 * out of the image. Parsing and help words live here.
 */
import { SLIM_PRESETS, type SlimPreset } from '@irb/builder/slim';
import { strings } from './options.ts';
import { didYouMean, UsageError } from './usage.ts';

/** The parseArgs table of the three flags. */
export const SLIM_FLAGS = {
  slim: { type: 'string', multiple: true },
  'keep-only': { type: 'string', multiple: true },
  keep: { type: 'string', multiple: true },
} as const;

/** What the three flags asked for. */
export interface SlimArgs {
  slim: SlimPreset[];
  keepOnly: string[];
  keep: string[];
}

/** `--slim docs,locales --slim caches` → the presets (`all` is every one), in the order given. */
export function parseSlim(values: readonly string[]): SlimPreset[] {
  const names = [...SLIM_PRESETS, 'all'];
  const out: SlimPreset[] = [];
  for (const value of values) {
    const parts = value.split(',').map((p) => p.trim());
    if (parts.every((p) => p === '')) {
      throw new UsageError(`--slim needs a preset: ${names.join(', ')}`);
    }
    for (const part of parts) {
      if (part === '') continue;
      const name = part.toLowerCase();
      if (name === 'all') {
        for (const p of SLIM_PRESETS) if (!out.includes(p)) out.push(p);
        continue;
      }
      if (!(SLIM_PRESETS as readonly string[]).includes(name)) {
        const guess = didYouMean(name, names);
        throw new UsageError(
          `unknown slim preset "${part}" (${guess ? `did you mean "${guess}"?` : `presets: ${names.join(', ')}`})`,
        );
      }
      if (!out.includes(name as SlimPreset)) out.push(name as SlimPreset);
    }
  }
  return out;
}

/** Reads the three flags from parseArgs values; `--keep` without `--keep-only` is a mistake. */
export function slimArgs(values: Record<string, unknown>): SlimArgs {
  const keepOnly = strings(values['keep-only']);
  const keep = strings(values.keep);
  if (keepOnly.some((f) => f === '')) throw new UsageError('--keep-only needs a trace file');
  if (keep.length > 0 && keepOnly.length === 0) {
    throw new UsageError(
      '--keep adds paths to what a trace keeps; give the trace with --keep-only TRACE.json (irb trace writes one), or leave paths out with --exclude',
    );
  }
  return { slim: parseSlim(strings(values.slim)), keepOnly, keep };
}

/**
 * One short line per preset for `--help` and `irb analyze` (SLIM_PRESET_INFO has the full words;
 * the README lists them). Typed by preset, so a new preset does not compile without its line.
 */
export const SLIM_SHORT: Readonly<Record<SlimPreset, string>> = {
  docs: '/usr/share/{doc,man,info} (copyright files stay)',
  locales: 'locales and translations but C, POSIX, C.UTF-8 and those Env names',
  caches: 'apt/apk/dnf lists and caches, pip/npm/yarn caches',
  devel: 'C headers, static libraries (*.a), pkg-config files',
};

/** The presets for `--help`, one indented line each. */
export function slimPresetLines(indent: string): string[] {
  const width = Math.max(...SLIM_PRESETS.map((p) => p.length));
  return SLIM_PRESETS.map((p) => `${indent}${p.padEnd(width)}  ${SLIM_SHORT[p]}`);
}
