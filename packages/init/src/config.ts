import { IrbError } from '@irb/errors';
import { FIELDS_MAX_BYTES, joinFields, splitFields } from './fields.ts';
import { NET_WAIT_MS_DEFAULT, type NetConfig, staticIpValue } from './net.ts';

/** Where the static init reads its parameters, inside the guest. */
export const INIT_CONFIG_PATH = '/irb/init.conf';

/** The first field of every parameter file: names the format and its version. */
export const INIT_CONFIG_MAGIC = 'irb-init/1';

/** The static init refuses a parameter file larger than this (it reads it into a fixed buffer). */
export const INIT_CONFIG_MAX_BYTES = FIELDS_MAX_BYTES;

/** At most this many argv words, env entries or supplementary groups (the init's fixed tables). */
export const INIT_CONFIG_MAX_ENTRIES = 65536;

/** Bytes as text (encoded as UTF-8) or as exact bytes: names and values may be in any encoding. */
export type InitBytes = string | Uint8Array;

/** How the VM ends when the program exits. */
export type InitExitAction = 'poweroff' | 'reboot';

/** What the static init runs and how: the parameters of one image. */
export interface StaticInitConfig {
  /** The program and its arguments (Entrypoint + Cmd); `argv[0]` without `/` is looked up in the env's PATH like execvp. */
  argv: readonly InitBytes[];
  /**
   * The program's environment, exactly: `NAME=value` entries in order, nothing added (the init's
   * own kernel-given HOME and TERM are dropped). Default `[]`. PATH for the lookup of `argv[0]` is
   * the first `PATH=` entry, else Docker's default PATH.
   */
  env?: readonly InitBytes[];
  /** Absolute working directory of the program. Default `/`. */
  workingDir?: InitBytes;
  /** Numeric user id the program runs as. Default 0. */
  uid?: number;
  /** Numeric group id the program runs as. Default 0. */
  gid?: number;
  /** Supplementary group ids, set exactly (an empty list clears them). Default `[]`. */
  groups?: readonly number[];
  /** The guest's hostname. Default `irb`. */
  hostname?: string;
  /** Power off (QEMU, Cloud Hypervisor) or reboot (Firecracker on x86) when the program exits. Default `poweroff`. */
  onExit?: InitExitAction;
  /**
   * After the program exits, list on the console every file, directory and symlink of the root
   * filesystem it used (read, executed, mapped or followed): the lines `irb-trace: <f|d|l|o> <hex
   * path>` between `irb-trace: begin` and `irb-trace: end <count>`. Default `false`.
   */
  trace?: boolean;
  /**
   * Stop the program after this many seconds: SIGTERM, then SIGKILL two seconds later (for
   * tracing a server, which does not exit by itself). Default: never.
   */
  stopAfterSeconds?: number;
  /**
   * Kernel module files to load before anything else (absolute archive paths, dependencies
   * first: the order is the load order). `.ko.xz`, `.ko.zst` and `.ko.gz` are handed to the
   * kernel compressed. Default: none.
   */
  modules?: readonly InitBytes[];
  /**
   * The network to configure when the kernel command line has no `ip=` (`ip=` wins): a
   * {@link NetConfig} (`--net`), or a static `ip=` value. Default: none.
   */
  net?: NetConfig | string;
  /** How long to wait for the network device to appear, in ms. Default 5000 (not written). */
  netWaitMs?: number;
  /**
   * How many leading `argv` words are the image's Entrypoint (the rest is its Cmd), so that a
   * job's `--cmd` replaces only the Cmd. Default 0: all of argv is Cmd.
   */
  entrypointLength?: number;
  /** HOME is the user's home directory (irb added it), so a job that changes the user changes HOME. */
  homeFromUser?: boolean;
}

/** A parameter file read back by {@link decodeInitConfig}: every default filled in, byte values as bytes. */
export interface DecodedInitConfig {
  argv: Uint8Array[];
  env: Uint8Array[];
  workingDir: Uint8Array;
  uid: number;
  gid: number;
  groups: number[];
  hostname: string;
  onExit: InitExitAction;
  trace: boolean;
  /** 0: never. */
  stopAfterSeconds: number;
  modules: Uint8Array[];
  /** The baked network, in `ip=` syntax. */
  net?: string;
  netWaitMs: number;
  entrypointLength: number;
  homeFromUser: boolean;
}

const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/;
const encoder = new TextEncoder();

function bytesOf(value: InitBytes): Uint8Array {
  return typeof value === 'string' ? encoder.encode(value) : value;
}

