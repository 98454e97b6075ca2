#!/usr/bin/env node
// The entry point. It must parse and run on any Node, old ones included: no type annotations,
// no static imports, no syntax newer than ES2020. Everything else is imported only once the
// version is known to be enough; an old Node would otherwise die with a stack trace from deep
// inside a dependency before irb could say a word.

/** Keep equal to `engines.node` in package.json (a test compares them). */
const MINIMUM = '22.19';

const [needMajor = 0, needMinor = 0] = MINIMUM.split('.').map(Number);
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < needMajor || (major === needMajor && minor < needMinor)) {
  process.stderr.write(
    `irb needs Node >= ${MINIMUM}, found v${process.versions.node}; install Node ${MINIMUM} or newer ` +
      `(https://nodejs.org/en/download, or "nvm install 24") and run irb with it\n`,
  );
  process.exit(1);
}
// Node's on-disk compile cache (22.1+): later runs skip compiling irb and its dependencies, which
// is most of a cache hit's start-up. Beside irb's other caches; NODE_COMPILE_CACHE still wins, and
// a directory that cannot be made only means no cache.
Promise.all([import('node:module'), import('node:fs')])
  .then(([mod, fs]) => {
    if (process.env.NODE_COMPILE_CACHE || process.env.NODE_DISABLE_COMPILE_CACHE) return;
    if (typeof mod.enableCompileCache !== 'function') return;
    const home = process.env.HOME || '/tmp';
    const dir = `${process.env.XDG_CACHE_HOME || `${home}/.cache`}/irb/compile-cache`;
    if (!dir.startsWith('/')) return;
    // One component at a time (0700, as irb's other cache directories), giving up at the first
    // that cannot be made: where a parent cannot be made inside /proc (HOME=/proc/1/x), Node's
    // recursive mkdir, also inside enableCompileCache, retries forever.
    const parts = dir.split('/');
    for (let i = 2; i <= parts.length; i++) {
      const path = parts.slice(0, i).join('/');
      if (fs.existsSync(path)) continue;
      try {
        fs.mkdirSync(path, 0o700);
      } catch {
        if (!fs.existsSync(path)) return;
      }
    }
    if (fs.statSync(dir).isDirectory()) mod.enableCompileCache(dir);
  })
  .catch(() => {})
  .then(() => import('./run.ts'))
  .catch((error) => {
    process.stderr.write(`irb: error: cannot start: ${error instanceof Error ? error.message : error}\n`);
    process.exit(1);
  });
