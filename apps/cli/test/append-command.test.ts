import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from '../src/commands/append.ts';
import { UsageError } from '../src/kit/usage.ts';
import { main } from '../src/main.ts';

const collector = () => {
  const chunks: Array<string | Uint8Array> = [];
  return { chunks, stream: { write: (c: string | Uint8Array) => chunks.push(c) } };
};

describe('irb append', () => {
  it('parses its flags and refuses mistakes with a usage error', () => {
    expect(parse(['base', '-o', 'out', '--inject', 'a:/a', '-c', 'zstd', '--level', '5'])).toEqual({
      base: 'base',
      output: 'out',
      inject: ['a:/a'],
      compression: 'zstd',
      level: 5,
      json: false,
      verbose: false,
      insecureRegistries: [],
      keychains: [],
      noCache: false,
    });
    expect(parse(['base', '-o', 'out', '--env', 'A=1', '--cache-dir', '/c'])).toMatchObject({
      cacheDir: '/c',
    });
    expect(parse(['base', '-o', 'out', '--env', 'A=1', '--no-cache'])).toMatchObject({ noCache: true });
    for (const argv of [
      ['base', '-o', 'x', '--env', 'A=1', '--cache-dir', '/c', '--no-cache'],
      ['base', '--inject', 'a:/a'],
      ['-o', 'x', '--inject', 'a:/a'],
      ['base', '-o', 'x'],
      ['b', '-o', 'x', '--init', 'i', '-c', 'xz'],
    ]) {
      expect(() => parse(argv)).toThrow(UsageError);
    }
  });

  it('appends to a CPIO archive GNU cpio wrote; GNU cpio reads the base and the member', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'irb-cli-append-'));
    try {
      await writeFile(join(dir, 'hello'), 'hello');
      const base = join(dir, 'base.cpio');
      execFileSync('sh', ['-c', `cd '${dir}' && echo hello | cpio -o -H newc --quiet > base.cpio`]);
      await writeFile(join(dir, 'agent'), 'agent B');
      const out = join(dir, 'out.cpio');
      const stdout = collector();
      const stderr = collector();
      const code = await main(
        ['append', base, '-o', out, '--inject', `${join(dir, 'agent')}:/agent`, '--json'],
        {
          stdout: stdout.stream,
          stderr: stderr.stream,
        },
      );
      expect(stderr.chunks.join('')).toBe('');
      expect(code).toBe(0);
      const summary = JSON.parse(stdout.chunks.join(''));
      expect(summary).toMatchObject({ output: out, compression: 'none', entries: 1 });
      // BASE's trailer and block padding are replaced by the member and a new trailer, so GNU cpio
      // reads on into the member; BASE's records are unchanged.
      const listed = execFileSync('sh', ['-c', `cpio -it --quiet < '${out}'`], { encoding: 'utf8' });
      expect(listed).toBe('hello\nagent\n');
      const bytes = await readFile(out);
      const records = (await readFile(base)).indexOf('TRAILER!!!') - 110;
      expect(records).toBeGreaterThan(0);
      expect(bytes.subarray(0, records).equals((await readFile(base)).subarray(0, records))).toBe(true);
      const ls = collector();
      expect(await main(['ls', out], { stdout: ls.stream, stderr: collector().stream })).toBe(0);
      expect(ls.chunks.join('')).toMatch(/agent/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("keeps BASE's tree in the cache --cache-dir names; with --no-cache it stores nothing", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'irb-cli-append-cache-'));
    const saved = process.env.IRB_CACHE_DIR;
    try {
      execFileSync('sh', [
        '-c',
        `cd '${dir}' && echo hello > hello && echo hello | cpio -o -H newc --quiet > base.cpio`,
      ]);
      const quiet = { stdout: collector().stream, stderr: collector().stream };
      const named = join(dir, 'named');
      const append = (out: string, ...flags: string[]) =>
        main(
          [
            'append',
            join(dir, 'base.cpio'),
            '-o',
            join(dir, out),
            '--inject',
            `${join(dir, 'hello')}:/job/hello`,
            ...flags,
          ],
          quiet,
        );
      expect(await append('a.cpio', '--cache-dir', named)).toBe(0);
      const stored = (await readdir(join(named, 'output'))).map((n) => n.slice(65)).sort();
      expect(stored).toEqual(['aid', 'atree']);
      // The default cache is another empty directory here: --no-cache leaves it untouched.
      process.env.IRB_CACHE_DIR = join(dir, 'default');
      expect(await append('b.cpio', '--no-cache')).toBe(0);
      await expect(readdir(join(dir, 'default'))).rejects.toThrow(/ENOENT/);
      expect(await readFile(join(dir, 'b.cpio'))).toEqual(await readFile(join(dir, 'a.cpio')));
    } finally {
      if (saved === undefined) delete process.env.IRB_CACHE_DIR;
      else process.env.IRB_CACHE_DIR = saved;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
