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
// is most of a cache hit's start-up. It lives in irb's cache directory, so --cache-dir counts
// from here on: the directory named before `--` (what follows is the guest kernel's) becomes
// IRB_CACHE_DIR for this process, and the KVM probe's answer follows it too. --no-cache means
// no cache at all; NODE_COMPILE_CACHE or NODE_DISABLE_COMPILE_CACHE still win.
const own = process.argv.slice(2);
const end = own.indexOf('--');
const words = end < 0 ? own : own.slice(0, end);
let cacheDir = process.env.IRB_CACHE_DIR;
words.forEach((word, i) => {
  if (word === '--cache-dir') cacheDir = words[i + 1];
  else if (word.startsWith('--cache-dir=')) cacheDir = word.slice('--cache-dir='.length);
});
if (cacheDir) process.env.IRB_CACHE_DIR = cacheDir;
const compileCache =
  words.includes('--no-cache') || process.env.NODE_COMPILE_CACHE || process.env.NODE_DISABLE_COMPILE_CACHE
    ? Promise.resolve()
    : Promise.all([import('node:module'), import('@irb/builder/paths')]).then(([mod, paths]) => {
        if (typeof mod.enableCompileCache !== 'function') return;
        // undefined where the directory cannot be made (HOME=/proc/1/x, where Node's own recursive
        // mkdir inside enableCompileCache would retry forever): run without one.
        return paths.compileCacheDirectory().then((dir) => {
          if (dir) mod.enableCompileCache(dir);
        });
      });
compileCache
  .catch(() => {})
  .then(() => import('./run.ts'))
  .catch((error) => {
    process.stderr.write(`irb: error: cannot start: ${error instanceof Error ? error.message : error}\n`);
    process.exit(1);
  });
