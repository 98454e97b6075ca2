import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
// The list alone: the compressors themselves load when a member is compressed.
import { COMPRESSION_FORMATS } from '@irb/compress/types';
import { sourceDateEpoch } from '@irb/cpio/epoch';
import { IrbError } from '@irb/errors';
import type { RunOverrides } from '@irb/init';
import { parseInjectSpec } from '@irb/layers/inject-spec';
import { ensureCacheAreas } from '@irb/store';
import type { KeepOnlySet } from './filter.ts';
import { checkInitOptions } from './init-options.ts';
import { hasOverrides, modulesRequested, netValueOf, runOverridesOf } from './run-options.ts';
import { parseSlimPresets, type SlimPreset } from './slim.ts';
import type { InitramfsBuilderOptions, InitramfsCompression } from './types.ts';

/** One `inject` entry, parsed once. */
export interface InjectRequest {
  /** The option value as given (`SRC:DEST`), for messages. */
  spec: string;
  src: string;
  dest: string;
}

/** What {@link preflight} checked and derived from the options: everything later steps read. */
export interface Preflight {
  compression: InitramfsCompression;
  injects: InjectRequest[];
  /** `inject` has an entry whose DEST is `/init` (as explicit as `init`). */
  injectsInit: boolean;
  /** Mtime clamp: the option, else `$SOURCE_DATE_EPOCH`. */
  sourceDateEpoch: number | undefined;
  /** Slim presets, checked. */
  slim: SlimPreset[];
  /** The `keepOnly` traces, read and merged. */
  keepOnly?: KeepOnlySet;
  /** `entrypoint`, `cmd`, `env`, `workdir`, `user`, checked. */
  overrides: RunOverrides;
  /** `net` as the `ip=` value the init reads. */
  net?: string;
  /** `kernelModules` and `modules` ask for a modules member. */
  modules: boolean;
}

/**
 * Checks everything about the options that needs no download — compression, inject specs, host
 * files, the output location, the cache directories — so a typo fails in milliseconds, before the registry is asked.
 * `output` is the file `build()` writes; `stream()` has none.
 */
export async function preflight(o: InitramfsBuilderOptions, output?: string): Promise<Preflight> {
  o.signal?.throwIfAborted();
  const compression = o.compression ?? 'gzip';
  if (!(COMPRESSION_FORMATS as readonly string[]).includes(compression)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `\`compression\` "${String(compression)}" is unknown; use ${COMPRESSION_FORMATS.join(', ')}`,
    );
  }
  const injects = (o.inject ?? []).map((spec) => ({ spec, ...parseInjectSpec(spec) }));
  for (const i of injects) await requireHostPath(i.src, `\`inject\` ${i.spec}`);
  if (o.init !== undefined) await requireHostPath(o.init, `\`init\` ${o.init}`, true);
  let slim: SlimPreset[];
  try {
    slim = parseSlimPresets(o.slim ?? []);
  } catch (error) {
    throw new IrbError('IRB_OPTION_INVALID', `\`slim\`: ${(error as Error).message}`, { cause: error });
  }
  if (
    o.maxEntries !== undefined &&
    !(o.maxEntries === Infinity || (Number.isSafeInteger(o.maxEntries) && o.maxEntries > 0))
  ) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `\`maxEntries\` must be a positive whole number (or Infinity), not ${o.maxEntries}`,
    );
  }
  if (o.maxUnpackedBytes !== undefined && !(o.maxUnpackedBytes >= 0)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `\`maxUnpackedBytes\` must be a number of bytes (or Infinity), not ${o.maxUnpackedBytes}`,
    );
  }
  if (o.keep?.length && !o.keepOnly?.length) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      '`keep` globs only matter with `keepOnly`; add a trace, or use `exclude` to remove paths',
    );
  }
  // filter.ts (and with it the layer machinery) is loaded only for a build that has traces.
  const keepOnly = o.keepOnly?.length
    ? await (await import('./filter.ts')).readKeepOnly(o.keepOnly)
    : undefined;
  const injectsInit = injects.some((i) => i.dest.replace(/^\/+|\/+$/g, '') === 'init');
  // The other init rules were checked when the builder was made; this one needs the inject specs.
  checkInitOptions({ ...o, injectsInit });
  const overrides = runOverridesOf(o);
  const net = netValueOf(o);
  const modules = modulesRequested(o);
  const custom =
    o.init !== undefined
      ? 'init'
      : o.keepImageInit
        ? 'keepImageInit'
        : injectsInit
          ? 'inject /init'
          : undefined;
  if (custom !== undefined && (hasOverrides(overrides) || net !== undefined)) {
    const what =
      net !== undefined && !hasOverrides(overrides)
        ? '`net`'
        : 'the program overrides (`entrypoint`, `cmd`, `env`, `workdir`, `user`)';
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `${what} need the generated /init, and \`${custom}\` says not to generate one; keep only one of them`,
    );
  }
  if (output !== undefined) await checkOutput(output);
  // A cache directory that cannot be created fails here, naming `cacheDir`, not mid-download.
  if (o.cache !== false) await ensureCacheAreas(o.cacheDir);
  return {
    compression,
    injects,
    injectsInit,
    sourceDateEpoch: sourceDateEpoch(o.sourceDateEpoch),
    slim,
    ...(keepOnly ? { keepOnly } : {}),
    overrides,
    ...(net !== undefined ? { net } : {}),
    modules,
  };
}

async function requireHostPath(path: string, what: string, file = false): Promise<void> {
  try {
    const st = await stat(path);
    if (file && !st.isFile()) {
      throw new IrbError(
        'IRB_INPUT_UNREADABLE',
        `${what}: ${path} is not a regular file; give the path of a file`,
      );
    }
  } catch (error) {
    if (error instanceof IrbError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new IrbError(
      'IRB_INPUT_UNREADABLE',
      `${what}: ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}; check the path`,
      { cause: error },
    );
  }
}

const REASONS: Record<string, string> = {
  ENOENT: 'the directory does not exist',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the filesystem is read-only',
  ENOTDIR: 'a parent is not a directory',
};

/**
 * Fails before any download when the output cannot be written. A device, FIFO or socket is
 * written in place (see writeFileAtomic), so only it must be writable; a regular file or a new
 * name is replaced by rename, so its directory must be writable.
 */
async function checkOutput(output: string): Promise<void> {
  let reason: string | undefined;
  const existing = await stat(output).catch(() => undefined);
  if (existing?.isDirectory()) reason = 'it is a directory';
  else if (existing && !existing.isFile()) {
    try {
      await access(output, constants.W_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      reason = code === 'ENOENT' ? 'it vanished' : (REASONS[code] ?? code);
    }
  } else {
    const dir = dirname(resolve(output));
    try {
      const st = await stat(dir);
      if (!st.isDirectory()) reason = 'a parent is not a directory';
      else await access(dir, constants.W_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      reason = REASONS[code] ?? code;
    }
  }
  if (reason !== undefined) {
    throw new IrbError(
      'IRB_OUTPUT_FAILED',
      `cannot write the output ${output} (${reason}); choose a writable \`output\``,
    );
  }
}
