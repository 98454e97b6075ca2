// A build that stops dead once its members are being written to the output cache, to be killed
// with SIGKILL by the test (cache-integrity.test.ts): what a kill -9 mid-build leaves behind.
//   node killed-build-child.ts IMAGE CACHE_DIR OUTPUT
import { InitramfsBuilder } from '../src/index.ts';

const [image, cacheDir, output] = process.argv.slice(2) as [string, string, string];
let compressed = 0;
await new InitramfsBuilder({
  image,
  cacheDir,
  compression: 'zstd',
  onProgress: (event) => {
    // The first chunk opened the cache entry's temp file; by the next one it holds bytes.
    if (event.type !== 'compress' || ++compressed < 3) return;
    process.stdout.write('writing\n');
    // Block this thread for good, mid-build, the way a kill finds a process.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  },
}).build(output);
