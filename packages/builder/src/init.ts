import type { CpioEntryType } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import {
  type InitArch,
  initArchForPlatform,
  JOB_CONFIG_DIR,
  type NetConfig,
  staticInitBinary,
  staticIpValue,
} from '@irb/init';
import type { ContainerConfig } from '@irb/registry';
import { isShellName, shellJoin, shellQuote } from './shell.ts';
import { parseGroup, parsePasswd, type ResolvedUser, resolveUser } from './user.ts';

/** What init planning needs to know about the image's root filesystem. */
export interface InitRootfsView {
  /** Follows symlinks inside the rootfs; `path` is the final, absolute path. `undefined` when missing or dangling. */
  stat(path: string): Promise<{ type: CpioEntryType; path: string } | undefined>;
  /** The text of a regular file (following symlinks), or `undefined` when missing. */
  readText(path: string): Promise<string | undefined>;
  /**
   * Up to `length` first bytes of a regular file (following symlinks; `path` as {@link stat}
   * returns it), or `undefined` when missing or not known. Without it, the architecture of the
   * image's program is not checked.
   */
  readHead?(path: string, length: number): Promise<Uint8Array | undefined>;
}

/** Options for {@link planInit}. */
export interface PlanInitOptions {
  /** Hostname the guest gets. Default `irb`. */
  hostname?: string;
  /** Image name for the script's header comment (never a credential). Default: none, so the
   * script, and the archive, do not depend on where the same image was read from. */
  imageName?: string;
  /**
   * How the VM ends when the program exits. Default `poweroff` (QEMU, Cloud Hypervisor);
   * `reboot` for VMMs that end the VM on a guest reboot but ignore power-off (Firecracker on x86).
   */
  exitAction?: ExitAction;
  /**
   * The image's architecture (OCI `amd64`, `arm64`, …). Where irb has its static init for it
   * (x86_64, aarch64), the archive also carries that binary at `/irb/init` as the script's
   * helper: it loads kernel modules, configures the network from `ip=`, applies the job files of
   * /irb/job.d and switches to the user (so the image needs no setpriv or su-exec). Default: none,
   * a script without the helper (as for other architectures).
   */
  architecture?: string;
  /** Kernel module files to load first (absolute archive paths, in load order). Needs the helper. */
  modules?: readonly string[];
  /** The network to configure when the kernel command line has no `ip=`. Needs the helper. */
  net?: NetConfig | string;
  /** How long the helper waits for the network device, in ms. Default 5000. */
  netWaitMs?: number;
}

/** Where the shell init's helper (irb's static init binary) goes in the archive. */
export const INIT_HELPER_PATH = '/irb/init';

/** How the generated /init ends the VM. */
export type ExitAction = 'poweroff' | 'reboot';

/** A user switch: how the generated /init becomes the image's `User`. */
export interface UserSwitch {
  user: ResolvedUser;
  /** Absolute path of the tool found in the image (setpriv, su-exec, gosu, chpst or su). */
  tool: string;
  /** The argv prefix that runs the program as `user`. */
  argv: string[];
}

/** The result of {@link planInit}: the script and what the archive must also contain for it to work. */
export interface InitPlan {
  /** The `/init` shell script. */
  script: string;
  /** Directories the script needs that the image lacks (absolute, parents first); the builder adds them 0755 root. */
  directories: string[];
  /** The program's argv (Entrypoint + Cmd). */
  argv: string[];
  /** The program's environment, in order, as `NAME=value` (PATH defaulted, HOSTNAME and HOME added). */
  env: string[];
  /** Working directory of the program. */
  workingDir: string;
  /** What the script execs: argv behind the env, user switch or helper words. */
  runArgv: string[];
  /** Present when the program runs as a user other than root. */
  userSwitch?: UserSwitch;
  /** The helper the script calls, when irb has one for the architecture: store it at `path`, 0755, root. */
  helper?: { path: string; arch: InitArch; binary: Uint8Array };
}

