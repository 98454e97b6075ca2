#!/usr/bin/env node
// Sends a snippet of code to the example agent and prints its answer: the host's side of the
// serverless loop. Node only, no packages.
//
//   node examples/agent/send.mjs URL CODE [--interpreter PROGRAM] [--wait SECONDS]
//
// URL is the agent's address as the host sees it (with `irb boot --net --forward 8080:8080`:
// http://127.0.0.1:8080). `--wait` retries until the agent answers (default 0: one try).
// Prints the snippet's stdout and stderr and exits with its status.
import { request } from 'node:http';
import { parseArgs } from 'node:util';

function usage(message) {
  process.stderr.write(
    `send.mjs: ${message}\nusage: node send.mjs URL CODE [--interpreter PROGRAM] [--wait SECONDS]\n`,
  );
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { interpreter: { type: 'string' }, wait: { type: 'string', default: '0' } },
  });
} catch (error) {
  usage(error.message);
}
const [url, code] = parsed.positionals;
if (!url || code === undefined) usage('give the URL of the agent and the code to run');
const waitMs = Number(parsed.values.wait) * 1000;
if (!Number.isFinite(waitMs) || waitMs < 0) usage('--wait takes a number of seconds');

function post() {
  return new Promise((resolve, reject) => {
    const body = Buffer.from(code);
    const headers = { 'content-length': body.length };
    if (parsed.values.interpreter) headers['x-interpreter'] = parsed.values.interpreter;
    const req = request(new URL('/run', url), { method: 'POST', headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const deadline = Date.now() + waitMs;
for (;;) {
  try {
    const { status, body } = await post();
    if (status !== 200) {
      process.stderr.write(`send.mjs: the agent answered ${status}: ${body}`);
      process.exit(1);
    }
    const answer = JSON.parse(body);
    process.stdout.write(answer.stdout);
    process.stderr.write(answer.stderr);
    process.exit(answer.status);
  } catch (error) {
    // Before the guest's agent listens, QEMU's forward accepts and then drops the connection.
    if (Date.now() >= deadline) {
      process.stderr.write(`send.mjs: no answer from ${url}: ${error.message}\n`);
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
