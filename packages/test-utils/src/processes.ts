import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';

/** A Node process started by {@link lineChild}, read line by line. */
export interface LineChild {
  process: ChildProcessWithoutNullStreams;
  /** Its next line on stdout; rejects (with its stderr) once it exited without one. */
  next(): Promise<string>;
  /** Kills it with SIGKILL (it cleans nothing up) and waits until it is gone. */
  kill(): Promise<void>;
  /** Its exit code, once it exited. */
  exited: Promise<number | null>;
  /** What it wrote on stderr so far. */
  stderr(): string;
}

/**
 * Runs `script` (TypeScript, with the workspace's `@irb/source` condition) in a new Node process
 * with `args`, for tests that need a second process using the same files: one that holds a lease,
 * writes a temp file and is killed, and so on.
 */
export function lineChild(script: string, ...args: string[]): LineChild {
  const p = spawn(process.execPath, ['--conditions=@irb/source', script, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let buffer = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  p.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
  return {
    process: p,
    next: () =>
      new Promise<string>((resolve, reject) => {
        const line = lines.shift();
        if (line !== undefined) return resolve(line);
        waiting.push(resolve);
        exited.then(() => setImmediate(() => reject(new Error(`child exited: ${stderr}`))));
      }),
    kill: async () => {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await exited;
    },
    exited,
    stderr: () => stderr,
  };
}
