import { constants } from 'node:os';
import { main } from './main.ts';

// Loaded by bin.ts once the Node version is known to be enough.

// V8 grows the young generation up to 32–64 MiB during a build (the layer index keeps many small
// objects alive, so scavenges look worthwhile), while the heap in use stays near 20 MiB. Keeping it
// at its starting size costs no measurable CPU and keeps a cold build of an 830 MB image under
// 256 MiB of peak RSS (scripts/bench.ts). Set here, not in the library: it is process-wide. Set
// only once the command has loaded the library: a changed flag makes V8 refuse Node's built-in
// code cache, so every Node module loaded after it is compiled from source (an unchanged rebuild
// paid 7% more CPU, `irb --help` a third more).
//
// V8 adds the ArrayBuffer bytes allocated since the last full collection to the old generation's
// size when it decides whether to start one (not to its global limit, the default). A build's heap
// is small (10–15 MiB: its limit sits ~12 MiB higher) while ~600 MB of decompressed chunks, blob
// reads and spool blocks pass through buffers, so every ~12 MiB of them started a full
// mark-compact of the whole heap: 40–50 per cold build of the Debian + python3 image, ~1 s of GC
// threads' CPU. Counted against the global limit instead, 5–10 remain (the young collections free
// most of those buffers anyway): 13 % less CPU for that build, 12 % for the rustc/cargo image,
// whose peak RSS stays under 256 MiB (234 MiB, zstd). Settable at run time, unlike
// --initial-old-space-size, which NODE_OPTIONS refuses too.
//
// `node:v8` is taken only then (2–3 ms to load, which a cache hit does not need).
const beforeWork = () => {
  const { setFlagsFromString } = process.getBuiltinModule('node:v8');
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString('--external-memory-accounted-in-global-limit');
};

// `pnpm irb …` runs in the repository root; relative paths should mean what the user typed them against.
if (process.env.npm_lifecycle_event === 'irb' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);

const controller = new AbortController();
let interrupts = 0;
const onSignal = (signal: NodeJS.Signals) => {
  // The first signal aborts the work so it can remove its temporary file and stop QEMU; a second
  // one forces the exit. Either way the exit code is 128 + the signal number, as shells report it.
  if (++interrupts > 1) process.exit(128 + constants.signals[signal]);
  controller.abort(Object.assign(new Error(`interrupted by ${signal}`), { name: 'AbortError', signal }));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// `irb ls ARCHIVE | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

process.exitCode = await main(
  process.argv.slice(2),
  { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, beforeWork },
  controller.signal,
);