/** The PATH container runtimes set when the image has none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const TOOL_DIRS = DEFAULT_PATH.split(':');

/** Mount points the generated /init mounts on the rootfs itself (the /dev ones live inside devtmpfs). */
const ROOT_MOUNTS = ['/proc', '/sys', '/dev', '/run', '/tmp'];

async function findTool(
  view: InitRootfsView,
  name: string,
): Promise<{ path: string; real: string } | undefined> {
  for (const dir of TOOL_DIRS) {
    const path = `${dir}/${name}`;
    const st = await view.stat(path);
    if (st?.type === 'file') return { path, real: st.path };
  }
  return undefined;
}

/** Busybox's applets differ from the real tools (its setpriv cannot change uid), so busybox is told apart. */
function isBusybox(real: string): boolean {
  return /(^|\/)busybox[^/]*$/.test(real);
}

async function findBusybox(view: InitRootfsView): Promise<string | undefined> {
  return (await findTool(view, 'busybox'))?.path;
}

/** A tool as argv words: the image's own binary, or the busybox applet when only busybox is there. */
async function toolArgv(view: InitRootfsView, name: string): Promise<string[] | undefined> {
  const found = await findTool(view, name);
  if (found) return [found.path];
  const busybox = await findBusybox(view);
  return busybox ? [busybox, name] : undefined;
}

async function planUserSwitch(
  view: InitRootfsView,
  user: ResolvedUser,
  spec: string,
): Promise<UserSwitch | undefined> {
  if (user.uid === 0 && user.gid === 0) return undefined;
  const ids = `${user.uid}:${user.gid}`;
  const setpriv = await findTool(view, 'setpriv');
  if (setpriv && !isBusybox(setpriv.real)) {
    const groups = user.groups.length > 0 ? `--groups=${user.groups.join(',')}` : '--clear-groups';
    return {
      user,
      tool: setpriv.path,
      argv: [setpriv.path, `--reuid=${user.uid}`, `--regid=${user.gid}`, groups, '--'],
    };
  }
  for (const name of ['su-exec', 'gosu']) {
    const tool = await findTool(view, name);
    if (tool) return { user, tool: tool.path, argv: [tool.path, ids] };
  }
  const chpst = await findTool(view, 'chpst');
  if (chpst && !isBusybox(chpst.real)) {
    const all = [user.gid, ...user.groups].join(':');
    return { user, tool: chpst.path, argv: [chpst.path, '-u', `:${user.uid}:${all}`] };
  }
  // su can only switch to a named user with that user's own primary group.
  const su = await findTool(view, 'su');
  if (su && user.name !== undefined) {
    // `--` keeps su's option parser (which permutes) away from the program's own arguments.
    return {
      user,
      tool: su.path,
      argv: [su.path, '-p', '-s', '/bin/sh', user.name, '-c', 'exec "$0" "$@"', '--'],
    };
  }
  throw new IrbError(
    'IRB_IMAGE_NO_USER_SWITCH',
    `the image runs as User "${spec}" but has no tool to switch to it (setpriv, su-exec, gosu, chpst or su); ` +
      'add one to the image, or set `init` to your own init program',
  );
}

/** What the program is and how it runs, resolved at build time from the image config and its files. */
export interface RunPlan {
  /** Entrypoint + Cmd. */
  argv: string[];
  /** The environment a container runtime gives the program: Env in order, PATH defaulted, HOSTNAME and HOME added. */
  env: string[];
  /** Absolute working directory. */
  workingDir: string;
  /** The config's User resolved through the image's /etc/passwd and /etc/group. */
  user: ResolvedUser;
  /** The User as the config gives it. */
  userSpec: string;
  hostname: string;
  /** Directories the init needs that the image lacks (mount points, WorkingDir and its parents), parents first. */
  directories: string[];
  /** How many leading `argv` words are the Entrypoint (a job's `--cmd` replaces the rest). */
  entrypointLength: number;
  /** HOME came from the user's passwd entry (the config has none), so a job's user changes it. */
  homeFromUser: boolean;
}

