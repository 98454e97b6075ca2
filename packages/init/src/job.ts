import { IrbError } from '@irb/errors';
import type { DecodedInitConfig } from './config.ts';
import { joinFields, splitFields } from './fields.ts';

/**
 * Where per-job files go in the guest: irb's inits apply every `*.conf` file of this directory,
 * in byte order of the names, over the program of the archive (`irb append` adds one per job).
 */
export const JOB_CONFIG_DIR = '/irb/job.d';

/** The first field of every job file: names the format and its version. */
export const JOB_CONFIG_MAGIC = 'irb-job/1';

/**
 * Changes to the image's program, as `docker run` takes them. For `irb build` they are applied to
 * the image config before the init is planned ({@link applyRunOverrides}); `irb append` cannot
 * read the archive it extends, so it writes them as a job file ({@link encodeJobConfig}) that the
 * init applies at boot.
 */
export interface RunOverrides {
  /** `--entrypoint PATH`: replaces the Entrypoint and clears the Cmd (unless `cmd` is given too). */
  entrypoint?: string;
  /** `--cmd ARG`, repeatable: replaces the Cmd (the Entrypoint stays). */
  cmd?: readonly string[];
  /** `--env NAME=VALUE`, repeatable: adds the variable, or replaces the one of that name. */
  env?: readonly string[];
  /** `--workdir DIR`: the working directory (absolute). */
  workingDir?: string;
  /**
   * `--user UID[:GID]|NAME[:GROUP]`: the user, as an image's `User` is given. At build time it is
   * resolved through the image's /etc/passwd and /etc/group; in a job file, at boot, through the
   * guest's.
   */
  user?: string;
}

/** The fields of an image config that {@link RunOverrides} change. */
export interface ProgramConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[];
  WorkingDir?: string;
  User?: string;
}

const USER = /^([^:\s\0]+)(?::([^:\s\0]+))?$/;

/**
 * Checks overrides the way the init will read them.
 * @throws IrbError `IRB_OPTION_INVALID` (an empty entrypoint, a NUL byte), `IRB_ENV_INVALID`
 *   (not `NAME=VALUE`), `IRB_WORKDIR_INVALID` (relative), `IRB_USER_INVALID`.
 */
export function checkRunOverrides(overrides: RunOverrides): void {
  const nul = (flag: string, value: string): void => {
    if (value.includes('\0')) {
      throw new IrbError(
        flag === '--env' ? 'IRB_ENV_INVALID' : 'IRB_OPTION_INVALID',
        `${flag} ${JSON.stringify(value)} contains a NUL byte, which no program can receive; remove it`,
      );
    }
  };
  if (overrides.entrypoint !== undefined) {
    nul('--entrypoint', overrides.entrypoint);
    if (overrides.entrypoint === '') {
      throw new IrbError('IRB_OPTION_INVALID', '--entrypoint is empty; give the program to run');
    }
  }
  if (overrides.cmd !== undefined && overrides.cmd.length === 0) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      '--cmd has no words; give at least one, or leave the Cmd as it is',
    );
  }
  for (const word of overrides.cmd ?? []) nul('--cmd', word);
  for (const kv of overrides.env ?? []) {
    nul('--env', kv);
    if (kv.indexOf('=') <= 0) {
      throw new IrbError(
        'IRB_ENV_INVALID',
        `--env ${JSON.stringify(kv)} is not NAME=VALUE with a non-empty NAME; write --env NAME=VALUE`,
      );
    }
  }
  if (overrides.workingDir !== undefined) {
    nul('--workdir', overrides.workingDir);
    if (!overrides.workingDir.startsWith('/')) {
      throw new IrbError(
        'IRB_WORKDIR_INVALID',
        `--workdir ${JSON.stringify(overrides.workingDir)} is not absolute; give a path that starts with /`,
      );
    }
  }
  if (overrides.user !== undefined) {
    const m = USER.exec(overrides.user);
    const tooLarge = (part: string | undefined) =>
      part !== undefined && /^\d+$/.test(part) && Number(part) > 0xffff_ffff;
    if (!m || tooLarge(m[1]) || tooLarge(m[2])) {
      throw new IrbError(
        'IRB_USER_INVALID',
        `--user ${JSON.stringify(overrides.user)} is not UID[:GID] or NAME[:GROUP] (ids up to 4294967295); fix it`,
      );
    }
  }
}

/** Replaces or adds each `NAME=VALUE` of `add` in `env`, keeping the order of names already there. */
function overrideEnv(env: readonly string[], add: readonly string[]): string[] {
  const out = [...env];
  for (const kv of add) {
    const name = kv.slice(0, kv.indexOf('='));
    const at = out.findIndex((e) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e) === name);
    if (at >= 0) out[at] = kv;
    else out.push(kv);
  }
  return out;
}

/**
 * The image config with the overrides applied, as `docker run` applies them: `entrypoint`
 * replaces the Entrypoint and clears the Cmd, `cmd` replaces the Cmd, each `env` entry is added
 * or replaces the variable of its name (in place), `workingDir` and `user` replace theirs. The
 * other fields of `config` are kept.
 *
 * @throws IrbError what {@link checkRunOverrides} throws.
 */
