import { IrbError } from '@irb/builder';
import { describe, expect, it } from 'vitest';
import { UsageError } from './args.ts';
import { describeError } from './errors.ts';

describe('describeError', () => {
  it('maps usage errors to exit 2 with a pointer to --help', () => {
    expect(describeError(new UsageError('missing IMAGE', 'build'), false)).toEqual({
      lines: ['irb: error: missing IMAGE; see "irb build --help"'],
      code: 2,
    });
  });

  it('prints an IrbError as one line, and the code and causes only with --verbose', () => {
    const root = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const error = new IrbError('IRB_REGISTRY_UNREACHABLE', 'cannot reach registry x; check the name', {
      cause: root,
    });
    expect(describeError(error, false)).toEqual({
      lines: ['irb: error: cannot reach registry x; check the name'],
      code: 1,
    });
    expect(describeError(error, true).lines).toEqual([
      'irb: error: cannot reach registry x; check the name',
      '  code: IRB_REGISTRY_UNREACHABLE',
      '  caused by: [ECONNREFUSED] connect ECONNREFUSED',
    ]);
  });

  it('keeps stack traces of unexpected errors behind --verbose', () => {
    const bug = new TypeError('x is not a function');
    const quiet = describeError(bug, false);
    expect(quiet.lines).toEqual([
      'irb: error: unexpected failure: x is not a function; rerun with --verbose and report it',
    ]);
    expect(describeError(bug, true).lines.join('\n')).toContain('at ');
  });

  it('reports an interrupt with exit 130', () => {
    const abort = Object.assign(new Error('interrupted by SIGINT'), { name: 'AbortError' });
    expect(describeError(abort, false, 'build')).toEqual({
      lines: ['irb: interrupted; nothing was written'],
      code: 130,
    });
    expect(describeError(abort, false, 'boot').lines).toEqual(['irb: interrupted']);
  });
});
