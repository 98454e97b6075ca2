// Worker side of the parallel gzip: deflates one block at a time, primed with the
// previous block's tail as dictionary.
import { parentPort } from 'node:worker_threads';
import { type DeflateJob, type DeflateResult, deflateBlockSync } from './deflate-block.ts';

parentPort!.on('message', (job: DeflateJob) => {
  let result: DeflateResult;
  try {
    let out = deflateBlockSync(job);
    // Small zlib results can sit in Node's shared allocation pool; transferring that
    // ArrayBuffer would detach unrelated buffers, so hand over a private copy instead.
    if (out.byteOffset !== 0 || out.byteLength !== out.buffer.byteLength) out = out.slice();
    result = { id: job.id, out };
    parentPort!.postMessage(result, [out.buffer as ArrayBuffer]);
  } catch (error) {
    result = { id: job.id, error: error instanceof Error ? error.message : String(error) };
    parentPort!.postMessage(result);
  }
});
