import { Worker } from 'node:worker_threads';
import { IrbError } from '@irb/cpio';
import type { DeflateJob, DeflateResult } from './deflate-block.ts';

// The worker is a sibling module: `.ts` when running from source (vitest, Node type
// stripping), `.js` in the published build.
const workerUrl = new URL(
  import.meta.url.endsWith('.ts') ? './deflate-worker.ts' : './deflate-worker.js',
  import.meta.url,
);

interface Pending {
  job: DeflateJob;
  resolve: (out: Uint8Array) => void;
  reject: (error: unknown) => void;
}

/**
 * A small pool of deflate workers owned by one compression stream. Workers start lazily
 * (a one-block stream starts none), are unref'd while idle so they never keep the process
 * alive, and end with `close`.
 */
export class DeflatePool {
  readonly #max: number;
  readonly #idle: Worker[] = [];
  readonly #busy = new Map<Worker, Pending>();
  readonly #queue: Pending[] = [];
  #closed = false;
  #failure: unknown;

  constructor(maxWorkers: number) {
    this.#max = Math.max(1, maxWorkers);
  }

  /** Deflates a block on a worker. The job's data buffer is transferred (detached). */
  run(job: DeflateJob): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new Error('deflate pool is closed'));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#queue.push({ job, resolve, reject });
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let worker = this.#idle.pop();
      if (worker === undefined) {
        if (this.#busy.size >= this.#max) return;
        worker = this.#spawn();
      }
      const pending = this.#queue.shift()!;
      this.#busy.set(worker, pending);
      worker.ref();
      const { job } = pending;
      const transfer = [job.data.buffer as ArrayBuffer];
      worker.postMessage(job, transfer);
    }
  }

  #spawn(): Worker {
    const worker = new Worker(workerUrl, { name: 'irb-deflate' });
    worker.on('message', (result: DeflateResult) => {
      const pending = this.#busy.get(worker);
      this.#busy.delete(worker);
      if (result.error !== undefined) {
        pending?.reject(new IrbError('IRB_GZIP_WORKER', `gzip worker failed: ${result.error}`));
      } else pending?.resolve(result.out);
      if (this.#closed) return;
      worker.unref();
      this.#idle.push(worker);
      this.#dispatch();
    });
    const fail = (error: unknown): void => {
      if (this.#closed) return;
      this.#failure = new IrbError(
        'IRB_GZIP_WORKER',
        `a gzip worker thread stopped: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
      this.#busy.get(worker)?.reject(this.#failure);
      this.#busy.delete(worker);
      for (const p of this.#queue.splice(0)) p.reject(this.#failure);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    return worker;
  }

  /** Stops every worker; pending jobs reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closed = new Error('deflate pool closed');
    for (const p of this.#queue.splice(0)) p.reject(closed);
    for (const p of this.#busy.values()) p.reject(closed);
    const workers = [...this.#idle, ...this.#busy.keys()];
    this.#idle.length = 0;
    this.#busy.clear();
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
