import { compileGlob, type PathFilterEntry } from '@irb/layers';
import { globMatches } from './init-choice.ts';
import { localesFromEnv, SLIM_PRESETS, type SlimPreset, slimRemoves } from './slim.ts';
import { readTraceFile } from './trace-file.ts';

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
    const trace = await readTraceFile(file, '`keepOnly`');
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
