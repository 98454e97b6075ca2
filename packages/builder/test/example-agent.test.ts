// The example agent (examples/agent/agent.c) on the host, without a VM: what a client sees when
// the agent refuses a request before reading its body. agent-boot.test.ts runs it in a guest.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dir: string;
let agentBin: string;
let agent: ChildProcess;
let port: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-example-agent-'));
  const script = join(import.meta.dirname, '..', '..', '..', 'examples', 'agent', 'build.sh');
  await promisify(execFile)('bash', [script, dir]);
  agentBin = join(dir, 'agent-x86_64');
  port = await freePort();
  agent = spawn(agentBin, ['--port', String(port), '--vsock-port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    agent.once('error', reject);
    agent.once('exit', (code) => reject(new Error(`the agent exited (${code}) before it listened`)));
    agent.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) resolve();
    });
  });
}, 120_000);
afterAll(async () => {
  agent?.kill();
  await rm(dir, { recursive: true, force: true });
});

/** One request to the agent: its status and body, or the error the client got instead. */
function send(
  method: string,
  path: string,
  body: Buffer,
): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path, method, headers: { 'content-length': body.byteLength } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    req.end(body);
  });
}

describe('the example agent on the host', () => {
  it('runs a snippet and answers with its output as JSON', async () => {
    const answer = await send('POST', '/run', Buffer.from('echo "$((6 * 7))"; echo oops >&2; exit 3\n'));
    expect(answer).toMatchObject({ status: 200 });
    const report = JSON.parse((answer as { body: string }).body);
    expect(report).toMatchObject({ stdout: '42\n', stderr: 'oops\n', status: 3, timedOut: false });
  });

  it('answers 413 to code over 8 MiB, and the client reads it instead of a broken pipe', async () => {
    // The agent answers once it has the headers; the body is still on its way.
    for (const size of [9 << 20, 64 << 20]) {
      expect(await send('POST', '/run', Buffer.alloc(size, 0x61))).toEqual({
        status: 413,
        body: 'code too large\n',
      });
    }
  });

  it('answers 404 to another path even while a large body follows', async () => {
    expect(await send('POST', '/upload', Buffer.alloc(16 << 20, 0x61))).toEqual({
      status: 404,
      body: 'POST code to /run\n',
    });
  });

  it('`agent send` prints the refusal and exits 1, not killed by SIGPIPE', async () => {
    const child = spawn(agentBin, ['send', '--tcp', `127.0.0.1:${port}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdin.on('error', () => {});
    child.stdin.end(Buffer.alloc(12 << 20, 0x61));
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('close', (c, s) => resolve([c, s])),
    );
    expect({ code, signal }).toEqual({ code: 1, signal: null });
    expect(stderr).toContain('the agent answered: HTTP/1.1 413 Content Too Large');
  });
});