/**
 * Resolves what any generated init runs: argv, environment, working directory and user, checked
 * against the image. Needs nothing from the image but its config and, for a named User, its
 * passwd and group files.
 */
export async function planRun(
  view: InitRootfsView,
  config: ContainerConfig | undefined,
  options: Pick<PlanInitOptions, 'hostname'> = {},
): Promise<RunPlan> {
  const argv = [...(config?.Entrypoint ?? []), ...(config?.Cmd ?? [])];
  if (argv.length === 0) {
    throw new IrbError(
      'IRB_IMAGE_NO_COMMAND',
      'the image config has neither Entrypoint nor Cmd, so there is nothing to run; set `init` to your own init program',
    );
  }
  const hostname = options.hostname ?? 'irb';
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$/.test(hostname)) {
    throw new IrbError(
      'IRB_HOSTNAME_INVALID',
      `"${hostname}" is not a valid hostname; use letters, digits, . and -`,
    );
  }

  const userSpec = config?.User ?? '';
  let user: ResolvedUser;
  if (/^\s*(|0|root|0:0|root:root)\s*$/.test(userSpec)) {
    // Root needs no switch; reading passwd only for HOME would cost a layer scan, and root's home is /root.
    user = {
      uid: 0,
      gid: 0,
      groups: [],
      name: 'root',
      home: (await view.stat('/etc/passwd')) ? '/root' : '/',
    };
  } else {
    const passwd = parsePasswd((await view.readText('/etc/passwd')) ?? '');
    const group = parseGroup((await view.readText('/etc/group')) ?? '');
    user = resolveUser(userSpec, passwd, group);
  }

  // The environment a runtime gives the program: the config's Env in order (later wins), PATH
  // defaulted, HOSTNAME set, HOME from passwd unless the image sets it.
  const env: string[] = [];
  const names = new Set<string>();
  for (const kv of config?.Env ?? []) {
    const eq = kv.indexOf('=');
    const name = eq < 0 ? kv : kv.slice(0, eq);
    if (name === '') continue;
    env.push(eq < 0 ? `${kv}=` : kv);
    names.add(name);
  }
  if (!names.has('PATH')) env.unshift(`PATH=${DEFAULT_PATH}`);
  if (!names.has('HOSTNAME')) env.push(`HOSTNAME=${hostname}`);
  const homeFromUser = !names.has('HOME');
  if (homeFromUser) env.push(`HOME=${user.home}`);

  const workingDir = config?.WorkingDir || '/';
  if (!workingDir.startsWith('/')) {
    throw new IrbError(
      'IRB_WORKDIR_INVALID',
      `the image's WorkingDir "${workingDir}" is not absolute; fix the image config or set \`init\` to your own init program`,
    );
  }

  const directories: string[] = [];
  const wanted = [...ROOT_MOUNTS];
  const wd = normalizeAbs(workingDir);
  let acc = '';
  for (const part of wd.split('/').filter(Boolean)) {
    acc += `/${part}`;
    wanted.push(acc);
  }
  for (const dir of wanted) {
    if (directories.includes(dir)) continue;
    const st = await view.stat(dir);
    if (st === undefined) directories.push(dir);
    else if (st.type !== 'directory' && dir === wd) {
      throw new IrbError(
        'IRB_WORKDIR_INVALID',
        `the image's WorkingDir "${workingDir}" is not a directory; fix the image config or set \`init\` to your own init program`,
      );
    }
  }

  const entrypointLength = config?.Entrypoint?.length ?? 0;
  return { argv, env, workingDir, user, userSpec, hostname, directories, entrypointLength, homeFromUser };
}

