import { IrbError, isIrbError } from '@irb/errors';
import { initArchForPlatform } from '@irb/init';
import { compileGlob, type Glob } from '@irb/layers';
import type { ContainerConfig } from '@irb/registry';
import { type InitPlan, type InitRootfsView, planInit } from './init.ts';
import { archMismatch, type ExecutedProgram } from './program-arch.ts';
import { findProgram, planStaticInit, type StaticInitPlan } from './static-init.ts';
import type { InitramfsBuilderOptions } from './types.ts';

/** Where `/init` comes from, decided by {@link chooseInit}. */
export type InitChoice =
  | { source: 'image' }
  /** `hostPath` is the `init` file; absent when an `inject` already put a file at /init. */
  | { source: 'file'; hostPath?: string }
  | { source: 'generated'; kind: 'sh'; plan: InitPlan; warnings: string[] }
  | { source: 'generated'; kind: 'static'; plan: StaticInitPlan; warnings: string[] };

/** What an option changed in the image, so a missing piece can be blamed on the right option. */
export interface OptionEffects {
  /** `exclude` patterns as given, and how many paths they removed. */
  exclude: readonly string[];
  excluded: number;
  /** `inject` entries whose DEST already existed in the image, with its type there. */
  replaced: ReadonlyArray<{ spec: string; dest: string; was: string }>;
  /** `/bin/sh` as the image had it before `inject` (symlinks followed), if it had one. */
  shellBefore: { type: string; path: string } | undefined;
  /** `/bin` or `/bin/sh` is a symlink left pointing elsewhere (merged /usr, busybox links). */
  shellViaLink: boolean;
}

/** Inputs of {@link chooseInit}. */
export interface InitChoiceInput {
  options: Pick<
    InitramfsBuilderOptions,
    | 'init'
    | 'keepImageInit'
    | 'replaceImageInit'
    | 'hostname'
    | 'exitAction'
    | 'initKind'
    | 'trace'
    | 'allowArchMismatch'
    | 'keepOnly'
  >;
  /** The image's architecture (`amd64`, `arm64`, …), which picks the static init binary. */
  architecture: string;
  /** The image (before `inject`) has an `/init`. */
  imageHasInit: boolean;
  /** An `inject` entry puts a file at `/init`. */
  injectsInit: boolean;
  /** The rootfs as it will be packed (after `exclude` and `inject`). */
  view: InitRootfsView;
  config: ContainerConfig | undefined;
  effects: OptionEffects;
  /** What the generated init sets up before the program: module files to load (load order), the baked network (`ip=` value). */
  setup?: { modules?: readonly string[]; net?: string };
}

/**
 * Decides which `/init` the archive gets: the image's own (`keepImageInit`), a host file (`init`,
 * or an `inject` to /init), or the generated script (checked against the image by planInit). An
 * image that has its own /init is refused unless the options say which one to use.
 */
