/**
 * The host's side of `pnpm bench:boot --agent`: asking the agent for the snippet and checking
 * the answer, the example agent's build, the kernel's ELF taken out of its bzImage, and the same
 * agent and python3 run natively for the emulation ratio.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** What the host asks the agent to run (with `X-Interpreter: python3`), and the one answer that counts. */
export const SNIPPET = 'print(6*7)';
const EXPECTED = '42\n';

/** The agent's JSON answer to `POST /run`. */
export interface Answer {
  stdout: string;
  stderr: string;
  status: number;
  /** The agent's own timing of the snippet: fork → the interpreter exited. */
  ms: number;
}

/** An HTTP answer as it came: status and body. */
export type Reply = { status: number; body: string } | Error;

/** POSTs the snippet to the agent on 127.0.0.1:`port`; what it answered, or the error. */
export function post(port: number, signal: AbortSignal): Promise<Reply> {
  return new Promise((done) => {
    const body = Buffer.from(SNIPPET);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/run',
        method: 'POST',
        agent: false,
        signal,
        headers: { 'content-length': body.length, 'x-interpreter': 'python3' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => done({ status: res.statusCode ?? 0, body: text }));
        res.on('error', done);
      },
    );
    req.on('error', done);
    req.end(body);
  });
}

/** The agent's answer, when it is `42` from a python3 that exited 0; else why not, in one line. */
export function checkAnswer(reply: Reply | undefined): Answer | string {
  if (reply === undefined) return 'the agent never answered the readiness check';
  if (reply instanceof Error) return `the POST failed: ${reply.message}`;
  if (reply.status !== 200) return `the agent answered ${reply.status}: ${reply.body.trim().slice(0, 200)}`;
  let answer: Answer;
  try {
    answer = JSON.parse(reply.body) as Answer;
  } catch {
    return `the agent's answer is not JSON: ${reply.body.slice(0, 200)}`;
  }
  if (answer.stdout !== EXPECTED || answer.status !== 0) {
    return `${SNIPPET} answered ${JSON.stringify(answer.stdout)} (status ${answer.status}, stderr ${JSON.stringify(answer.stderr.slice(-300))}) instead of 42`;
  }
  return answer;
}

/** Builds the example agent (static, x86_64) into `dir`; its path. */
export async function buildAgent(dir: string): Promise<string> {
  await promisify(execFile)('bash', [join(ROOT, 'examples', 'agent', 'build.sh'), dir]);
  return join(dir, 'agent-x86_64');
}

/** How each compressor of a bzImage's payload is undone, and whether the kernel's build appended the 4-byte size. */
const PAYLOADS = [
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], tool: 'xz', args: ['-dc', '--single-stream'], sized: false },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], tool: 'zstd', args: ['-dc'], sized: true },
  { magic: [0x1f, 0x8b], tool: 'gzip', args: ['-dc'], sized: false },
];

/**
 * The kernel's ELF (`vmlinux`) out of a bzImage, as the kernel's `scripts/extract-vmlinux` gets
 * it, but where the setup header says the compressed payload is (`setup_sects`,
 * `payload_offset`, `payload_length`). QEMU boots such an ELF through its PVH entry, as
 * Firecracker boots its x86_64 kernels: nothing is decompressed in the guest. Written to `dir`.
 */
export async function extractVmlinux(bzImage: string, dir: string): Promise<string> {
  const image = await readFile(bzImage);
  if (image.subarray(0x202, 0x206).toString('latin1') !== 'HdrS')
    throw new Error(`${bzImage} is not a bzImage`);
  const start = ((image[0x1f1] as number) || 4) * 512 + 512 + image.readUInt32LE(0x248);
  const payload = image.subarray(start, start + image.readUInt32LE(0x24c));
  const kind = PAYLOADS.find((p) => p.magic.every((b, i) => payload[i] === b));
  if (!kind) throw new Error(`${bzImage}'s payload is in a format this bench does not undo (xz, zstd, gzip)`);
  const run = promisify(execFile)(kind.tool, kind.args, { encoding: 'buffer', maxBuffer: 1 << 30 });
  run.child.stdin?.end(kind.sized ? payload.subarray(0, -4) : payload);
  const { stdout } = await run;
  if (stdout.length < 4 || stdout.readUInt32BE(0) !== 0x7f454c46) {
    throw new Error(`${bzImage}'s payload is not an ELF`);
  }
  const out = join(dir, 'vmlinux');
  await writeFile(out, stdout);
  return out;
}

/** A TCP port free on 127.0.0.1 right now. */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => done(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * Unpacks `archive` (lz4 or zstd) into `root` for {@link nativeRun}: the same agent, python3 and
 * libraries the guest runs. Needs root (device nodes, and chroot later).
 */
export async function unpackForNative(archive: string, format: 'lz4' | 'zstd', root: string): Promise<void> {
  await mkdir(root);
  await promisify(execFile)('sh', ['-c', `${format} -dc "$1" | cpio -idm --quiet`, 'sh', archive], {
    cwd: root,
  });
}

/**
 * One run of the agent on this host, without emulation: started with `chroot` in the unpacked
 * archive, the snippet POSTed until the agent accepts. The agent's start → the host holding 42,
 * and the agent's own timing of the snippet.
 */
export async function nativeRun(root: string): Promise<{ answerMs: number; snippetMs: number }> {
  const port = await freePort();
  const started = performance.now();
  const agent = spawn('chroot', [root, '/usr/bin/agent', '--port', String(port), '--vsock-port', '0'], {
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' },
    stdio: 'ignore',
  });
  try {
    const stop = AbortSignal.timeout(30_000);
    for (;;) {
      const reply = await post(port, stop);
      if (!stop.aborted && reply instanceof Error && 'code' in reply && reply.code === 'ECONNREFUSED') {
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      const answer = checkAnswer(reply);
      if (typeof answer === 'string') throw new Error(`the agent run natively: ${answer}`);
      return { answerMs: performance.now() - started, snippetMs: answer.ms };
    }
  } finally {
    agent.kill();
  }
}
