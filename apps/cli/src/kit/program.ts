/**
 * The flags that make an archive's program hear the host, shared by `irb build`, `irb trace` and
 * `irb append`: kernel modules, the guest network, and `docker run`'s overrides of the program.
 */
import type { InitramfsBuilderOptions } from '@irb/builder';
import { checkRunOptions } from '@irb/builder/run-options';
import { isIrbError } from '@irb/errors';
import { cliWording } from './errors.ts';
import { strings } from './options.ts';
import { UsageError } from './usage.ts';

/** The flags, for `parseOptions`. */
export const PROGRAM_FLAGS = {
  'kernel-modules': { type: 'string' },
  modules: { type: 'string', multiple: true },
  net: { type: 'string' },
  entrypoint: { type: 'string' },
  cmd: { type: 'string', multiple: true },
  env: { type: 'string', multiple: true },
  workdir: { type: 'string' },
  user: { type: 'string' },
} as const;

/** Flags whose value is one word of the program, which may start with `-` (`--cmd --port`). */
const WORD_FLAGS = ['--cmd', '--entrypoint'];

/** Parsed program flags: the library's option names, set only when given. */
export interface ProgramArgs {
  kernelModules?: string;
  modules?: string[];
  net?: string;
  entrypoint?: string;
  cmd?: string[];
  env?: string[];
  workdir?: string;
  user?: string;
}

/** The help lines of the flags (the same for build, trace and append). */
export const PROGRAM_HELP = `Kernel modules, network, program:
      --kernel-modules SOURCE  where the guest kernel's modules come from: a
                               /lib/modules/<release> directory, a kernel .deb
                               (linux-image-…), or an image holding /lib/modules/<release>
                               or LinuxKit's /kernel.tar (a registry reference, oci:DIR,
                               docker-archive:FILE)
      --modules LIST           modules to add and load at boot, dependencies first:
                               names, aliases or presets net, vsock, console, blk, fs
                               (each with the virtio transports); comma-separated,
                               repeatable; needs --kernel-modules
      --net CIDR[,gw=IP][,dns=IP]  the network the init configures when the kernel
                               command line has no ip= (ip= wins), e.g.
                               10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3
      --entrypoint PATH        replace the image's Entrypoint (and clear its Cmd)
      --cmd ARG                replace the image's Cmd, one word each; repeatable
                               (--cmd --port --cmd 8080: a word may start with -)
      --env NAME=VALUE         add or override a variable; repeatable
      --workdir DIR            the program's working directory
      --user UID[:GID]|NAME[:GROUP]  the user the program runs as`;

/**
 * `--cmd --port` as `--cmd=--port`: a program's words may start with `-`, which node:util would
 * take for an option. Only the word right after these flags, never after `--`.
 */
export function joinProgramWords(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    if (WORD_FLAGS.includes(word) && next !== undefined) {
      out.push(`${word}=${next}`);
      i++;
    } else out.push(word);
  }
  return out;
}

/** The program flags of parsed `values`, checked as the build will check them (a usage error). */
export function programArgs(values: Record<string, unknown>): ProgramArgs {
  const args: ProgramArgs = {};
  if (values['kernel-modules'] !== undefined) args.kernelModules = String(values['kernel-modules']);
  const lists = strings(values.modules);
  if (lists.length > 0) {
    const modules: string[] = [];
    for (const list of lists) {
      const words = list.split(',').map((w) => w.trim());
      if (words.some((w) => w === '')) {
        throw new UsageError(
          `--modules "${list}" has an empty name; write names separated by commas (net,vsock)`,
        );
      }
      modules.push(...words);
    }
    args.modules = modules;
  }
  for (const flag of ['net', 'entrypoint', 'workdir', 'user'] as const) {
    if (values[flag] !== undefined) args[flag] = String(values[flag]);
  }
  if (values.cmd !== undefined) args.cmd = strings(values.cmd);
  if (values.env !== undefined) args.env = strings(values.env);
  try {
    checkRunOptions(args);
  } catch (error) {
    if (isIrbError(error)) throw new UsageError(cliWording(error.message));
    throw error;
  }
  return args;
}

/** The builder's options of parsed program flags (only what was given). */
export function programOptions(
  args: ProgramArgs,
): Pick<
  InitramfsBuilderOptions,
  'kernelModules' | 'modules' | 'net' | 'entrypoint' | 'cmd' | 'env' | 'workdir' | 'user'
> {
  const out: ReturnType<typeof programOptions> = {};
  if (args.kernelModules !== undefined) out.kernelModules = args.kernelModules;
  if (args.modules !== undefined) out.modules = args.modules;
  if (args.net !== undefined) out.net = args.net;
  if (args.entrypoint !== undefined) out.entrypoint = args.entrypoint;
  if (args.cmd !== undefined) out.cmd = args.cmd;
  if (args.env !== undefined) out.env = args.env;
  if (args.workdir !== undefined) out.workdir = args.workdir;
  if (args.user !== undefined) out.user = args.user;
  return out;
}
