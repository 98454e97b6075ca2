import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Joins chunks into one buffer. */
export async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of source) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Yields `bytes` in chunks of `size` (odd sizes exercise block boundaries). */
export async function* chunked(bytes: Uint8Array, size = 65_536): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

/**
 * Realistic input: files of this machine's /usr (binaries, libraries, text), in sorted
 * order, concatenated up to `limit` bytes. The same machine gives the same bytes.
 */
export function realisticData(limit: number): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (total >= limit) return;
      const path = join(dir, name);
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(path);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(path);
      else if (st.isFile() && st.size > 0 && st.size < 4_000_000) {
        try {
          const body = readFileSync(path);
          parts.push(body);
          total += body.length;
        } catch {
          // unreadable files are skipped
        }
      }
    }
  };
  for (const dir of ['/usr/share/perl5', '/usr/bin', '/usr/lib/x86_64-linux-gnu', '/usr/share/doc'])
    walk(dir);
  return Buffer.concat(parts).subarray(0, limit);
}

/** Result of a finished process. */
export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a real program with `input` on stdin. */
export function run(command: string, args: string[], input?: Uint8Array): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? new Uint8Array(0));
  });
}
