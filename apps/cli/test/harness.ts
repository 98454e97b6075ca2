import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTar, type TarSpec } from '@irb/test-utils';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const repoRoot = join(here, '..', '..', '..');
/**
 * Which CLI the tests run: the TypeScript sources (default), or with `IRB_TEST_CLI=dist` the
 * bundle that ships (`pnpm --filter @irb/cli build` first), which must pass the same tests.
 */
export const testedCli: 'source' | 'dist' = process.env.IRB_TEST_CLI === 'dist' ? 'dist' : 'source';
/** The CLI's entry point: src/bin.ts (run by Node's type stripping), or the bundle's dist/bin.js. */
export const bin = join(here, '..', ...(testedCli === 'dist' ? ['dist', 'bin.js'] : ['src', 'bin.ts']));
/** The command line that runs the CLI, for shell pipelines and `script`. */
export const cliCommand =
  testedCli === 'dist' ? [process.execPath, bin] : [process.execPath, '--conditions=@irb/source', bin];

/** What a CLI run produced. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout as bytes, for binary output (`-o -`). */
  stdoutBytes: Uint8Array;
  stderr: string;
}

/** Options of {@link runCli}. */
export interface RunCliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Called with each output chunk; return true to send `interruptSignal` to the process. */
  interruptWhen?: (stderr: string, stdout: string) => boolean;
  /** Default SIGINT. */
  interruptSignal?: NodeJS.Signals;
  /** Written to stdin, which is then closed. Default: stdin is /dev/null. */
  input?: string | Uint8Array;
  /** Typed into stdin once stdout + stderr show `after` (in order); stdin stays open until the end. */
  answers?: Array<{ after: string | RegExp; send: string }>;
  timeoutMs?: number;
}

/** Runs the real CLI as `pnpm irb` does: a separate Node process (see {@link testedCli}). */
export function runCli(args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  const [node, ...flags] = cliCommand;
  return runProgram(node!, [...flags, ...args], options);
}

/** Runs any program the way {@link runCli} runs the CLI (for `script` and shell pipelines). */
export function runProgram(command: string, args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const piped = options.input !== undefined || options.answers !== undefined;
    const child = spawn(command, args, {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, IRB_CACHE_DIR: undefined, ...options.env },
      stdio: [piped ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    const answers = [...(options.answers ?? [])];
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.stdin?.on('error', () => {});
    // Each answer waits for its text after the point where the previous one was found.
    let from = 0;
    const react = (): void => {
      const seen = stdout + stderr;
      for (let next = answers[0]; next; next = answers[0]) {
        const rest = seen.slice(from);
        const at =
          typeof next.after === 'string'
            ? (() => {
                const i = rest.indexOf(next.after);
                return i < 0 ? undefined : i + next.after.length;
              })()
            : (() => {
                const m = next.after.exec(rest);
                return m ? m.index + m[0].length : undefined;
              })();
        if (at === undefined) break;
        from += at;
        answers.shift();
        child.stdin?.write(next.send);
      }
      if (!interrupted && options.interruptWhen?.(stderr, stdout)) {
        interrupted = true;
        child.kill(options.interruptSignal ?? 'SIGINT');
      }
    };
    child.stdout!.on('data', (d: Buffer) => {
      out.push(d);
      stdout += d.toString();
      react();
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      react();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 240_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const bytes = Buffer.concat(out);
      resolve({ code, signal, stdout: bytes.toString(), stdoutBytes: bytes, stderr });
    });
  });
}

/** Files in `dir`, to check that nothing (not even a temporary file) was left behind. */
export async function filesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** Applets the test images link to busybox. */
const APPLETS = [
  'sh',
  'mount',
  'mkdir',
  'ln',
  'cat',
  'echo',
  'id',
  'pwd',
  'env',
  'su',
  'sleep',
  'poweroff',
  'ls',
  'uname',
];

/**
 * A real busybox root filesystem layer: Debian's static busybox (the host's, or the arm64 one
 * at `busyboxPath`), applet symlinks, /etc/passwd
 * and /etc/group with an unprivileged user `app` (uid 1000, groups app and video).
 */
export async function busyboxLayer(extra: TarSpec[] = [], busyboxPath = '/bin/busybox'): Promise<Uint8Array> {
  const busybox = new Uint8Array(await readFile(busyboxPath));
  const entries: TarSpec[] = [
    { type: 'directory', path: 'bin/' },
    { type: 'file', path: 'bin/busybox', content: busybox, mode: 0o755 },
    ...APPLETS.map((a): TarSpec => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { type: 'directory', path: 'etc/' },
    {
      type: 'file',
      path: 'etc/passwd',
      content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n',
    },
    { type: 'file', path: 'etc/group', content: 'root:x:0:\nvideo:x:44:app\napp:x:1000:\n' },
    { type: 'directory', path: 'root/', mode: 0o700 },
    { type: 'directory', path: 'home/' },
    { type: 'directory', path: 'home/app/', uid: 1000, gid: 1000 },
    ...extra,
  ];
  return buildTar(entries);
}
