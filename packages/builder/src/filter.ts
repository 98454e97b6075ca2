import { readFile } from 'node:fs/promises';
import { IrbError } from '@irb/errors';
import { compileGlob, type PathFilterEntry } from '@irb/layers';
import { globMatches } from './init-choice.ts';
import { localesFromEnv, SLIM_PRESETS, type SlimPreset, slimRemoves } from './slim.ts';
import type { BootTrace } from './trace.ts';

/** The `keepOnly` trace files, read and merged once (in preflight). */
export interface KeepOnlySet {
  /** Every path the traces list, as exact bytes in a binary string (one char per byte), without the leading `/`. */
  keys: Set<string>;
  /**
   * Directories the run listed (their access time moved): their files, symlinks and devices stay
   * too, since a program that lists a directory usually goes on to stat names in it, and a stat
   * leaves no trace (Python's import system stats sources it does not read).
   */
  listed: Set<string>;
  /** The traces' images, for a warning when they differ from the image built. */
  manifestDigests: string[];
}

/** Paths a `keepOnly` build keeps although no trace lists them: build-time user resolution reads them. */
const ALWAYS_KEPT = ['etc/passwd', 'etc/group'];

function keyOfTracePath(path: string): string {
  const bytes = path.startsWith('hex:') ? Buffer.from(path.slice(4), 'hex') : Buffer.from(path, 'utf8');
  const rel = bytes[0] === 0x2f ? bytes.subarray(1) : bytes;
  return rel.toString('latin1');
}

/**
 * Reads and merges `keepOnly` trace files.
 *
 * @throws IrbError `IRB_INPUT_UNREADABLE` for a missing file, `IRB_OPTION_INVALID` for one that is
 *   not an irb trace.
 */
export async function readKeepOnly(files: readonly string[]): Promise<KeepOnlySet> {
  const keys = new Set<string>(ALWAYS_KEPT);
  const listed = new Set<string>();
  const manifestDigests: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new IrbError(
        'IRB_INPUT_UNREADABLE',
        `\`keepOnly\` ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}); give the path of a trace written by irb trace`,
        { cause: error },
      );
    }
    let trace: Partial<BootTrace>;
    try {
      trace = JSON.parse(text) as Partial<BootTrace>;
    } catch (error) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `\`keepOnly\` ${file} is not JSON; give a trace written by irb trace`,
        {
          cause: error,
        },
      );
    }
    if (trace.irbTrace !== 1 || !Array.isArray(trace.files)) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `\`keepOnly\` ${file} is not an irb trace (version 1); write one with irb trace`,
      );
    }
    for (const list of [trace.files, trace.directories, trace.symlinks, trace.other]) {
      for (const path of list ?? []) if (typeof path === 'string') keys.add(keyOfTracePath(path));
    }
    for (const path of trace.directories ?? [])
      if (typeof path === 'string') listed.add(keyOfTracePath(path));
    if (typeof trace.manifestDigest === 'string') manifestDigests.push(trace.manifestDigest);
  }
  return { keys, listed, manifestDigests };
}

/** What decides which of the image's paths stay: slim presets, a keepOnly set and its keep globs. */
export interface PathFilterInput {
  slim: readonly SlimPreset[];
  keepOnly?: KeepOnlySet;
  keep: readonly string[];
  /** The image's Env (for the `locales` preset). */
  env: readonly string[];
}

/** The `keep` filter for `indexLayers`, or `undefined` when nothing is filtered. */
export function pathFilter(input: PathFilterInput): ((entry: PathFilterEntry) => boolean) | undefined {
  const slim = SLIM_PRESETS.filter((p) => input.slim.includes(p));
  if (slim.length === 0 && !input.keepOnly) return undefined;
  const context = { locales: localesFromEnv(input.env) };
  const keepOnly = input.keepOnly;
  const globs = input.keep.map((pattern) => compileGlob(pattern));
  return (entry) => {
    if (slim.some((p) => slimRemoves(p, entry.path, entry.type === 'directory', context))) return false;
    if (!keepOnly) return true;
    const key = Buffer.from(entry.bytes).toString('latin1');
    if (keepOnly.keys.has(key)) return true;
    if (entry.type !== 'directory') {
      const slash = key.lastIndexOf('/');
      if (keepOnly.listed.has(slash < 0 ? '' : key.slice(0, slash))) return true;
    }
    return globs.some((glob) => globMatches(glob, key));
  };
}
