import { constants } from 'node:os';
import { type IrbError, type IrbErrorCode, isIrbError } from '@irb/errors';
import { UsageError } from './usage.ts';

/**
 * Exit codes of `irb`. A signal exits 128 + its number (SIGINT 130, SIGTERM 143), as shells report
 * it; `irb boot` passes a guest program's `irb: exit status N` through as its own code.
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130, terminated: 143 } as const;

/**
 * The library's option names (as its messages write them, in backticks) and what the CLI calls
 * them. The one place where library wording becomes CLI wording: describeError rewrites every
 * backticked key of this table in an error message, so a reworded library message needs no CLI
 * change as long as it names its options this way. A backticked text that is not a key (a path,
 * a program name) is left as it is.
 */
export const OPTION_FLAGS: Readonly<Record<string, string>> = {
  // InitramfsBuilderOptions
  image: 'IMAGE',
  output: '-o FILE',
  compression: '-c',
  level: '--level',
  threads: '--threads',
  platform: '--platform',
  inject: '--inject',
  exclude: '--exclude',
  init: '--init',
  replaceImageInit: '--replace-init',
  'replaceImageInit: true': '--replace-init',
  keepImageInit: '--keep-init',
  'keepImageInit: true': '--keep-init',
  exitAction: '--on-exit',
  initKind: '--init-kind',
  allowArchMismatch: '--allow-arch-mismatch',
  slim: '--slim',
  keepOnly: '--keep-only',
  keep: '--keep',
  // The builder's trace mode is what `irb trace` turns on.
  trace: 'irb trace',
  cacheDir: '--cache-dir',
  'cache: false': '--no-cache',
  insecureRegistries: '--insecure-registry',
  keychains: '--keychain',
  // A CA bundle has no flag: Node reads extra trusted certificates from this variable.
  ca: 'NODE_EXTRA_CA_CERTS=FILE',
  // BootOptions
  kernel: '--kernel',
  memoryMb: '--memory',
  timeoutMs: '--timeout',
  expect: '--expect',
  append: '-- KERNEL_ARGS',
  net: '--net',
  forwards: '--forward',
  // TraceOptions
  timeoutSeconds: '--timeout',
  // Fleet: PushInitramfsOptions / PullInitramfsOptions (`subject` has no flag: push decides it)
  for: '--for',
  source: '--source',
  annotations: '--annotation',
  chunkSize: '--chunk-size',
};

