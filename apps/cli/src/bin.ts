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
// an unwritable directory only means no cache.
import('node:module')
  .then((mod) => {
    if (process.env.NODE_COMPILE_CACHE || process.env.NODE_DISABLE_COMPILE_CACHE) return;
    const home = process.env.HOME || '/tmp';
    const base = process.env.XDG_CACHE_HOME || `${home}/.cache`;
    if (typeof mod.enableCompileCache === 'function') mod.enableCompileCache(`${base}/irb/compile-cache`);
  })
  .catch(() => {})
  .then(() => import('./run.ts'))
  .catch((error) => {
    process.stderr.write(`irb: error: cannot start: ${error instanceof Error ? error.message : error}\n`);
    process.exit(1);
  });