export function applyRunOverrides<T extends ProgramConfig>(
  config: T | undefined,
  overrides: RunOverrides,
): T {
  checkRunOverrides(overrides);
  const out = { ...(config ?? {}) } as T;
  if (overrides.entrypoint !== undefined) {
    out.Entrypoint = [overrides.entrypoint];
    out.Cmd = [];
  }
  if (overrides.cmd !== undefined) out.Cmd = [...overrides.cmd];
  if (overrides.env !== undefined && overrides.env.length > 0)
    out.Env = overrideEnv(config?.Env ?? [], overrides.env);
  if (overrides.workingDir !== undefined) out.WorkingDir = overrides.workingDir;
  if (overrides.user !== undefined) out.User = overrides.user;
  return out;
}

/**
 * Encodes a job file (to be stored in {@link JOB_CONFIG_DIR}, e.g. at {@link jobConfigPath},
 * mode 0600, owned by root): NUL-terminated fields, {@link JOB_CONFIG_MAGIC} first, then `p` the
 * entrypoint, `c` one Cmd word each, `e` one `NAME=VALUE` each, `w` the working directory, `U`
 * the user; only what is set. Same overrides, same bytes.
 *
 * @throws IrbError what {@link checkRunOverrides} throws; `IRB_OPTION_INVALID` when larger than 1 MiB.
 */
export function encodeJobConfig(overrides: RunOverrides): Uint8Array {
  checkRunOverrides(overrides);
  const encoder = new TextEncoder();
  const fields: Array<[string, Uint8Array]> = [];
  if (overrides.entrypoint !== undefined) fields.push(['p', encoder.encode(overrides.entrypoint)]);
  for (const word of overrides.cmd ?? []) fields.push(['c', encoder.encode(word)]);
  for (const kv of overrides.env ?? []) fields.push(['e', encoder.encode(kv)]);
  if (overrides.workingDir !== undefined) fields.push(['w', encoder.encode(overrides.workingDir)]);
  if (overrides.user !== undefined) fields.push(['U', encoder.encode(overrides.user)]);
  return joinFields('the job file', JOB_CONFIG_MAGIC, fields);
}

/**
 * Reads a job file back, with the init's rules.
 * @throws IrbError `IRB_OPTION_INVALID` when the init would refuse it.
 */
export function decodeJobConfig(bytes: Uint8Array): RunOverrides {
  const bad = (why: string): IrbError =>
    new IrbError('IRB_OPTION_INVALID', `job file ${why}; write it with encodeJobConfig`);
  const text = (b: Uint8Array): string => new TextDecoder().decode(b);
  const out: { entrypoint?: string; cmd?: string[]; env?: string[]; workingDir?: string; user?: string } = {};
  const cmd: string[] = [];
  const env: string[] = [];
  for (const [tag, value] of splitFields(bytes, JOB_CONFIG_MAGIC, bad)) {
    if (tag === 'p') out.entrypoint = text(value);
    else if (tag === 'c') cmd.push(text(value));
    else if (tag === 'e') env.push(text(value));
    else if (tag === 'w') out.workingDir = text(value);
    else if (tag === 'U') out.user = text(value);
    else throw bad('has an unknown field');
  }
  if (cmd.length > 0) out.cmd = cmd;
  if (env.length > 0) out.env = env;
  try {
    checkRunOverrides(out);
  } catch (error) {
    throw bad(`has a value the init refuses (${(error as Error).message})`);
  }
  return out;
}

/**
 * The job file name for an append onto a BASE of `baseBytes` bytes: the size, zero-padded to 20
 * digits, so a later append (onto a larger archive) sorts after an earlier one and the same
 * append gives the same bytes.
 */
export function jobConfigPath(baseBytes: number): string {
  if (!Number.isSafeInteger(baseBytes) || baseBytes < 0) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `job file order ${baseBytes} is not a byte count; give BASE's size`,
    );
  }
  return `${JOB_CONFIG_DIR}/${String(baseBytes).padStart(20, '0')}.conf`;
}

/** What the init runs once the job files are applied (see {@link applyJobConfigs}). */
export interface EffectiveProgram {
  argv: string[];
  entrypointLength: number;
  env: string[];
  workingDir: string;
  /** The last job's `user`, which the init resolves at boot; `undefined`: the ids of init.conf. */
  user?: string;
  uid: number;
  gid: number;
  groups: number[];
}

/**
 * Applies job files (in order) to a decoded parameter file the way the init does: each file
 * changes only what it names; an entrypoint clears the Cmd (its own `cmd` words follow it), `cmd`
 * replaces the words after the Entrypoint, env entries replace the variable of their name or are
 * added, the last working directory and user win. HOME follows a job's user when `homeFromUser`
 * (resolved at boot, so it is left as it is here). Values are read as UTF-8.
 */
export function applyJobConfigs(base: DecodedInitConfig, jobs: readonly RunOverrides[]): EffectiveProgram {
  const text = (b: Uint8Array): string => new TextDecoder().decode(b);
  let argv = base.argv.map(text);
  let entrypointLength = base.entrypointLength;
  let env = base.env.map(text);
  let workingDir = text(base.workingDir);
  let user: string | undefined;
  for (const job of jobs) {
    if (job.entrypoint !== undefined) {
      argv = [job.entrypoint];
      entrypointLength = 1;
    } else if (job.cmd !== undefined) {
      argv = argv.slice(0, entrypointLength);
    }
    argv.push(...(job.cmd ?? []));
    env = overrideEnv(env, job.env ?? []);
    if (job.workingDir !== undefined) workingDir = job.workingDir;
    if (job.user !== undefined) user = job.user;
  }
  const out: EffectiveProgram = {
    argv,
    entrypointLength,
    env,
    workingDir,
    uid: base.uid,
    gid: base.gid,
    groups: [...base.groups],
  };
  if (user !== undefined) out.user = user;
  return out;
}