/**
 * Plans the generated `/init` for an image: checks at build time that the image has what the script
 * needs (a shell, mount, a user switch tool when `User` is set), resolves `User` through the image's
 * own `/etc/passwd` and `/etc/group`, and renders a POSIX sh script that does what a container runtime
 * does, then prints `irb: exit status N` and powers the VM off.
 *
 * Throws an `IrbError` naming the fix (usually `init`) when the image cannot run it.
 */
export async function planInit(
  view: InitRootfsView,
  config: ContainerConfig | undefined,
  options: PlanInitOptions = {},
): Promise<InitPlan> {
  const sh = await view.stat('/bin/sh');
  if (sh?.type !== 'file') {
    throw new IrbError(
      'IRB_IMAGE_NO_SHELL',
      'the image has no /bin/sh, which the generated /init needs; set `init` to a static init program',
    );
  }
  const mount = await toolArgv(view, 'mount');
  if (!mount) {
    throw new IrbError(
      'IRB_IMAGE_NO_MOUNT',
      'the image has no mount command, which the generated /init needs; set `init` to your own init program',
    );
  }
  const run = await planRun(view, config, options);
  const { argv, env, workingDir, user, userSpec, hostname, directories } = run;
  const arch = options.architecture === undefined ? undefined : initArchForPlatform(options.architecture);
  const setup = planSetup(arch, options);
  const odd = env.filter((kv) => !isShellName(kv.slice(0, kv.indexOf('='))));
  let userSwitch: UserSwitch | undefined;
  let runArgv: string[];
  if (arch) {
    // The helper switches user and passes the names sh cannot export: no tool from the image.
    const ids = user.uid === 0 && user.gid === 0 ? [] : ['-u', String(user.uid), '-g', String(user.gid)];
    const groups = user.groups.flatMap((g) => ['-G', String(g)]);
    if (ids.length > 0)
      userSwitch = { user, tool: INIT_HELPER_PATH, argv: [INIT_HELPER_PATH, 'exec', ...ids, ...groups] };
    runArgv = [
      INIT_HELPER_PATH,
      'exec',
      ...ids,
      ...groups,
      ...(run.entrypointLength > 0 ? ['-E', String(run.entrypointLength)] : []),
      ...(run.homeFromUser ? ['-H'] : []),
      ...odd.flatMap((kv) => ['-e', kv]),
      '--',
      ...argv,
    ];
  } else {
    userSwitch = await planUserSwitch(view, user, userSpec);
    let envPrefix: string[] = [];
    if (odd.length > 0) {
      const envTool = await toolArgv(view, 'env');
      if (!envTool) {
        throw new IrbError(
          'IRB_ENV_INVALID',
          `the image's Env has names sh cannot export (${odd.map((kv) => kv.split('=')[0]).join(', ')}) and no env command to pass them; ` +
            'fix the image config or set `init` to your own init program',
        );
      }
      envPrefix = [...envTool, ...odd];
    }
    runArgv = [...envPrefix, ...(userSwitch?.argv ?? []), ...argv];
  }

  const mkdir = await toolArgv(view, 'mkdir');
  const ln = await toolArgv(view, 'ln');
  // With the helper, its setup brings lo up; without it, the image's ip command does, if it has one.
  const ip = arch ? undefined : await toolArgv(view, 'ip');
  const exitAction = options.exitAction ?? 'poweroff';
  if (exitAction !== 'poweroff' && exitAction !== 'reboot') {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `exit action "${String(exitAction)}" is unknown; use poweroff or reboot`,
    );
  }
  const poweroff = await toolArgv(view, exitAction);
  const sleep = await toolArgv(view, 'sleep');

  const script = renderInitScript({
    imageName: options.imageName,
    hostname,
    mount,
    mkdir,
    ln,
    ip,
    poweroff,
    exitAction,
    sleep,
    exports: env.filter((kv) => isShellName(kv.slice(0, kv.indexOf('=')))),
    workingDir,
    runArgv,
    ...(arch ? { setup } : { jobWarning: true }),
  });
  const plan: InitPlan = { script, directories, argv, env, workingDir, runArgv };
  if (userSwitch) plan.userSwitch = userSwitch;
  if (arch) plan.helper = { path: INIT_HELPER_PATH, arch, binary: staticInitBinary(arch) };
  return plan;
}