/** For messages only: a value shown readably, bytes that are not UTF-8 replaced. */
function show(value: Uint8Array): string {
  const text = new TextDecoder().decode(value);
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}

function checkId(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `static init ${what} ${String(value)} is not an integer from 0 to 4294967295; pass a numeric id`,
    );
  }
  return value;
}

function checkNoNul(what: string, value: Uint8Array): void {
  if (value.includes(0)) {
    throw new IrbError(
      what === 'env entry' ? 'IRB_ENV_INVALID' : 'IRB_OPTION_INVALID',
      `static init ${what} ${show(value)} contains a NUL byte, which no program can receive; remove it`,
    );
  }
}

/**
 * Encodes the static init's parameter file (to be stored at {@link INIT_CONFIG_PATH}, mode 0600,
 * owned by root). The format is a sequence of NUL-terminated fields: {@link INIT_CONFIG_MAGIC},
 * then one field per value, a tag byte followed by the value's bytes (any byte but NUL):
 * `a` argv word, `e` env entry, `w` working directory, `u` uid, `g` gid, `G` one supplementary
 * group (ids in decimal ASCII), `h` hostname, `x` exit action, `t` trace (`1`), `T` seconds
 * after which the program is stopped, `E` how many argv words are the Entrypoint, `H` HOME
 * follows the user (`1`), `m` one kernel module file, `n` the network (an `ip=` value), `N` ms
 * to wait for its device. The fields since `t` are written only when set, so a config that does
 * not use them has the bytes it had before they existed. Same config, same bytes.
 *
 * @throws IrbError `IRB_OPTION_INVALID` (empty argv, NUL bytes, bad ids, unknown exit action, too
 *   large, a module path that is not absolute), `IRB_ENV_INVALID` (an entry without `NAME=`),
 *   `IRB_WORKDIR_INVALID`, `IRB_HOSTNAME_INVALID`, `IRB_NET_INVALID` (a network that is not a
 *   static address).
 */
export function encodeInitConfig(config: StaticInitConfig): Uint8Array {
  const argv = (config.argv ?? []).map(bytesOf);
  if (argv.length === 0 || argv[0]?.length === 0) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      'static init argv is empty; give the program to run (Entrypoint + Cmd)',
    );
  }
  const env = (config.env ?? []).map(bytesOf);
  if (argv.length > INIT_CONFIG_MAX_ENTRIES || env.length > INIT_CONFIG_MAX_ENTRIES) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `static init argv or env has more than ${INIT_CONFIG_MAX_ENTRIES} entries; shorten it`,
    );
  }
  for (const word of argv) checkNoNul('argument', word);
  for (const kv of env) {
    checkNoNul('env entry', kv);
    const eq = kv.indexOf(0x3d);
    if (eq <= 0) {
      throw new IrbError(
        'IRB_ENV_INVALID',
        `static init env entry ${show(kv)} is not NAME=value with a non-empty NAME; fix the image config`,
      );
    }
  }
  const workingDir = bytesOf(config.workingDir ?? '/');
  checkNoNul('working directory', workingDir);
  if (workingDir[0] !== 0x2f) {
    throw new IrbError(
      'IRB_WORKDIR_INVALID',
      `static init working directory ${show(workingDir)} is not absolute; fix the image config`,
    );
  }
  const uid = checkId('uid', config.uid ?? 0);
  const gid = checkId('gid', config.gid ?? 0);
  const groups = (config.groups ?? []).map((g) => checkId('group', g));
  if (groups.length > INIT_CONFIG_MAX_ENTRIES) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `static init has more than ${INIT_CONFIG_MAX_ENTRIES} supplementary groups; drop some`,
    );
  }
  const hostname = config.hostname ?? 'irb';
  if (!HOSTNAME.test(hostname)) {
    throw new IrbError(
      'IRB_HOSTNAME_INVALID',
      `"${hostname}" is not a valid hostname; use letters, digits, . and - (at most 63 characters)`,
    );
  }
  const onExit = config.onExit ?? 'poweroff';
  if (onExit !== 'poweroff' && onExit !== 'reboot') {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `exit action "${String(onExit)}" is unknown; use poweroff or reboot`,
    );
  }

  const fields: Array<[string, Uint8Array]> = [];
  const field = (tag: string, value: Uint8Array): void => {
    fields.push([tag, value]);
  };
  for (const word of argv) field('a', word);
  for (const kv of env) field('e', kv);
  field('w', workingDir);
  field('u', encoder.encode(String(uid)));
  field('g', encoder.encode(String(gid)));
  for (const g of groups) field('G', encoder.encode(String(g)));
  field('h', encoder.encode(hostname));
  field('x', encoder.encode(onExit));
  // Only when on: a config without tracing has the same bytes as before tracing existed.
  if (config.trace) field('t', encoder.encode('1'));
  if (config.stopAfterSeconds !== undefined && config.stopAfterSeconds > 0) {
    field('T', encoder.encode(String(checkId('stopAfterSeconds', config.stopAfterSeconds))));
  }
  const entrypointLength = checkId('entrypointLength', config.entrypointLength ?? 0);
  if (entrypointLength > argv.length) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `static init entrypointLength ${entrypointLength} is more than the ${argv.length} argv words; give the Entrypoint's length`,
    );
  }
  if (entrypointLength > 0) field('E', encoder.encode(String(entrypointLength)));
  if (config.homeFromUser) field('H', encoder.encode('1'));
  for (const module of (config.modules ?? []).map(bytesOf)) {
    checkNoNul('module path', module);
    if (module[0] !== 0x2f) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `static init module path ${show(module)} is not absolute; give the module's path in the archive`,
      );
    }
    field('m', module);
  }
  if (config.net !== undefined) field('n', encoder.encode(staticIpValue(config.net)));
  if (config.netWaitMs !== undefined)
    field('N', encoder.encode(String(checkId('netWaitMs', config.netWaitMs))));

  return joinFields('the static init parameter file', INIT_CONFIG_MAGIC, fields);
}

