import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './harness.ts';

const bytes = (...parts: Array<string | number[]>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

/** The name column of `bsdtar -tv` and `irb ls` lines (link targets and "link to" included). */
const bsdtarName = /^\S+\s+\d+\s+\S+\s+\S+\s+\d+ \w{3} [ \d]\d +(?:\d\d:\d\d|\d{4}) (.*)$/;
const irbName = /^\S+\s+\d+ \S+\s+\S+\s+\S+(?:, \S+)? \d{4}-\d\d-\d\d \d\d:\d\d (.*)$/;

describe('irb ls: names as data', () => {
  let dir: string;
  let archive: string;
  const latin1 = bytes('caf', [0xe9]);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'irb-cli-ls-'));
    const root = join(dir, 'root');
    mkdirSync(join(root, 'd'), { recursive: true });
    const at = (name: Buffer | string) => Buffer.concat([Buffer.from(`${root}/`), Buffer.from(name)]);
    writeFileSync(at('we\nird'), 'x');
    writeFileSync(at('esc\u001b[31mred'), 'y');
    writeFileSync(at('back\\slash'), 'z');
    writeFileSync(at(latin1), 'latin-1');
    writeFileSync(at('d/a'), 'hi\n');
    linkSync(at('d/a'), at('d/b'));
    linkSync(at('d/a'), at('c'));
    symlinkSync(latin1, at('to-latin1'));
    archive = join(dir, 'names.cpio');
    // GNU cpio writes what the file system holds, byte for byte.
    execFileSync('sh', [
      '-c',
      `cd '${root}' && find . -print0 | LC_ALL=C sort -z | cpio -o -0 -H newc --quiet > '${archive}'`,
    ]);
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints names, link targets and hard links exactly as bsdtar -tv does, one line each', async () => {
    const listed = await runCli(['ls', archive]);
    expect(listed.code, listed.stderr).toBe(0);
    const ours = listed.stdout.trimEnd().split('\n');
    const theirs = execFileSync('bsdtar', ['-tvf', archive], { encoding: 'latin1' }).trimEnd().split('\n');
    expect(ours).toHaveLength(theirs.length);
    expect(ours.map((l) => irbName.exec(l)?.[1])).toEqual(theirs.map((l) => bsdtarName.exec(l)?.[1]));
    // No raw control byte reaches the terminal.
    expect(listed.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    expect(ours.some((l) => l.endsWith(' we\\nird'))).toBe(true);
    expect(ours.filter((l) => l.includes(' link to '))).toHaveLength(2);
  });

  it('--json carries names that are not UTF-8 exactly, and counts members as the text does', async () => {
    const listed = await runCli(['ls', archive, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const entries = listed.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(new Set(entries.map((e) => e.member))).toEqual(new Set([1]));
    const cafe = entries.find((e) => e.nameBytes !== undefined)!;
    expect(Buffer.from(cafe.nameBytes as string, 'base64')).toEqual(latin1);
    const link = entries.find((e) => e.type === 'symlink')!;
    expect(Buffer.from(link.targetBytes as string, 'base64')).toEqual(latin1);
    // Valid UTF-8 needs no bytes beside it.
    expect(entries.find((e) => e.name === 'we\nird')).not.toHaveProperty('nameBytes');
    const linked = entries.filter((e) => e.hardlink !== undefined);
    expect(linked).toHaveLength(2);
    const first = entries.find((e) => e.ino === linked[0]!.ino)!;
    expect(first.hardlink).toBeUndefined();
    for (const e of linked) expect(e.hardlink).toBe(first.name);
  });
});
