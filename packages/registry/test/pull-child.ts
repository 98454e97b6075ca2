// Pulls an image into a cache from a separate process (used by the two-process cache test).
import { createRegistryClient } from '../src/index.ts';

const [ref, dir] = process.argv.slice(2) as [string, string];
const client = createRegistryClient({ cacheDir: dir, retry: { retries: 3, baseDelayMs: 10 } });
try {
  const image = await client.image(ref);
  await image.prefetch();
  let bytes = 0;
  for (const layer of await image.layers()) for await (const chunk of layer.open()) bytes += chunk.byteLength;
  process.stdout.write(`${await image.digest()} ${bytes}\n`);
} finally {
  await client.close();
}
