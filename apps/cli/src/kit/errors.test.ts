import { IrbError } from '@irb/builder';
import { describe, expect, it } from 'vitest';
import { describeError, OPTION_FLAGS } from './errors.ts';
import { UsageError } from './usage.ts';

describe('describeError', () => {
  it('maps usage errors to exit 2 with a pointer to --help', () => {
    expect(describeError(new UsageError('missing IMAGE'), false, 'build')).toEqual({
      lines: ['irb: error: missing IMAGE; see "irb build --help"'],
      exit: 2,
      code: 'IRB_COMMAND_LINE_INVALID',
      message: 'missing IMAGE; see "irb build --help"',
    });
  });

  it('prints an IrbError as one line, and the code and causes only with --verbose', () => {
    const root = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const error = new IrbError('IRB_REGISTRY_UNREACHABLE', 'cannot reach registry x; check the name', {
      cause: root,
    });
    expect(describeError(error, false)).toEqual({
      lines: ['irb: error: cannot reach registry x; check the name'],
      exit: 1,
      code: 'IRB_REGISTRY_UNREACHABLE',
      message: 'cannot reach registry x; check the name',
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
    expect(quiet).toMatchObject({ exit: 1, code: 'IRB_INTERNAL_FAILURE' });
    expect(describeError(bug, true).lines.join('\n')).toContain('at ');
  });

  it('names CLI flags where the library names options, from one table', () => {
    const cases: Array<[string, string]> = [
      [
        'the image has its own /init and `keepImageInit` was given with `init`; drop one of them',
        'the image has its own /init and --keep-init was given with --init; drop one of them',
      ],
      [
        'cannot create the blob cache directory /proc/nope (ENOENT); set `cacheDir` to a writable directory or pass `cache: false`',
        'cannot create the blob cache directory /proc/nope (ENOENT); set --cache-dir to a writable directory or pass --no-cache',
      ],
      [
        'registry.lan:5000 speaks plain HTTP; list it in `insecureRegistries` to allow that',
        'registry.lan:5000 speaks plain HTTP; list it in --insecure-registry to allow that',
      ],
      [
        'the certificate of r.example is not trusted; add its CA with `ca`',
        'the certificate of r.example is not trusted; add its CA with NODE_EXTRA_CA_CERTS=FILE',
      ],
      [
        'nothing is left of the image: `exclude` removed /bin/sh, which the generated /init needs; narrow `exclude` or give `init`',
        'nothing is left of the image: --exclude removed /bin/sh, which the generated /init needs; narrow --exclude or give --init',
      ],
      [
        '`inject` put a file at /bin, over the directory; choose another DEST',
        '--inject put a file at /bin, over the directory; choose another DEST',
      ],
      [
        'k is not a bootable Linux kernel; pass a kernel image (vmlinuz) as `kernel`',
        'k is not a bootable Linux kernel; pass a kernel image (vmlinuz) as --kernel',
      ],
      [
        '`keep` globs only matter with `keepOnly`; add a trace, or use `exclude` to remove paths',
        '--keep globs only matter with --keep-only; add a trace, or use --exclude to remove paths',
      ],
      ['`slim`: unknown slim preset "x"', '--slim: unknown slim preset "x"'],
      [
        "`trace` needs irb's static init, and `init` says not to generate one",
        "irb trace needs irb's static init, and --init says not to generate one",
      ],
      ['give the run more `timeoutSeconds` or memory', 'give the run more --timeout or memory'],
      ['`subject` needs `source`, the image', '`subject` needs --source, the image'],
      ['drop it from `annotations`', 'drop it from --annotation'],
      // Backticked words that are not options stay as they are.
      ['the image has no `mount`; add busybox', 'the image has no `mount`; add busybox'],
    ];
    for (const [library, cli] of cases) {
      expect(describeError(new IrbError('IRB_OPTION_INVALID', library), false).lines).toEqual([
        `irb: error: ${cli}`,
      ]);
    }
    // Every flag the table names is one the CLI has (or says how to set it).
    for (const flag of Object.values(OPTION_FLAGS)) expect(flag).toMatch(/^(-|[A-Z]|irb [a-z])/);
  });

  it('gives the advice that fits the errno: permission is not space', () => {
    const failure = (errno: string, code: 'IRB_CACHE_WRITE_FAILED' | 'IRB_OUTPUT_FAILED', message: string) =>
      describeError(
        new IrbError(code, message, {
          cause: Object.assign(new Error(`${errno}: failed, open '/x'`), { code: errno, syscall: 'open' }),
        }),
        false,
      ).lines[0];
    const library =
      'cannot write the blob cache at /c: it is not writable (EACCES); free space, or point IRB_CACHE_DIR / the cacheDir option at a writable directory, or disable the cache';
    const denied = failure('EACCES', 'IRB_CACHE_WRITE_FAILED', library);
    expect(denied).toBe(
      'irb: error: cannot write the blob cache at /c: it is not writable (EACCES); you lack permission to write there, or choose another directory with --cache-dir DIR, or build without a cache (--no-cache)',
    );
    expect(denied).not.toMatch(/free space|cacheDir/);
    expect(failure('EPERM', 'IRB_CACHE_WRITE_FAILED', library)).not.toContain('free space');
    // Advice that fits the errno stands, in CLI words.
    expect(
      failure(
        'EACCES',
        'IRB_CACHE_WRITE_FAILED',
        'cannot write the blob cache at /c: permission denied (EACCES); make the directory writable for this user, or set `cacheDir` (or IRB_CACHE_DIR) to a writable directory, or pass `cache: false`',
      ),
    ).toBe(
      'irb: error: cannot write the blob cache at /c: permission denied (EACCES); make the directory writable for this user, or set --cache-dir (or IRB_CACHE_DIR) to a writable directory, or pass --no-cache',
    );
    expect(
      failure(
        'ENOSPC',
        'IRB_CACHE_WRITE_FAILED',
        'cannot write the blob cache at /c: the disk is full (ENOSPC); free space on that disk, or set `cacheDir`',
      ),
    ).toBe(
      'irb: error: cannot write the blob cache at /c: the disk is full (ENOSPC); free space on that disk, or set --cache-dir',
    );
    // ENOSPC with advice that does not speak of space gets it.
    expect(
      failure(
        'ENOSPC',
        'IRB_OUTPUT_FAILED',
        'cannot write the output /o (no space left on the device); choose a writable path with `output`',
      ),
    ).toBe(
      'irb: error: cannot write the output /o (no space left on the device); free space on that file system, or choose another path with -o FILE',
    );
    expect(
      failure(
        'EROFS',
        'IRB_OUTPUT_FAILED',
        'cannot write the output /ro/x (the filesystem is read-only); free space',
      ),
    ).toBe(
      'irb: error: cannot write the output /ro/x (the filesystem is read-only); that file system is read-only, or choose another path with -o FILE',
    );
    expect(
      failure(
        'EROFS',
        'IRB_OUTPUT_FAILED',
        'cannot write the output /ro/x (the filesystem is read-only); choose a writable path with `output`',
      ),
    ).toBe(
      'irb: error: cannot write the output /ro/x (the filesystem is read-only); choose a writable path with -o FILE',
    );
    // Without an errno the library's advice stands (translated).
    expect(
      describeError(new IrbError('IRB_OUTPUT_FAILED', 'cannot write -; pick `output`'), false).lines[0],
    ).toBe('irb: error: cannot write -; pick -o FILE');
  });

  it('exits 128 + the signal number: 130 for SIGINT, 143 for SIGTERM', () => {
    const term = Object.assign(new Error('interrupted by SIGTERM'), {
      name: 'AbortError',
      signal: 'SIGTERM',
    });
    expect(describeError(term, false, 'build')).toEqual({
      lines: ['irb: interrupted; nothing was written'],
      exit: 143,
      code: 'IRB_COMMAND_INTERRUPTED',
      message: 'interrupted; nothing was written',
    });
    const int = Object.assign(new Error('interrupted by SIGINT'), { name: 'AbortError', signal: 'SIGINT' });
    expect(describeError(int, false, 'boot').exit).toBe(130);
  });

  it('exits 2 for a bad value the library refused, 1 for a failure', () => {
    const exit = (
      code:
        | 'IRB_OPTION_INVALID'
        | 'IRB_REFERENCE_INVALID'
        | 'IRB_INJECT_SOURCE_UNREADABLE'
        | 'IRB_IMAGE_NOT_FOUND',
    ) => describeError(new IrbError(code, 'x'), false).exit;
    expect(exit('IRB_OPTION_INVALID')).toBe(2);
    expect(exit('IRB_REFERENCE_INVALID')).toBe(2);
    expect(exit('IRB_INJECT_SOURCE_UNREADABLE')).toBe(2);
    expect(exit('IRB_IMAGE_NOT_FOUND')).toBe(1);
    // An output path that cannot be written is a bad value; a full disk is a failure.
    const output = (errno: string) =>
      describeError(
        new IrbError('IRB_OUTPUT_FAILED', 'cannot write x', {
          cause: Object.assign(new Error(errno), { code: errno }),
        }),
        false,
      ).exit;
    expect(
      describeError(new IrbError('IRB_OUTPUT_FAILED', 'cannot write x (it is a directory)'), false).exit,
    ).toBe(2);
    expect(output('EACCES')).toBe(2);
    expect(output('ENOENT')).toBe(2);
    expect(output('ENOSPC')).toBe(1);
  });

  it('reports an interrupt with exit 130', () => {
    const abort = Object.assign(new Error('interrupted by SIGINT'), { name: 'AbortError' });
    expect(describeError(abort, false, 'build')).toMatchObject({
      lines: ['irb: interrupted; nothing was written'],
      exit: 130,
    });
    expect(describeError(abort, false, 'boot').lines).toEqual(['irb: interrupted']);
  });
});
