import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
    });
    for (const argv of [
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
});
