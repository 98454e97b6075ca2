#!/usr/bin/env node
import { main } from './cli.ts';

// `pnpm irb …` runs in the repository root; relative paths should mean what the user typed them against.
if (process.env.npm_lifecycle_event === 'irb' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);

const controller = new AbortController();
let interrupts = 0;
const onSignal = (signal: NodeJS.Signals) => {
  // The first signal aborts the build so it can remove its temporary file; a second one forces the exit.
  if (++interrupts > 1) process.exit(130);
  controller.abort(Object.assign(new Error(`interrupted by ${signal}`), { name: 'AbortError' }));
};
process.on('SIGINT', onSignal);
// `irb ls ARCHIVE | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}
process.on('SIGTERM', onSignal);

process.exitCode = await main(
  process.argv.slice(2),
  { stdout: process.stdout, stderr: process.stderr },
  controller.signal,
);
