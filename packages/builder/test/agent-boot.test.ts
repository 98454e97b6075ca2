// The point of the product, end to end under QEMU (TCG) with Debian's kernel and its own
// modules: the Debian python3 image, built with the `net` modules and the example agent injected
// and made the program; booted with a network and a forward, the host POSTs code and the guest
// answers. Then the same base with `irb append --env JOB=…` (a job file): the answer carries the
// job's variable. The time from QEMU's start to the first answer is what a platform sells.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type BootStart, findKernel } from '@irb/boot';
import { ensureDebianPythonImage, kernelModulesDir } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendOverlay, archiveConfig, bootInitramfs, InitramfsBuilder } from '../src/index.ts';

const BOOT = 600_000;
let dir: string;
let agent: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-agent-'));
  const script = join(import.meta.dirname, '..', '..', '..', 'examples', 'agent', 'build.sh');
  await promisify(execFile)('bash', [script, dir]);
  agent = join(dir, 'agent-x86_64');
}, 120_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What the agent answers to one POST /run, or `undefined` when nothing answered (yet). */
function post(port: number, code: string): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/run',
        method: 'POST',
        headers: { 'content-length': Buffer.byteLength(code) },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', () => resolve(undefined));
      },
    );
    // QEMU's user network accepts at once and closes while the guest does not listen: try again.
    req.on('error', () => resolve(undefined));
    req.setTimeout(30_000, () => req.destroy());
    req.end(code);
  });
}

/**
 * Boots `initramfs` with a network and a forward to the agent's port, POSTs `code` until the
 * agent answers, stops the VM, and returns the answer with the time from QEMU's start.
 */
async function roundTrip(initramfs: string, memoryMb: number, code: string) {
  const stop = new AbortController();
  let started: (start: BootStart) => void = () => {};
  const start = new Promise<BootStart>((resolve) => {
    started = resolve;
  });
  // A connection made before the guest's network is up waits in QEMU's user network for the
  // guest to answer its SYN, retried with backoff (seconds): the host asks once the agent listens.
  let transcript = '';
  let listeningMs: number | undefined;
  let listening: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    listening = resolve;
  });
  const boot = bootInitramfs({
    initramfs,
    memoryMb,
    net: { forwards: ['0:8080'] },
    stopSignal: stop.signal,
    stopOnMatch: false,
    timeoutMs: BOOT - 60_000,
    onStart: (s) => started(s),
    onOutput: (text) => {
      transcript += text;
      if (listeningMs === undefined && /^agent: listening on tcp port 8080/m.test(transcript)) {
        listeningMs = performance.now();
        listening();
      }
    },
  });
  let answer: { stdout: string; stderr: string; status: number } | undefined;
  let answerMs = 0;
  let startMs = 0;
  const ask = (async () => {
    const s = await start;
    startMs = s.startMs;
    const port = s.forwards[0]?.hostPort as number;
    await Promise.race([ready, boot]);
    for (;;) {
      if (stop.signal.aborted) return;
      const got = await post(port, code);
      if (got?.status === 200) {
        answerMs = performance.now() - s.startMs;
        answer = JSON.parse(got.body);
        stop.abort();
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const result = await boot;
  stop.abort();
  await ask;
  // On the host's clock from QEMU's start: its first console byte, the agent listening, the answer.
  const seconds = (ms: number | undefined) => (ms === undefined ? '?' : (ms / 1000).toFixed(2));
  const timing = `first console output ${seconds(result.firstOutputMs)} s, agent listening ${seconds(listeningMs === undefined ? undefined : listeningMs - startMs)} s, answer ${seconds(answerMs)} s`;
  return { result, answer, answerMs, timing };
}

describe('the agent hears the host', () => {
  it(
    'python3 answers print(6*7) with 42, and after an append, with the job variable',
    async () => {
      const fixture = await ensureDebianPythonImage();
      const kernel = await findKernel();
      const { dir: modules } = await kernelModulesDir(kernel);
      const base = join(dir, 'agent.cpio.lz4');
      const summary = await new InitramfsBuilder({
        image: fixture.ref,
        compression: 'lz4',
        kernelModules: modules,
        modules: ['net'],
        inject: [`${agent}:/usr/bin/agent`],
        entrypoint: '/usr/bin/agent',
        cmd: ['--interpreter', 'python3'],
      }).build(base);
      expect(summary.warnings).toEqual([]);
      expect(summary.command).toEqual(['/usr/bin/agent', '--interpreter', 'python3']);
      expect(summary.modules?.names).toContain('virtio_net');

      const first = await roundTrip(base, summary.recommendedMemoryMiB, 'print(6*7)');
      const out = first.result.output;
      expect(first.answer, out).toMatchObject({ stdout: '42\n', status: 0 });
      expect(first.result.stopped, out).toBe(true);
      expect(out).toMatch(/^irb: net: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2$/m);
      expect(out).not.toMatch(/^irb: module /m);
      // The guest's clock for the phases (kernel log time), beside the host's for the answer.
      const phases = [
        ...out.matchAll(/^(?:\[\s*(\d+\.\d+)\] Run \/init.*|irb: (init|modules|net|exec) (\d+\.\d+))$/gm),
      ]
        .map((m) => (m[2] ? `${m[2]} ${m[3]}` : `Run /init ${m[1]}`))
        .join(', ');
      console.log(
        `QEMU start → 42 (TCG, lz4, static init, load ${loadavg()[0]?.toFixed(1)}): ${first.timing}; guest clock: ${phases}`,
      );

      // A job on the cached base: its own variable, the base copied as is.
      const job = join(dir, 'job.cpio.lz4');
      const appended = await appendOverlay(base, [], { output: job, env: ['JOB=job-7'] });
      expect(await archiveConfig(job)).toMatchObject({
        entrypoint: ['/usr/bin/agent'],
        cmd: ['--interpreter', 'python3'],
        jobs: [{ path: appended.job, env: ['JOB=job-7'] }],
      });
      const second = await roundTrip(
        job,
        summary.recommendedMemoryMiB,
        'import os\nprint(os.environ["JOB"], 6*7)',
      );
      expect(second.answer, second.result.output).toMatchObject({ stdout: 'job-7 42\n', status: 0 });
      console.log(`with the job's member: ${second.timing}`);
    },
    BOOT,
  );
});
