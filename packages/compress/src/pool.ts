import { Worker } from 'node:worker_threads';
import { IrbError } from '@irb/errors';
import type { DeflateJob, DeflateResult } from './deflate-block.ts';

// The worker is a sibling module: `.ts` when running from source (vitest, Node type
// stripping), `.js` in the published build.
const workerUrl = new URL(
  import.meta.url.endsWith('.ts') ? './deflate-worker.ts' : './deflate-worker.js',
  import.meta.url,
);

interface Pending {
  resolve: (out: Uint8Array) => void;
  reject: (error: unknown) => void;
}

interface Slot {
  worker: Worker;
  /** Jobs posted to this worker and not answered yet, by id. */
  pending: Map<number, Pending>;
}

/**
 * A small pool of deflate workers owned by one compression stream. Jobs are posted to the
 * least busy worker right away, so a worker goes on to its next block without waiting for
 * the main thread. Workers start lazily (a one-block stream starts none), are unref'd
 * while they have nothing to do so they never keep the process alive, and end with `close`.
 */
export class DeflatePool {
  readonly #max: number;
  readonly #slots: Slot[] = [];
  #closed = false;
  #failure: unknown;

  constructor(maxWorkers: number) {
    this.#max = Math.max(1, maxWorkers);
  }

  /** Deflates a block on a worker. The job's data buffer is transferred (detached). */
  run(job: DeflateJob): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new Error('deflate pool is closed'));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    let slot = this.#slots.find((s) => s.pending.size === 0);
    if (slot === undefined && this.#slots.length < this.#max) slot = this.#spawn();
    slot ??= this.#slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const target = slot;
    return new Promise((resolve, reject) => {
      target.pending.set(job.id, { resolve, reject });
      target.worker.ref();
      target.worker.postMessage(job, [job.data.buffer as ArrayBuffer]);
    });
  }

  #spawn(): Slot {
    // A worker holds at most a few 256 KiB blocks; V8's default heap headroom per isolate
    // would otherwise add ~50 MiB of RSS per worker for nothing.
    const worker = new Worker(workerUrl, {
      name: 'irb-deflate',
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 },
    });
    const slot: Slot = { worker, pending: new Map() };
    this.#slots.push(slot);
    worker.on('message', (result: DeflateResult) => {
      const pending = slot.pending.get(result.id);
      slot.pending.delete(result.id);
      if (result.error !== undefined) {
        pending?.reject(new IrbError('IRB_GZIP_WORKER_FAILED', `gzip worker failed: ${result.error}`));
      } else pending?.resolve(result.out);
      if (slot.pending.size === 0) worker.unref();
    });
    const fail = (error: unknown): void => {
      if (this.#closed) return;
      this.#failure ??= new IrbError(
        'IRB_GZIP_WORKER_FAILED',
        `a gzip worker thread stopped: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
      for (const p of slot.pending.values()) p.reject(this.#failure);
      slot.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    return slot;
  }

  /** Stops every worker; pending jobs reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closed = new Error('deflate pool closed');
    for (const slot of this.#slots) for (const p of slot.pending.values()) p.reject(closed);
    const workers = this.#slots.map((s) => s.worker);
    this.#slots.length = 0;
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
