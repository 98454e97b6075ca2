import { describe, expect, it } from 'vitest';
import { main } from './main.ts';

/** Runs irb in this process; what it printed on each stream and its exit code. */
async function irb(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: { write: (t) => (stdout += String(t)) },
    stderr: { write: (t) => (stderr += String(t)) },
  });
  return { code, stdout, stderr };
}

describe('irb errors', () => {
  it('exits 2 for a bad value, whether the CLI or the library refused it', async () => {
    const reference = await irb(['build', 'Kit/Entry:v1', '-q']);
    expect(reference).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'irb: error: invalid image reference "Kit/Entry:v1": repository names must be lowercase; did you mean "kit/entry:v1"?\n',
    });
    const missing = await irb(['ls', '/nonexistent/x.cpio']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^irb: error: .*\/nonexistent\/x\.cpio.*\n$/);
    expect(await irb(['cache'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'irb: error: missing the action: ls, prune, clear or path; see "irb cache --help"\n',
    });
  });

  it('with --json, an error is a JSON document on the stream the report would have used', async () => {
    const failed = await irb(['build', 'Kit/Entry:v1', '-q', '--json']);
    expect(failed.code).toBe(2);
    expect(failed.stderr).toBe('');
    expect(JSON.parse(failed.stdout)).toEqual({
      error: {
        code: 'IRB_REFERENCE_INVALID',
        message:
          'invalid image reference "Kit/Entry:v1": repository names must be lowercase; did you mean "kit/entry:v1"?',
      },
    });
    // With the archive on stdout, the report (and so the error) goes to stderr.
    const piped = await irb(['build', 'Kit/Entry:v1', '-o', '-', '--json']);
    expect(piped.stdout).toBe('');
    expect(JSON.parse(piped.stderr).error.code).toBe('IRB_REFERENCE_INVALID');
    // A usage error too, also when the arguments could not be read.
    const usage = await irb(['build', '--json', '--frobnicate']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stdout)).toEqual({
      error: {
        code: 'IRB_COMMAND_LINE_INVALID',
        message: 'unknown option "--frobnicate"; see "irb build --help"',
      },
    });
    const ls = await irb(['ls', '/nonexistent/x.cpio', '--json']);
    expect(ls.code).toBe(2);
    expect(JSON.parse(ls.stdout).error.code).toBe('IRB_INPUT_UNREADABLE');
  });
});
