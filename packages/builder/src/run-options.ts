import { IrbError } from '@irb/errors';
import {
  checkRunOverrides,
  formatKernelIp,
  type NetConfig,
  parseNetOption,
  type RunOverrides,
} from '@irb/init';

/** The options of a build or append that change how the program runs, `docker run` style. */
export interface RunOptions {
  /** Replaces the image's Entrypoint and clears its Cmd (`--entrypoint`). */
  entrypoint?: string;
  /** Replaces the image's Cmd (`--cmd`, repeatable); with `entrypoint`, its arguments. */
  cmd?: readonly string[];
  /** `NAME=VALUE` entries that add or replace variables of the image's Env (`--env`). */
  env?: readonly string[];
  /** The working directory, absolute (`--workdir`). */
  workdir?: string;
  /** `UID[:GID]` or `NAME[:GROUP]` (`--user`). */
  user?: string;
  /**
   * The guest network the generated `/init` configures when the kernel command line has no
   * `ip=` (`ip=` wins): `CIDR[,gw=IP][,dns=IP][,dns=IP][,dev=NAME]` (`--net`) or a `NetConfig`.
   */
  net?: string | NetConfig;
}

/** The overrides of `o`, checked the way the init reads them (one line naming the flag). */
export function runOverridesOf(o: RunOptions): RunOverrides {
  const out: RunOverrides = {
    ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint } : {}),
    ...(o.cmd !== undefined ? { cmd: [...o.cmd] } : {}),
    ...(o.env !== undefined && o.env.length > 0 ? { env: [...o.env] } : {}),
    ...(o.workdir !== undefined ? { workingDir: o.workdir } : {}),
    ...(o.user !== undefined ? { user: o.user } : {}),
  };
  checkRunOverrides(out);
  return out;
}

/** Whether any override is set. */
export function hasOverrides(overrides: RunOverrides): boolean {
  return Object.keys(overrides).length > 0;
}

/**
 * The network of `o` as the `ip=` value the init reads (`10.0.2.15::10.0.2.2:255.255.255.0:::off`),
 * or `undefined`. The same network always gives the same text, whatever the spelling.
 *
 * @throws IrbError `IRB_NET_INVALID` in one line that shows the syntax.
 */
export function netValueOf(o: Pick<RunOptions, 'net'>): string | undefined {
  if (o.net === undefined) return undefined;
  if (typeof o.net === 'string') return formatKernelIp(parseNetOption(o.net));
  if (typeof o.net !== 'object' || o.net === null) {
    throw new IrbError('IRB_NET_INVALID', '`net` is neither CIDR[,gw=IP][,dns=IP] nor a NetConfig');
  }
  return formatKernelIp(o.net);
}

/**
 * Whether the options ask for kernel modules, checking that `kernelModules` and `modules` come
 * together (`IRB_OPTION_INVALID` in one line otherwise).
 */
export function modulesRequested(o: {
  kernelModules?: string | undefined;
  modules?: readonly string[] | undefined;
}): boolean {
  const listed = (o.modules ?? []).some((m) => m.trim() !== '');
  if (o.kernelModules === undefined && !listed) {
    if (o.modules !== undefined && o.modules.length > 0) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        '`modules` is empty; name modules or presets (net, vsock, console, blk, fs)',
      );
    }
    return false;
  }
  if (o.kernelModules === undefined) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      "`modules` needs `kernelModules`: the kernel's /lib/modules/<release> directory, its .deb, or an image that holds them",
    );
  }
  if (!listed) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      '`kernelModules` is set but `modules` names nothing to load; name modules or presets (net, vsock, console, blk, fs)',
    );
  }
  return true;
}

/**
 * Checks what a build or an append will check of these options, without reading anything: the
 * overrides, the network's syntax, `kernelModules` and `modules` together. For a command line's
 * parse step (`@irb/builder/run-options` loads only `@irb/init`'s parsers).
 *
 * @throws IrbError as {@link runOverridesOf}, {@link netValueOf} and {@link modulesRequested}.
 */
export function checkRunOptions(
  o: RunOptions & { kernelModules?: string | undefined; modules?: readonly string[] | undefined },
): void {
  runOverridesOf(o);
  netValueOf(o);
  modulesRequested(o);
}
