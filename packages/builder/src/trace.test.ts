import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathFilter, readKeepOnly } from './filter.ts';
import { parseTraceOutput } from './trace.ts';

const hex = (s: string | Uint8Array) => Buffer.from(s).toString('hex');

describe('parseTraceOutput', () => {
  it('puts back together a trace line that a kernel message cut in two', () => {
    const path = hex('/usr/lib/x86_64-linux-gnu/libc.so.6');
    const console = [
      'irb-trace: begin',
      `irb-trace: f ${path.slice(0, 20)}[   12.345678] clocksource: timekeeping watchdog on CPU0: Marking clocksource 'tsc' as unstable`,
      `${path.slice(20)}`,
      '[   12.400000] clocksource: Switched to clocksource hpet',
      `irb-trace: l ${hex('/lib')}`,
      'irb-trace: end 2',
    ].join('\r\n');
    expect(parseTraceOutput(console)).toEqual({
      files: ['/usr/lib/x86_64-linux-gnu/libc.so.6'],
      directories: [],
      symlinks: ['/lib'],
      other: [],
    });
  });

  it('reads the trace lines between begin and end, text or hex paths, around program output', () => {
    const console = [
      '[    1.0] Run /init as init process',
      'irb-trace: begin',
      `irb-trace: f ${hex('/usr/bin/python3.11')}`,
      'the program printed this late',
      `irb-trace: l ${hex('/lib')}`,
      `irb-trace: d ${hex('/usr/lib/python3.11')}`,
      `irb-trace: f ${hex(new Uint8Array([0x2f, 0x66, 0xff]))}`,
      'irb-trace: end 4',
      'irb: exit status 0',
    ].join('\n');
    expect(parseTraceOutput(console)).toEqual({
      files: ['/usr/bin/python3.11', 'hex:2f66ff'],
      directories: ['/usr/lib/python3.11'],
      symlinks: ['/lib'],
      other: [],
    });
  });

  it('refuses a trace that never ended or lost lines', () => {
    expect(() => parseTraceOutput('irb-trace: begin\n')).toThrow(/ended before the init listed/);
    expect(() => parseTraceOutput(`irb-trace: begin\nirb-trace: f ${hex('/a')}\nirb-trace: end 2\n`)).toThrow(
      /lists 1 paths but the init counted 2/,
    );
  });
});

describe('keepOnly and slim filters', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-filter-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const entry = (path: string | Uint8Array, type: 'file' | 'directory' | 'symlink' = 'file') => {
    const bytes = typeof path === 'string' ? Buffer.from(path.slice(1)) : path;
    return { path: typeof path === 'string' ? path : `/${Buffer.from(path).toString()}`, bytes, type };
  };

  it('keeps traced paths (merged), files in listed directories, passwd/group and keep globs', async () => {
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    const trace = (files: string[], directories: string[] = []) =>
      JSON.stringify({
        irbTrace: 1,
        manifestDigest: 'sha256:x',
        files,
        directories,
        symlinks: [],
        other: [],
      });
    await writeFile(a, trace(['/usr/bin/app', 'hex:2f64ff'], ['/usr/lib/py']));
    await writeFile(b, trace(['/etc/app.conf']));
    const set = await readKeepOnly([a, b]);
    const keep = pathFilter({ slim: [], keepOnly: set, keep: ['/usr/share/app/**'], env: [] });
    expect(keep).toBeDefined();
    const k = keep as NonNullable<typeof keep>;
    expect(k(entry('/usr/bin/app'))).toBe(true);
    expect(k(entry('/etc/app.conf'))).toBe(true);
    expect(k(entry(new Uint8Array([0x64, 0xff])))).toBe(true);
    expect(k(entry('/usr/bin/other'))).toBe(false);
    expect(k(entry('/usr/lib/py/os.py'))).toBe(true);
    expect(k(entry('/usr/lib/py/sub', 'directory'))).toBe(false);
    expect(k(entry('/usr/lib/py/sub/x.py'))).toBe(false);
    expect(k(entry('/etc/passwd'))).toBe(true);
    expect(k(entry('/usr/share/app/data/x'))).toBe(true);
    expect(set.manifestDigests).toEqual(['sha256:x', 'sha256:x']);
  });

  it('slim alone filters by preset; nothing to filter gives no filter', () => {
    expect(pathFilter({ slim: [], keep: [], env: [] })).toBeUndefined();
    const keep = pathFilter({ slim: ['docs'], keep: [], env: [] }) as NonNullable<
      ReturnType<typeof pathFilter>
    >;
    expect(keep(entry('/usr/share/man/man1/ls.1.gz'))).toBe(false);
    expect(keep(entry('/usr/bin/ls'))).toBe(true);
  });

  it('says clearly what is wrong with a trace file', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"files": []}');
    await expect(readKeepOnly([bad])).rejects.toMatchObject({
      code: 'IRB_OPTION_INVALID',
      message: expect.stringMatching(/is not an irb trace/),
    });
    await expect(readKeepOnly([join(dir, 'missing.json')])).rejects.toMatchObject({
      code: 'IRB_INPUT_UNREADABLE',
    });
    await writeFile(bad, 'not json');
    await expect(readKeepOnly([bad])).rejects.toMatchObject({
      message: expect.stringMatching(/is not JSON/),
    });
  });
});