/** Rewrites the library's backticked option names into the CLI's flags (see {@link OPTION_FLAGS}). */
export function cliWording(message: string): string {
  return message.replace(/`([^`\n]+)`/g, (whole, name: string) => OPTION_FLAGS[name] ?? whole);
}

/** Where an error with a filesystem cause happened, and which flags choose another place. */
const PLACE_ADVICE: Readonly<Record<string, string>> = {
  IRB_CACHE_WRITE_FAILED:
    'choose another directory with --cache-dir DIR, or build without a cache (--no-cache)',
  IRB_OUTPUT_FAILED: 'choose another path with -o FILE',
};

/** What to do about a filesystem errno; permission is not space, and space is not permission. */
const ERRNO_ADVICE: Readonly<Record<string, string>> = {
  EACCES: 'you lack permission to write there',
  EPERM: 'the operation is not permitted there',
  EROFS: 'that file system is read-only',
  ENOSPC: 'free space on that file system',
  EDQUOT: 'free space within your disk quota',
  EIO: 'the disk reported an I/O error; check it',
  ENOENT: 'a directory on the way does not exist',
  ENOTDIR: 'a component of the path is not a directory',
  EEXIST: 'a file is in the way of a directory',
};

function isAbort(error: unknown): boolean {
  return (
    error instanceof Error &&
    (error.name === 'AbortError' || (error as { code?: unknown }).code === 'ABORT_ERR')
  );
}

function causes(error: unknown): unknown[] {
  const list: unknown[] = [];
  const seen = new Set<unknown>();
  let cause = error instanceof Error ? error.cause : undefined;
  while (cause !== undefined && !seen.has(cause)) {
    seen.add(cause);
    list.push(cause);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return list;
}

function causeChain(error: unknown): string[] {
  return causes(error).map((cause) => {
    const code = (cause as { code?: unknown }).code;
    const message = cause instanceof Error ? cause.message : String(cause);
    return `  caused by: ${typeof code === 'string' ? `[${code}] ` : ''}${message.split('\n')[0]}`;
  });
}

/** The first filesystem errno (`EACCES`, `ENOSPC`, …) in an error's cause chain. */
function errnoOf(error: unknown): string | undefined {
  for (const cause of causes(error)) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string' && code in ERRNO_ADVICE) return code;
  }
  return undefined;
}

/** Exit code for an interrupt: 128 + the signal's number (SIGINT when unknown). */
function signalExit(error: unknown): number {
  const signal = (error as { signal?: unknown }).signal;
  const number = typeof signal === 'string' ? constants.signals[signal as NodeJS.Signals] : undefined;
  return number ? 128 + number : EXIT.interrupted;
}

/** Errnos that freeing space cures; for every other errno, "free space" is the wrong advice. */
const SPACE_ERRNOS = new Set(['ENOSPC', 'EDQUOT']);

/** Whether `advice` gives the wrong cure for `errno` ("free space" for EACCES, or not for ENOSPC). */
function adviceContradicts(errno: string, advice: string): boolean {
  const speaksOfSpace = /\bfree\b[^;]*\bspace\b|disk is full|quota/i.test(advice);
  return SPACE_ERRNOS.has(errno) ? !speaksOfSpace : speaksOfSpace;
}

/** The one line for a library error: CLI flags instead of option names, advice that fits the errno. */
function irbErrorLine(code: string, message: string, errno: string | undefined): string {
  const text = cliWording(message.split('\n')[0] ?? '');
  const place = PLACE_ADVICE[code];
  if (errno === undefined || place === undefined) return text;
  const cut = text.indexOf('; ');
  const head = cut < 0 ? text : text.slice(0, cut);
  const advice = cut < 0 ? '' : text.slice(cut + 2);
  // The library's advice stands when it fits the errno. Advice that lists one cure for every
  // cause (or none) is replaced: what happened stays, then the fix for this errno and the flags
  // that choose another place.
  if (advice !== '' && !adviceContradicts(errno, advice)) return text;
  return `${head}; ${ERRNO_ADVICE[errno]}, or ${place}`;
}

/**
 * Library codes that mean a bad value on the command line (a malformed reference, a file that
 * does not exist, a reserved annotation): exit code 2, like a usage error.
 */
const BAD_VALUE_CODES: ReadonlySet<string> = new Set<IrbErrorCode>([
  'IRB_OPTION_INVALID',
  'IRB_INPUT_UNREADABLE',
  'IRB_REFERENCE_INVALID',
  'IRB_DIGEST_INVALID',
  'IRB_PLATFORM_INVALID',
  'IRB_INJECT_SPEC_INVALID',
  'IRB_INJECT_SOURCE_UNREADABLE',
  'IRB_INJECT_DEST_INVALID',
  'IRB_KEYCHAIN_MODULE_INVALID',
  'IRB_SOURCE_UNSUPPORTED',
  'IRB_SOURCE_NOT_FOUND',
  'IRB_TAG_REQUIRED',
  'IRB_PLATFORM_REQUIRED',
  // An explicit --platform that the archive's /init contradicts (push).
  'IRB_PLATFORM_MISMATCH',
  'IRB_BOOT_INITRAMFS_NOT_FOUND',
  // irb boot, before QEMU starts: a --kernel (or the archive given) of another architecture,
  // modules for another kernel release, a --forward host port that is taken.
  'IRB_BOOT_KERNEL_ARCH_MISMATCH',
  'IRB_BOOT_MODULES_MISMATCH',
  'IRB_BOOT_FORWARD_PORT_IN_USE',
]);

/** Errnos that make an output path unusable as given (not a full disk, not an I/O error). */
const BAD_PATH_ERRNOS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EEXIST']);

/**
 * The exit code of a library error: 2 for a bad value given on the command line, else 1. An
 * output that cannot be written is a bad value when its path is (the check before the build has
 * no errno), a failure when the disk is (full, quota, I/O).
 */
function irbErrorExit(error: IrbError): number {
  if (BAD_VALUE_CODES.has(error.code)) return EXIT.usage;
  if (error.code === 'IRB_OUTPUT_FAILED') {
    const errno = causes(error)
      .map((cause) => (cause as { code?: unknown }).code)
      .find((code): code is string => typeof code === 'string' && /^E[A-Z]+$/.test(code));
    if (errno === undefined || BAD_PATH_ERRNOS.has(errno)) return EXIT.usage;
  }
  return EXIT.failure;
}

/** How a command failed: what stderr gets, the exit code, and the `--json` error object. */
export interface Failure {
  /** What stderr prints: the one line; with `verbose`, the code and the cause chain (or stack) too. */
  lines: string[];
  /** The exit code. */
  exit: number;
  /** The stable `IRB_…` code. */
  code: string;
  /** The one line without its `irb: error: ` prefix. */
  message: string;
}

/**
 * Turns any error into what the CLI prints and the exit code: one line unless `verbose`.
 * `command` is the command that ran, when one was recognized: usage errors point to its help.
 */
export function describeError(error: unknown, verbose: boolean, command?: string): Failure {
  if (error instanceof UsageError) {
    const help = command ? `irb ${command} --help` : 'irb --help';
    const message = `${error.message}; see "${help}"`;
    return { lines: [`irb: error: ${message}`], exit: EXIT.usage, code: 'IRB_COMMAND_LINE_INVALID', message };
  }
  if (isAbort(error)) {
    // Build and trace write a file only once complete; saying so reassures that no half-written output is left.
    const message =
      command === 'build' || command === 'trace' ? 'interrupted; nothing was written' : 'interrupted';
    return { lines: [`irb: ${message}`], exit: signalExit(error), code: 'IRB_COMMAND_INTERRUPTED', message };
  }
  if (isIrbError(error)) {
    const errno = errnoOf(error);
    const message = irbErrorLine(error.code, error.message, errno);
    const lines = [`irb: error: ${message}`];
    if (verbose) lines.push(`  code: ${error.code}`, ...causeChain(error));
    return { lines, exit: irbErrorExit(error), code: error.code, message };
  }
  const text = error instanceof Error ? error.message.split('\n')[0] : String(error);
  const message = `unexpected failure: ${text}; rerun with --verbose and report it`;
  const lines = [`irb: error: ${message}`];
  if (verbose && error instanceof Error && error.stack) lines.push(error.stack, ...causeChain(error));
  return { lines, exit: EXIT.failure, code: 'IRB_INTERNAL_FAILURE', message };
}
