import { IrbError } from '@irb/errors';
import {
  encodeInitConfig,
  INIT_CONFIG_PATH,
  type InitArch,
  initArchForPlatform,
  staticInitBinary,
} from '@irb/init';
import type { ContainerConfig } from '@irb/registry';
import { type ExitAction, type InitRootfsView, type PlanInitOptions, planRun, type RunPlan } from './init.ts';

/** The generated init as irb's static program: what goes into the archive. */
export interface StaticInitPlan {
  /** The architecture of the binary. */
  arch: InitArch;
  /** `/init`: the static binary (the same bytes for every image of that architecture). */
  binary: Uint8Array;
  /** Where its parameter file goes (`/irb/init.conf`) and its bytes. */
  configPath: string;
  config: Uint8Array;
  /** What it runs. */
  run: RunPlan;
  /** Where the init will find the program in the image, or `undefined` when it is not there (yet: an overlay may bring it). */
  program: string | undefined;
  /** Directories the image lacks that the init needs (WorkingDir and its parents, mount points). */
  directories: string[];
}

/**
 * The environment as the static init passes it: each name once, at its first place, with its
 * last value (what `docker run` does with a repeated name); the init takes PATH from the first
 * `PATH=` entry, so a later override must not be left behind it.
 */
export function dedupeEnv(env: readonly string[]): string[] {
  const order: string[] = [];
  const values = new Map<string, string>();
  for (const kv of env) {
    const eq = kv.indexOf('=');
    const name = eq < 0 ? kv : kv.slice(0, eq);
    if (!values.has(name)) order.push(name);
    values.set(name, kv);
  }
  return order.map((name) => values.get(name) as string);
}

/** Absolute `path` joined onto `base` and normalized (no `.`/`..`). */
function resolveIn(base: string, path: string): string {
  const parts: string[] = [];
  for (const part of `${path.startsWith('/') ? '' : base}/${path}`.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}

/**
 * Where the init will find `argv[0]`: the path itself when it has a `/` (relative to WorkingDir),
 * else the first regular file of that name along the environment's PATH (as execvp looks).
 */
export async function findProgram(
  view: InitRootfsView,
  run: Pick<RunPlan, 'argv' | 'env' | 'workingDir'>,
): Promise<string | undefined> {
  const name = run.argv[0] as string;
  if (name.includes('/')) {
    const path = resolveIn(run.workingDir, name);
    return (await view.stat(path))?.type === 'file' ? path : undefined;
  }
  const pathVar = run.env.find((kv) => kv.startsWith('PATH='))?.slice(5) ?? '';
  for (const dir of pathVar.split(':')) {
    const candidate = resolveIn(run.workingDir, `${dir || '.'}/${name}`);
    if ((await view.stat(candidate))?.type === 'file') return candidate;
  }
  return undefined;
}

/**
 * Plans irb's static init for an image: resolves what to run (see planRun), checks that the
 * program is in the image, and encodes the parameter file. The image needs no shell, no mount and
 * no user-switch tool: the init does all of it with system calls.
 *
 * @throws IrbError `IRB_OPTION_INVALID` when irb has no init binary for the architecture; what
 *   {@link planRun} throws.
 */
export async function planStaticInit(
  view: InitRootfsView,
  config: ContainerConfig | undefined,
  architecture: string,
  options: PlanInitOptions & { exitAction?: ExitAction; trace?: boolean | { stopAfterSeconds: number } } = {},
): Promise<StaticInitPlan> {
  const arch = initArchForPlatform(architecture);
  if (!arch) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `irb's static init exists for x86_64 and aarch64, not for ${architecture}; set \`initKind\` to 'sh' or \`init\` to your own init program`,
    );
  }
  const run = await planRun(view, config, options);
  const env = dedupeEnv(run.env);
  const program = await findProgram(view, { ...run, env });
  const encoded = encodeInitConfig({
    argv: run.argv,
    env,
    workingDir: run.workingDir,
    uid: run.user.uid,
    gid: run.user.gid,
    groups: run.user.groups,
    hostname: run.hostname,
    onExit: options.exitAction ?? 'poweroff',
    entrypointLength: run.entrypointLength,
    homeFromUser: run.homeFromUser,
    ...(options.trace ? { trace: true } : {}),
    ...(typeof options.trace === 'object' ? { stopAfterSeconds: options.trace.stopAfterSeconds } : {}),
  });
  return {
    arch,
    binary: staticInitBinary(arch),
    configPath: INIT_CONFIG_PATH,
    config: encoded,
    run: { ...run, env },
    program,
    directories: run.directories,
  };
}