/** The helper's `setup` command line: modules, the baked network, the wait. */
function planSetup(arch: InitArch | undefined, options: PlanInitOptions): string[] {
  const modules = options.modules ?? [];
  if (!arch && (modules.length > 0 || options.net !== undefined)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `kernel modules and a baked network need irb's init helper, which exists for x86_64 and aarch64, not for ${options.architecture ?? 'an unknown architecture'}; drop them, or pass ip= and load the modules yourself`,
    );
  }
  const argv = [INIT_HELPER_PATH, 'setup'];
  for (const module of modules) {
    if (!module.startsWith('/') || module.includes('\0')) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `module path ${JSON.stringify(module)} is not absolute; give the module's path in the archive`,
      );
    }
    argv.push('-m', module);
  }
  if (options.net !== undefined) argv.push('-n', staticIpValue(options.net));
  if (options.netWaitMs !== undefined) {
    if (!Number.isInteger(options.netWaitMs) || options.netWaitMs < 0 || options.netWaitMs > 0xffff_ffff) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `netWaitMs ${options.netWaitMs} is not a whole number of milliseconds`,
      );
    }
    argv.push('-w', String(options.netWaitMs));
  }
  return argv;
}

function normalizeAbs(path: string): string {
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}

/** Inputs of {@link renderInitScript}; tool argv prefixes are absolute paths inside the image. */
export interface InitScriptParts {
  imageName?: string | undefined;
  hostname: string;
  mount: string[];
  mkdir?: string[] | undefined;
  ln?: string[] | undefined;
  ip?: string[] | undefined;
  /** The `poweroff` or `reboot` command, per `exitAction`. */
  poweroff?: string[] | undefined;
  /** Default `poweroff`. */
  exitAction?: ExitAction | undefined;
  sleep?: string[] | undefined;
  /** `NAME=value` pairs exported in order. */
  exports: string[];
  workingDir: string;
  /** The full argv run with exec semantics (env / user switch prefixes included). */
  runArgv: string[];
  /** The helper's setup command (modules, network), run after the hostname is set. */
  setup?: string[] | undefined;
  /** Without a helper: say on the console that job files in /irb/job.d are not applied. */
  jobWarning?: boolean | undefined;
}

/**
 * Boot-timeline markers (see @irb/boot's bootTimeline): written to /dev/kmsg so that the kernel
 * stamps them with its own clock, the one its "Run /init" line has. A kernel console without
 * timestamps or a `quiet` one shows nothing, and a failed write costs nothing.
 */
const INIT_MARKER = "echo 'irb: init' 2>/dev/null >/dev/kmsg";
const EXEC_MARKER = "echo 'irb: exec' 2>/dev/null >/dev/kmsg";

/** The program-running part of the script, separate so tests can run it under a host shell. */
export function renderRunSection(
  parts: Pick<InitScriptParts, 'exports' | 'workingDir' | 'runArgv'>,
  options: { timelineMarker?: boolean } = {},
): string {
  const lines: string[] = [];
  // The kernel hands init HOME=/ and TERM=linux; a container's program sees only its config's Env.
  lines.push('unset HOME TERM');
  for (const kv of parts.exports) {
    const eq = kv.indexOf('=');
    lines.push(`export ${kv.slice(0, eq)}=${shellQuote(kv.slice(eq + 1))}`);
  }
  lines.push(
    `if cd ${shellQuote(parts.workingDir)}; then`,
    '  unset OLDPWD',
    // A subshell that execs keeps exec semantics (PATH lookup, no shell builtins) and lets init wait.
    options.timelineMarker
      ? `  (${EXEC_MARKER}; exec ${shellJoin(parts.runArgv)})`
      : `  (exec ${shellJoin(parts.runArgv)})`,
    '  irb_status=$?',
    'else',
    `  echo ${shellQuote(`irb: cannot change to WorkingDir ${parts.workingDir}`)} >&2`,
    '  irb_status=126',
    'fi',
    'echo "irb: exit status $irb_status"',
  );
  return lines.join('\n');
}