/**
 * A decoded parameter file with every field at the init's default and no program (`argv`
 * empty): what a file that sets nothing else reads as, for tools that fill one in from
 * elsewhere (the builder reads its shell init back into this shape).
 */
export function initConfigDefaults(): DecodedInitConfig {
  return {
    argv: [],
    env: [],
    workingDir: encoder.encode('/'),
    uid: 0,
    gid: 0,
    groups: [],
    hostname: 'irb',
    onExit: 'poweroff',
    trace: false,
    stopAfterSeconds: 0,
    modules: [],
    netWaitMs: NET_WAIT_MS_DEFAULT,
    entrypointLength: 0,
    homeFromUser: false,
  };
}

/**
 * Reads a parameter file back, with the same rules as the static init itself (for tests, and for
 * tools that show what an archive will run).
 *
 * @throws IrbError `IRB_OPTION_INVALID` when the bytes are not a parameter file the init accepts.
 */
export function decodeInitConfig(bytes: Uint8Array): DecodedInitConfig {
  const bad = (why: string): IrbError =>
    new IrbError('IRB_OPTION_INVALID', `static init parameter file ${why}; rebuild it with encodeInitConfig`);
  const fields = splitFields(bytes, INIT_CONFIG_MAGIC, bad);
  const text = (b: Uint8Array): string => new TextDecoder().decode(b);
  const out = initConfigDefaults();
  const id = (b: Uint8Array): number => {
    const s = text(b);
    if (!/^\d+$/.test(s) || Number(s) > 0xffff_ffff) throw bad(`has a bad id ${show(b)}`);
    return Number(s);
  };
  for (const [tag, value] of fields) {
    switch (tag) {
      case 'a':
        out.argv.push(value);
        break;
      case 'e':
        out.env.push(value);
        break;
      case 'w':
        out.workingDir = value;
        break;
      case 'u':
        out.uid = id(value);
        break;
      case 'g':
        out.gid = id(value);
        break;
      case 'G':
        out.groups.push(id(value));
        break;
      case 'h':
        out.hostname = text(value);
        break;
      case 'x': {
        const action = text(value);
        if (action !== 'poweroff' && action !== 'reboot')
          throw bad(`has an unknown exit action ${show(value)}`);
        out.onExit = action;
        break;
      }
      case 't':
        out.trace = text(value) === '1';
        break;
      case 'T':
        out.stopAfterSeconds = id(value);
        break;
      case 'E':
        out.entrypointLength = id(value);
        break;
      case 'H':
        out.homeFromUser = text(value) === '1';
        break;
      case 'm':
        out.modules.push(value);
        break;
      case 'n':
        out.net = text(value);
        break;
      case 'N':
        out.netWaitMs = id(value);
        break;
      default:
        throw bad('has an unknown field');
    }
  }
  if (out.argv.length === 0) throw bad('has no program to run (no argv)');
  out.entrypointLength = Math.min(out.entrypointLength, out.argv.length);
  return out;
}