export async function chooseInit(input: InitChoiceInput): Promise<InitChoice> {
  const { options: o, imageHasInit, injectsInit } = input;
  if (imageHasInit && !o.replaceImageInit && !o.keepImageInit && o.init === undefined && !injectsInit) {
    throw new IrbError(
      'IRB_IMAGE_HAS_INIT',
      'the image has its own /init; set `keepImageInit` to boot it, `replaceImageInit` to replace it with the generated one, or `init` to a file',
    );
  }
  if (o.keepImageInit) {
    if (!imageHasInit) {
      throw new IrbError(
        'IRB_IMAGE_NO_INIT',
        '`keepImageInit` was set but the image has no /init; drop `keepImageInit`',
      );
    }
    return { source: 'image' };
  }
  if (o.init !== undefined) return { source: 'file', hostPath: o.init };
  if (injectsInit) return { source: 'file' };
  const setup = input.setup ?? {};
  const planOptions = {
    ...(o.hostname !== undefined ? { hostname: o.hostname } : {}),
    ...(o.exitAction !== undefined ? { exitAction: o.exitAction } : {}),
    ...(setup.modules?.length ? { modules: setup.modules } : {}),
    ...(setup.net !== undefined ? { net: setup.net } : {}),
  };
  const kind = o.initKind ?? 'auto';
  if (o.trace && (kind === 'sh' || initArchForPlatform(input.architecture) === undefined)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `\`trace\` needs irb's static init, which ${kind === 'sh' ? "`initKind: 'sh'` turns off" : `does not exist for ${input.architecture}`}`,
    );
  }
  if (kind === 'static' || (kind === 'auto' && initArchForPlatform(input.architecture) !== undefined)) {
    let plan: StaticInitPlan;
    try {
      plan = await planStaticInit(input.view, input.config, input.architecture, {
        ...planOptions,
        ...(o.trace ? { trace: o.trace } : {}),
      });
    } catch (error) {
      // passwd or group gone: when `exclude` removed paths, it may have taken them.
      if (isIrbError(error) && (error.code === 'IRB_USER_UNKNOWN' || error.code === 'IRB_GROUP_UNKNOWN')) {
        const blame = blameExclude(
          input.effects,
          error.message.replace(/;[^;]*$/, ''),
          '/etc/passwd or /etc/group',
        );
        if (blame) throw new IrbError('IRB_OPTION_INVALID', blame, { cause: error });
      }
      throw error;
    }
    const warnings: string[] = [];
    if (plan.program === undefined) {
      // Not an error: a later member (`irb append`) may bring the program. The boot would fail otherwise.
      const name = JSON.stringify(plan.run.argv[0]);
      const missing = `the image's command ${name} is not in the archive, so the program will not start`;
      warnings.push(
        blameExclude(input.effects, missing, 'it') ??
          blameInjectedDirectory(input.effects, missing) ??
          `${missing}; fix the image's Entrypoint/Cmd, or add the program with \`inject\``,
      );
    }
    const program =
      plan.program === undefined
        ? []
        : [{ role: 'command' as const, name: plan.run.argv[0] as string, path: plan.program }];
    await checkArch(input, program, warnings);
    return { source: 'generated', kind: 'static', plan, warnings };
  }
  const sh = await input.view.stat('/bin/sh');
  if (sh?.type !== 'file') {
    const blame = blameForMissingShell(input.effects);
    if (blame) throw new IrbError('IRB_OPTION_INVALID', blame);
    if (input.options.keepOnly?.length) {
      // A trace runs irb's static init, so it never lists the shell init's own tools.
      throw new IrbError(
        'IRB_OPTION_INVALID',
        "`keepOnly` left out /bin/sh, which the shell init (`initKind` sh) needs: a trace runs irb's static init, so it does not list the shell, mount, mkdir and the libraries they load; build with the static init (`initKind` auto or static), or keep them with `keep` globs",
      );
    }
  }
  const plan = await planInit(input.view, input.config, { ...planOptions, architecture: input.architecture });
  const warnings: string[] = [];
  // The kernel execs the script's shell first, then the shell execs the program.
  const program = await findProgram(input.view, plan);
  await checkArch(
    input,
    [
      { role: 'shell', name: '/bin/sh', path: '/bin/sh' },
      ...(program === undefined
        ? []
        : [{ role: 'command' as const, name: plan.argv[0] as string, path: program }]),
    ],
    warnings,
  );
  return { source: 'generated', kind: 'sh', plan, warnings };
}

/**
 * Whether the kernel can run what the generated init execs (see program-arch.ts): a mismatch is
 * `IRB_IMAGE_ARCH_MISMATCH`, or with `allowArchMismatch` a warning.
 */
async function checkArch(
  input: InitChoiceInput,
  programs: ExecutedProgram[],
  warnings: string[],
): Promise<void> {
  const mismatch = await archMismatch(input.view, programs, input.architecture);
  if (mismatch === undefined) return;
  if (input.options.allowArchMismatch) {
    warnings.push(`${mismatch}; built anyway, as \`allowArchMismatch\` is set`);
    return;
  }
  throw new IrbError(
    'IRB_IMAGE_ARCH_MISMATCH',
    `${mismatch}; build another \`platform\` of the image or fix the image, or set \`allowArchMismatch\` to build anyway`,
  );
}