/** Renders the whole generated `/init`. */
export function renderInitScript(parts: InitScriptParts): string {
  const mount = shellJoin(parts.mount);
  const mkdir = parts.mkdir ? shellJoin(parts.mkdir) : undefined;
  const lines = [
    '#!/bin/sh',
    `# /init generated by irb${parts.imageName ? ` for ${parts.imageName.replace(/[\r\n]/g, ' ')}` : ''}.`,
    '# It prepares the VM as a container runtime prepares a container, runs the image',
    `# config's Entrypoint + Cmd, prints its exit status and ${parts.exitAction === 'reboot' ? 'reboots' : 'powers off'} the VM.`,
    '# Replace it with `irb build --init FILE`.',
    `PATH=${DEFAULT_PATH}`,
    'irb_mount() {',
    mkdir ? `  [ -d "$3" ] || ${mkdir} -p "$3" 2>/dev/null` : '  :',
    `  ${mount} -t "$1" -o "$4" "$2" "$3" || echo "irb: warning: could not mount $1 on $3" >&2`,
    '}',
    'irb_mount proc proc /proc nosuid,nodev,noexec',
    'irb_mount sysfs sysfs /sys nosuid,nodev,noexec',
    'irb_mount devtmpfs devtmpfs /dev nosuid,mode=0755',
    INIT_MARKER,
    'irb_mount devpts devpts /dev/pts nosuid,noexec,mode=0620,ptmxmode=0666',
    'irb_mount tmpfs shm /dev/shm nosuid,nodev,mode=1777',
    'irb_mount tmpfs tmpfs /run nosuid,nodev,mode=0755',
    'irb_mount tmpfs tmpfs /tmp nosuid,nodev,mode=1777',
  ];
  if (parts.ln) {
    const ln = shellJoin(parts.ln);
    lines.push(
      `[ -e /dev/fd ] || ${ln} -s /proc/self/fd /dev/fd`,
      `[ -e /dev/stdin ] || ${ln} -s /proc/self/fd/0 /dev/stdin`,
      `[ -e /dev/stdout ] || ${ln} -s /proc/self/fd/1 /dev/stdout`,
      `[ -e /dev/stderr ] || ${ln} -s /proc/self/fd/2 /dev/stderr`,
    );
  }
  lines.push(`echo ${shellQuote(parts.hostname)} > /proc/sys/kernel/hostname`);
  if (parts.ip) lines.push(`${shellJoin(parts.ip)} link set lo up 2>/dev/null`);
  // Modules, lo and the network (ip= or the baked value), by irb's static init as a helper.
  if (parts.setup) lines.push(shellJoin(parts.setup));
  if (parts.jobWarning) {
    lines.push(
      `[ -d ${JOB_CONFIG_DIR} ] && echo ${shellQuote(`irb: warning: ${JOB_CONFIG_DIR} is not applied: this architecture has no irb init helper`)} >&2`,
    );
  }
  lines.push(renderRunSection(parts, { timelineMarker: true }));
  // sysrq acts asynchronously, so init must stay alive until it happens: PID 1 exiting
  // would panic the kernel instead.
  lines.push(`echo ${parts.exitAction === 'reboot' ? 'b' : 'o'} > /proc/sysrq-trigger 2>/dev/null`);
  if (parts.poweroff) lines.push(`${shellJoin(parts.poweroff)} -f 2>/dev/null`);
  lines.push(
    parts.sleep ? `while :; do ${shellJoin(parts.sleep)} 1 2>/dev/null || :; done` : 'while :; do :; done',
    '',
  );
  return lines.join('\n');
}
