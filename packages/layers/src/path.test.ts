import { describe, expect, test } from 'vitest';
import { compileGlob, cpioPathOfKey, displayKey, keyOfInput, splitKey } from './path.ts';

describe('exclude globs', () => {
  test.each([
    ['/usr/share/doc', 'usr/share/doc', true],
    ['usr/share/doc', 'usr/share/doc', true],
    ['./usr/share/doc/', 'usr/share/doc', true],
    ['usr/share/doc', 'usr/share/docs', false],
    ['usr/share/doc', 'x/usr/share/doc', false],
    ['*.pyc', 'a.pyc', true],
    ['*.pyc', 'lib/a.pyc', false],
    ['**/*.pyc', 'a.pyc', true],
    ['**/*.pyc', 'usr/lib/python3/x/a.pyc', true],
    ['usr/*/doc', 'usr/share/doc', true],
    ['usr/*/doc', 'usr/a/b/doc', false],
    ['usr/**/doc', 'usr/doc', true],
    ['usr/**/doc', 'usr/a/b/doc', true],
    ['var/cache/**', 'var/cache', true],
    ['var/cache/**', 'var/cache/apt/x', true],
    ['var/cache/**', 'var/cached', false],
    ['tmp/?', 'tmp/a', true],
    ['tmp/?', 'tmp/ab', false],
    ['tmp/?', 'tmp//', false],
    ['a+b(c)[d]', 'a+b(c)[d]', true],
    ['**', 'anything/at/all', true],
    ['caf\u00e9', keyOfInput('caf\u00e9'), true],
  ])('%s matches %s: %s', (glob, key, matches) => {
    expect(compileGlob(glob).test(key)).toBe(matches);
  });
});

describe('names inside the root', () => {
  test.each([
    ['./a/b', ['a', 'b'], false],
    ['/a//b/./c/', ['a', 'b', 'c'], false],
    ['../x', ['x'], true],
    ['a/../../b', ['b'], true],
    ['a/b/../c', ['a', 'c'], false],
    ['.', [], false],
    ['/', [], false],
  ])('%s → %j (clamped: %s)', (name, components, clamped) => {
    expect(splitKey(name)).toEqual({ components, clamped });
  });

  test('keys convert back to UTF-8 text or exact bytes', () => {
    expect(cpioPathOfKey('plain/ascii')).toBe('plain/ascii');
    expect(cpioPathOfKey(keyOfInput('caf\u00e9'))).toBe('caf\u00e9');
    expect(cpioPathOfKey(keyOfInput(new Uint8Array([0x61, 0xff])))).toEqual(new Uint8Array([0x61, 0xff]));
  });
});

test('a glob with many ** on a 2 000-component path answers at once', () => {
  const key = Array.from({ length: 2000 }, () => 'a').join('/');
  const glob = compileGlob('**/a/**/a/**/a/**/a/**/a/**/b');
  expect(glob.test(key)).toBe(false);
  expect(compileGlob('**/a/**/a/**/a').test(key)).toBe(true);
});

describe('names in messages', () => {
  test('control characters are escaped, so a name keeps a message on one line and out of the terminal', () => {
    expect(displayKey(keyOfInput('a\nb/c\td\re'))).toBe('/a\\nb/c\\td\\re');
    expect(displayKey(keyOfInput('\x1b[31mred\x7f\u0085'))).toBe('/\\x1b[31mred\\x7f\\x85');
    expect(displayKey(keyOfInput('café/ü'))).toBe('/café/ü');
  });
});