/** What the image itself had at a few paths, before `inject` changes them (see {@link OptionEffects}). */
export async function optionEffectsBefore(
  base: {
    /** What the image has at a path (parent symlinks resolved, the last not followed). */
    lookup(path: string): { type: string } | undefined;
    /** Paths `exclude` removed. */
    excluded: number;
  },
  view: InitRootfsView,
  exclude: readonly string[],
  injects: ReadonlyArray<{ spec: string; dest: string }>,
): Promise<OptionEffects> {
  const replaced: Array<{ spec: string; dest: string; was: string }> = [];
  for (const i of injects) {
    const found = base.lookup(i.dest);
    if (found) replaced.push({ spec: i.spec, dest: absolute(i.dest), was: found.type });
  }
  return {
    exclude,
    excluded: base.excluded,
    replaced,
    shellBefore: await view.stat('/bin/sh'),
    shellViaLink: base.lookup('/bin')?.type === 'symlink' || base.lookup('/bin/sh')?.type === 'symlink',
  };
}

/**
 * The generated /init needs /bin/sh. When the image had one and an option took it away, the
 * message says which option did what instead of blaming the image.
 */
function blameForMissingShell(effects: OptionEffects): string | undefined {
  const needs = 'which the generated /init needs';
  if (effects.shellBefore?.type === 'file') {
    // The image had a shell and an inject replaced it or a directory on its way.
    const paths = ['/bin/sh', effects.shellBefore.path];
    for (const r of effects.replaced) {
      const hit = paths.find((p) => p === r.dest || p.startsWith(`${r.dest}/`));
      if (hit === undefined) continue;
      const what = r.was === 'directory' ? `the image's directory ${r.dest}` : r.dest;
      return (
        `\`inject\` ${r.spec} replaced ${what} with a file, and so /bin/sh, ${needs}; ` +
        `inject into a path below ${r.dest} instead, or set \`init\` to a static init program`
      );
    }
    return undefined;
  }
  if (effects.excluded === 0) return undefined;
  // The pattern removed /bin/sh or /bin itself, or what a remaining /bin or /bin/sh link points to.
  const direct = ['bin/sh', 'bin'];
  const linked = effects.shellViaLink ? ['usr/bin/sh', 'usr/bin', 'usr', 'bin/busybox'] : [];
  for (const pattern of effects.exclude) {
    if ([...direct, ...linked].some((p) => globMatches(pattern, p))) {
      return (
        `\`exclude\` pattern '${pattern}' removed /bin/sh (or what it links to), ${needs}; ` +
        'narrow the pattern, or set `init` to a static init program'
      );
    }
  }
  return undefined;
}

/** `what` went missing; when `exclude` removed paths, the message says it may have been that. */
function blameExclude(effects: OptionEffects, what: string, which: string): string | undefined {
  if (effects.excluded === 0 || effects.exclude.length === 0) return undefined;
  const patterns = effects.exclude.map((p) => `'${p}'`).join(', ');
  return `${what}: \`exclude\` (${patterns}) removed ${effects.excluded} paths, perhaps ${which}; narrow the patterns`;
}

/** `what` went missing; when an `inject` replaced a directory of the image with a file, say so. */
function blameInjectedDirectory(effects: OptionEffects, what: string): string | undefined {
  const replaced = effects.replaced.find((r) => r.was === 'directory');
  if (!replaced) return undefined;
  return `${what}: \`inject\` ${replaced.spec} replaced the image's directory ${replaced.dest} with a file; inject into a path below it instead`;
}

function absolute(path: string): string {
  return `/${path.replace(/^\/+|\/+$/g, '')}`;
}

/**
 * Whether an `exclude` glob covers a key (no leading `/`; the path's bytes one char each, as
 * @irb/layers keys are): the glob matches the key or one of its ancestors, since excluding a
 * directory takes everything below it. The rules are @irb/layers' own (`compileGlob`).
 */
export function globMatches(pattern: string | Glob, key: string): boolean {
  const glob = typeof pattern === 'string' ? compileGlob(pattern) : pattern;
  const components = key.split('/').filter((s) => s !== '');
  for (let n = components.length; n >= 1; n--) {
    if (glob.test(components.slice(0, n).join('/'))) return true;
  }
  return false;
}
