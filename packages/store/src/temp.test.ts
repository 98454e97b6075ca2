import { existsSync } from 'node:fs';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { child, tempDir } from '../test/helpers.ts';
import {
  cacheLayout,
  isStaleTemp,
  processToken,
  removeStaleTemps,
  sweepTemps,
  tempName,
  tempPath,
} from './index.ts';
import { tempNameOwner } from './temp.ts';

const twoDaysAgo = () => new Date(Date.now() - 2 * 24 * 3600 * 1000);

describe('temp names', () => {
  it('are spelled one way, carry their writer, and are unique', () => {
    const name = tempName('out.cpio.gz');
    expect(name).toMatch(new RegExp(`^\\.out\\.cpio\\.gz\\.irb-${processToken()}\\.[0-9a-f]{12}\\.irb-tmp$`));
    expect(tempName('out.cpio.gz')).not.toBe(name);
    expect(tempNameOwner(name)).toEqual({ owner: processToken() });
    expect(dirname(tempPath('/c/tmp', 'x'))).toBe('/c/tmp');
    expect(isStaleTemp(name)).toBe(false);
    // A user's file that looks like an old cache temp name is no temp file outside the cache.
    expect(tempNameOwner('notes.123.ab.tmp')).toBeUndefined();
    expect(tempNameOwner('notes.123.ab.tmp', { cache: true })).toEqual({ owner: '123' });
  });

  it('tells a reused pid from the writer by its start time, and leaves unknown names alone', async () => {
    const sub = await tempDir();
    const mine = tempName('x');
    // This process's pid with another start time: the pid was reused, the writer is gone.
    const reused = mine.replace(
      /\.irb-(\d+)-(\d+)-/,
      (_m, pid, start) => `.irb-${pid}-${Number(start) + 1}-`,
    );
    // Another pid namespace: cannot be judged from here, so it stays (for a day).
    const elsewhere = mine.replace(
      /-(\d+)\.([0-9a-f]+)\.irb-tmp$/,
      (_m, ns, hex) => `-${Number(ns) + 1}.${hex}.irb-tmp`,
    );
    // Names from before temp files carried their writer: removed only once untouched for a day.
    const legacyFresh = '.x.0123456789ab.irb-tmp';
    const legacyOld = '.y.0123456789ab.irb-tmp';
    for (const name of [mine, reused, elsewhere, legacyFresh, legacyOld, 'plain-file', 'user.1.ab.tmp']) {
      await writeFile(join(sub, name), '');
    }
    await utimes(join(sub, legacyOld), twoDaysAgo(), twoDaysAgo());
    await utimes(join(sub, 'user.1.ab.tmp'), twoDaysAgo(), twoDaysAgo());
    expect((await removeStaleTemps(sub)).sort()).toEqual([legacyOld, reused].sort());
    expect((await readdir(sub)).sort()).toEqual(
      [mine, elsewhere, legacyFresh, 'plain-file', 'user.1.ab.tmp'].sort(),
    );
  });
});

describe('sweeping the temp areas', () => {
  it('removes the files of a SIGKILLed writer, never those of a live one', async () => {
    const layout = cacheLayout(await tempDir());
    await mkdir(layout.spool, { recursive: true });
    await mkdir(layout.tmp, { recursive: true });
    const killed = child('temp', layout.spool, 'spool-0123456789abcdef');
    const killedPath = await killed.next();
    const live = child('temp', layout.tmp, 'blob');
    const livePath = await live.next();
    await killed.kill();
    // A SIGKILLed process cleans nothing: its file is still there.
    expect(existsSync(killedPath)).toBe(true);
    expect(await sweepTemps(layout.root)).toBe(1);
    expect(await readdir(layout.spool)).toEqual([]);
    expect(await readdir(layout.tmp)).toEqual([basename(livePath)]);
    await live.kill();
    expect(await sweepTemps(layout.root)).toBe(1);
    expect(await readdir(layout.tmp)).toEqual([]);
  });

  it('knows the names earlier versions gave partial downloads and entries (bare pid or token)', async () => {
    const layout = cacheLayout(await tempDir());
    await mkdir(layout.tmp, { recursive: true });
    const ended = child('token');
    const token = await ended.next();
    await ended.kill();
    const [pid, start, ns] = processToken().split('-') as [string, string, string];
    const names = {
      gonePid: `0123456789abcdef.${token.split('-')[0]}.aabbccddeeff.partial`,
      goneToken: `sha256-ab.0123456789abcdef.idx.${token}.aabbccddeeff.tmp`,
      mine: `0123456789abcdef.${process.pid}.aabbccddeeff.partial`,
      foreign: `0123456789abcdef.${pid}-${start}-${Number(ns) + 1}.aabbccddeeff.partial`,
      foreignOld: `0123456789abcdef.${pid}-${start}-${Number(ns) + 1}.001122334455.partial`,
    };
    for (const name of Object.values(names)) await writeFile(join(layout.tmp, name), 'x');
    await utimes(join(layout.tmp, names.foreignOld), twoDaysAgo(), twoDaysAgo());
    await sweepTemps(layout.root);
    const left = await readdir(layout.tmp);
    expect(left).toContain(names.mine);
    expect(left).not.toContain(names.gonePid);
    expect(left).not.toContain(names.goneToken);
    expect(left).not.toContain(names.foreignOld);
    // Another pid namespace cannot be judged from here: a fresh file stays.
    if (existsSync('/proc/self/ns/pid')) expect(left.sort()).toEqual([names.foreign, names.mine].sort());
  });
});
