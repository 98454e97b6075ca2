// A second process using a cache, for the store's tests (leases, killed writers).
//   lease ROOT NAME…   lease the names, print "ready", wait for a line on stdin, release, print "released"
//   temp DIR NAME      create a temp file of this process in DIR, print its path, hang (to be killed)
//   token              print this process's token, hang (to be killed)
import { writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Leases } from '../src/lock.ts';
import { processToken } from '../src/owner.ts';
import { tempPath } from '../src/temp.ts';

const [mode, ...rest] = process.argv.slice(2) as [string, ...string[]];
const hang = () => {
  setInterval(() => {}, 60_000);
  return new Promise(() => {});
};

if (mode === 'lease') {
  const [root, ...names] = rest as [string, ...string[]];
  const leases = new Leases(root);
  for (const name of names) await leases.add(name);
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => {
    const lines = createInterface({ input: process.stdin });
    lines.once('line', () => {
      lines.close();
      process.stdin.destroy();
      resolve();
    });
  });
  await leases.release();
  process.stdout.write('released\n');
} else if (mode === 'temp') {
  const path = tempPath(rest[0] as string, rest[1] as string);
  await writeFile(path, 'written by a process that will be killed');
  process.stdout.write(`${path}\n`);
  await hang();
} else if (mode === 'token') {
  process.stdout.write(`${processToken()}\n`);
  await hang();
}
