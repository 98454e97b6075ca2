// Fetches one manifest (and, with `--blob`, its config blob) in a fresh process and reports
// which modules that loaded. Used by the "a manifest fetch loads no undici" test and by
// bench/import.ts. Module loads are seen through `module.registerHooks`, which sees both
// `import` and `require` (undici is CommonJS today; an ESM undici would be seen too).
//
// Usage: node [--conditions=@irb/source] test/manifest-child.ts ENTRY REF [--blob]
//   ENTRY: the module to import (src/index.ts or dist/index.js), REF: an image reference.
// Prints one JSON line: { digest, undici, bundledUndici, importMs, fetchMs, modules }.
import { registerHooks } from 'node:module';
import { pathToFileURL } from 'node:url';

const loaded: string[] = [];
registerHooks({
  load(url, context, nextLoad) {
    loaded.push(url);
    return nextLoad(url, context);
  },
});

const [entry, ref, flag] = process.argv.slice(2) as [string, string, string | undefined];
const start = performance.now();
const registry = (await import(pathToFileURL(entry).href)) as typeof import('../src/index.ts');
const imported = performance.now();
const client = registry.createRegistryClient({ cache: false, retry: { retries: 1, baseDelayMs: 5 } });
try {
  const manifest = await client.manifest(ref);
  if (flag === '--blob') {
    const parsed = JSON.parse(new TextDecoder().decode(manifest.bytes)) as {
      config: { digest: string; size: number; mediaType: string };
    };
    await client.blobBytes(ref, parsed.config);
  }
  const done = performance.now();
  const bundled = (process as { moduleLoadList?: string[] }).moduleLoadList;
  process.stdout.write(
    `${JSON.stringify({
      digest: manifest.digest,
      undici: loaded.some((url) => /[\\/]undici[\\/]/.test(url)),
      // Node's own copy (behind fetch, WebSocket, and the getters an ESM import of node:http
      // reads), seen in the undocumented `process.moduleLoadList`: `null` if a Node lacks it.
      bundledUndici: bundled ? bundled.some((name) => name.includes('internal/deps/undici')) : null,
      importMs: imported - start,
      fetchMs: done - imported,
      modules: loaded.length,
    })}\n`,
  );
} finally {
  await client.close();
}
