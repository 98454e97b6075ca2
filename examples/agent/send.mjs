#!/usr/bin/env node
// Sends a snippet of code to the example agent and prints its answer: the host's side of the
// serverless loop. Node only, no packages.
//
//   node examples/agent/send.mjs URL|SOCKET CODE [--interpreter PROGRAM] [--wait SECONDS] [--port N]
//
// URL is the agent's address as the host sees it (with `irb boot --net --forward 8080:8080`:
// http://127.0.0.1:8080). Anything else is the path of a Firecracker or Cloud Hypervisor vsock
// Unix socket (`uds_path`, `--vsock cid=3,socket=PATH`): the connection asks the VMM for the
// guest's vsock port --port (default 1024, the agent's) with `CONNECT <port>\n`.
// `--wait` asks GET /health, each try given 1 s, until the agent answers (default 0: no
// asking), and only then sends the code, once. CODE `-` reads the code from stdin. Prints the snippet's stdout and stderr and exits
// with its status.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';

function usage(message) {
  process.stderr.write(
    `send.mjs: ${message}\nusage: node send.mjs URL|SOCKET CODE [--interpreter PROGRAM] [--wait SECONDS] [--port N]\n`,
  );
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      interpreter: { type: 'string' },
      wait: { type: 'string', default: '0' },
      port: { type: 'string', default: '1024' },
    },
  });
} catch (error) {
  usage(error.message);
}
const [target, code] = parsed.positionals;
if (!target || code === undefined)
  usage('give the URL of the agent (or a vsock Unix socket) and the code to run');
const waitMs = Number(parsed.values.wait) * 1000;
if (!Number.isFinite(waitMs) || waitMs < 0) usage('--wait takes a number of seconds');
const vsockPort = Number(parsed.values.port);
if (!Number.isInteger(vsockPort) || vsockPort < 0 || vsockPort > 0xffffffff)
  usage('--port takes a vsock port number');
const url = /^https?:\/\//.test(target) ? new URL(target) : undefined;

/** Firecracker's and Cloud Hypervisor's hybrid vsock: `CONNECT <port>\n`, answered `OK <host port>\n`. */
function vsockConnection(path, port, signal) {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    let head = Buffer.alloc(0);
    const fail = (error) => {
      socket.destroy();
      reject(error);
    };
    // Nobody listens on the port yet: the VMM closes the connection without a word.
    const ended = () =>
      fail(new Error(`the VMM closed the connection: nothing listens on vsock port ${port}`));
    const aborted = () => fail(signal.reason);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf(0x0a);
      if (end < 0) return;
      socket.off('data', onData).off('error', fail).off('end', ended);
      signal.removeEventListener('abort', aborted);
      const line = head.subarray(0, end).toString('latin1');
      if (!/^OK \d+$/.test(line)) {
        fail(new Error(`the VMM answered "${line}" to CONNECT ${port}`));
        return;
      }
      socket.pause();
      if (end + 1 < head.length) socket.unshift(head.subarray(end + 1));
      resolve(socket);
    };
    socket.on('data', onData).once('error', fail).once('end', ended);
    socket.once('connect', () => socket.write(`CONNECT ${port}\n`));
    signal.addEventListener('abort', aborted, { once: true });
  });
}

/** A connection to the agent: TCP for a URL, else through the VMM's vsock socket. */
function open(signal) {
  if (!url) return vsockConnection(target, vsockPort, signal);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port || 80) });
    const fail = (error) => {
      socket.destroy();
      reject(error);
    };
    socket.once('error', fail).once('connect', () => {
      socket.off('error', fail);
      signal.removeEventListener('abort', aborted);
      resolve(socket);
    });
    const aborted = () => fail(signal.reason);
    signal.addEventListener('abort', aborted, { once: true });
  });
}

/**
 * One HTTP/1.1 request, written by hand (the agent answers one request per connection and
 * closes it), so that a VMM's vsock stream serves as well as TCP. `timeoutMs` bounds the whole
 * exchange (0: no bound).
 */
async function exchange(method, path, body, headers, timeoutMs) {
  const abort = new AbortController();
  const timer = timeoutMs
    ? setTimeout(() => abort.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    : 0;
  try {
    const socket = await open(abort.signal);
    return await new Promise((resolve, reject) => {
      const chunks = [];
      // What came back, once the agent closed (or refused the rest of a request it would not take).
      const answer = () => {
        const all = Buffer.concat(chunks);
        const end = all.indexOf('\r\n\r\n');
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(all.subarray(0, 16).toString('latin1'))?.[1];
        return end < 0 || !status
          ? undefined
          : { status: Number(status), body: all.subarray(end + 4).toString('utf8') };
      };
      const fail = (error) => {
        socket.destroy();
        reject(error);
      };
      abort.signal.addEventListener('abort', () => fail(abort.signal.reason), { once: true });
      socket.on('data', (chunk) => chunks.push(chunk));
      // An agent that answered early (413 to code too large) and closed makes the rest of the write fail.
      socket.once('error', (error) => {
        const early = answer();
        if (early) resolve(early);
        fail(error);
      });
      socket.once('end', () => {
        socket.destroy();
        const all = answer();
        if (all) resolve(all);
        else
          reject(
            new Error(chunks.length ? 'the answer is not HTTP' : 'the connection closed without an answer'),
          );
      });
      socket.resume();
      const lines = [`${method} ${path} HTTP/1.1`, 'Host: agent', 'Connection: close'];
      for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (body) socket.write(body);
    });
  } finally {
    clearTimeout(timer);
  }
}

// Before the guest's agent listens, QEMU's forward accepts a connection and holds it (no guest
// network yet) or drops it (no listener yet), and a VMM's vsock socket closes it: ask again.
// The code itself is sent once, after the agent answered, so it never runs twice.
const deadline = Date.now() + waitMs;
if (waitMs > 0) {
  for (;;) {
    try {
      // Any answer will do: something listens; what it says to the code is for the POST to show.
      await exchange('GET', '/health', undefined, {}, 1000);
      break;
    } catch (error) {
      if (Date.now() >= deadline) {
        process.stderr.write(
          `send.mjs: no answer from ${target} within ${parsed.values.wait} s: ${error.message}\n`,
        );
        process.exit(1);
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
const body = code === '-' ? readFileSync(0) : Buffer.from(code);
const headers = { 'Content-Length': body.length };
if (parsed.values.interpreter) headers['X-Interpreter'] = parsed.values.interpreter;
let answer;
try {
  answer = await exchange('POST', '/run', body, headers, 0);
} catch (error) {
  // The agent refuses code over 8 MiB and closes at once, which can take its 413 with it.
  const refused =
    /EPIPE|ECONNRESET/.test(error.code ?? '') && body.length > 8 << 20
      ? ' (the agent takes at most 8 MiB of code)'
      : '';
  process.stderr.write(`send.mjs: no answer from ${target}: ${error.message}${refused}\n`);
  process.exit(1);
}
if (answer.status !== 200) {
  process.stderr.write(`send.mjs: the agent answered ${answer.status}: ${answer.body}`);
  process.exit(1);
}
const result = JSON.parse(answer.body);
process.stdout.write(result.stdout);
process.stderr.write(result.stderr);
if (result.timedOut) process.stderr.write("send.mjs: the snippet was killed at the agent's --timeout\n");
if (result.truncated) process.stderr.write('send.mjs: the agent cut the output at 16 MiB per stream\n');
// Not process.exit: that would cut what a pipe has not taken yet.
process.exitCode = result.status;
