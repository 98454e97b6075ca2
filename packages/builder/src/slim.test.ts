import { describe, expect, it } from 'vitest';
import { localesFromEnv, parseSlimPresets, slimRemoves } from './slim.ts';

const none = { locales: [] };

describe('slim presets', () => {
  it('docs: removes manuals and documentation, keeps copyright files', () => {
    expect(slimRemoves('docs', '/usr/share/man/man1/ls.1.gz', false, none)).toBe(true);
    expect(slimRemoves('docs', '/usr/share/man', true, none)).toBe(true);
    expect(slimRemoves('docs', '/usr/share/info/dir', false, none)).toBe(true);
    expect(slimRemoves('docs', '/usr/share/doc/bash/README.gz', false, none)).toBe(true);
    expect(slimRemoves('docs', '/usr/share/doc/bash/copyright', false, none)).toBe(false);
    expect(slimRemoves('docs', '/usr/share/doc/bash', true, none)).toBe(false);
    expect(slimRemoves('docs', '/usr/share/doc/node/LICENSE', false, none)).toBe(false);
    expect(slimRemoves('docs', '/usr/share/mandoc', true, none)).toBe(false);
    expect(slimRemoves('docs', '/usr/bin/man', false, none)).toBe(false);
  });

  it('locales: keeps C, POSIX, C.UTF-8 and what the Env names', () => {
    const de = {
      locales: localesFromEnv(['PATH=/bin', 'LANG=de_DE.UTF-8', 'LANGUAGE=de:en', 'LC_TIME=fr_FR']),
    };
    expect(de.locales).toEqual(['de_DE.UTF-8', 'de', 'en', 'fr_FR']);
    expect(slimRemoves('locales', '/usr/share/locale/ja/LC_MESSAGES/coreutils.mo', false, de)).toBe(true);
    expect(slimRemoves('locales', '/usr/share/locale/ja', true, de)).toBe(true);
    expect(slimRemoves('locales', '/usr/share/locale/de/LC_MESSAGES/coreutils.mo', false, de)).toBe(false);
    expect(slimRemoves('locales', '/usr/share/locale/fr_FR', true, de)).toBe(false);
    expect(slimRemoves('locales', '/usr/lib/locale/C.utf8/LC_CTYPE', false, none)).toBe(false);
    expect(slimRemoves('locales', '/usr/lib/locale/de_DE.utf8/LC_CTYPE', false, de)).toBe(false);
    expect(slimRemoves('locales', '/usr/lib/locale/de_DE.utf8/LC_CTYPE', false, none)).toBe(true);
    expect(slimRemoves('locales', '/usr/lib/locale/locale-archive', false, none)).toBe(true);
    expect(slimRemoves('locales', '/usr/lib/locale/locale-archive', false, de)).toBe(false);
    expect(slimRemoves('locales', '/usr/share/locale/locale.alias', false, none)).toBe(false);
    expect(slimRemoves('locales', '/usr/share/i18n/locales/POSIX', false, none)).toBe(false);
    expect(slimRemoves('locales', '/usr/share/i18n/locales/en_US', false, none)).toBe(true);
  });

  it('caches: empties package caches and lists, keeps what apt expects', () => {
    expect(
      slimRemoves('caches', '/var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease', false, none),
    ).toBe(true);
    expect(slimRemoves('caches', '/var/lib/apt/lists/partial', true, none)).toBe(false);
    expect(slimRemoves('caches', '/var/lib/apt/lists/lock', false, none)).toBe(false);
    expect(slimRemoves('caches', '/var/lib/apt/lists', true, none)).toBe(false);
    expect(slimRemoves('caches', '/var/cache/apt/pkgcache.bin', false, none)).toBe(true);
    expect(slimRemoves('caches', '/var/cache/debconf/config.dat-old', false, none)).toBe(true);
    expect(slimRemoves('caches', '/var/cache/debconf/config.dat', false, none)).toBe(false);
    expect(slimRemoves('caches', '/root/.cache/pip/http/x', false, none)).toBe(true);
    expect(slimRemoves('caches', '/home/app/.npm/_cacache/x', false, none)).toBe(true);
    expect(slimRemoves('caches', '/var/lib/dpkg/status', false, none)).toBe(false);
  });

  it('devel: headers, static libraries and pkg-config files', () => {
    expect(slimRemoves('devel', '/usr/include/stdio.h', false, none)).toBe(true);
    expect(slimRemoves('devel', '/usr/lib/x86_64-linux-gnu/libc_nonshared.a', false, none)).toBe(true);
    expect(slimRemoves('devel', '/usr/lib/x86_64-linux-gnu/pkgconfig', true, none)).toBe(true);
    expect(slimRemoves('devel', '/usr/lib/x86_64-linux-gnu/libc.so.6', false, none)).toBe(false);
    expect(slimRemoves('devel', '/data/archive.a', false, none)).toBe(false);
  });

  it('parses lists, "all" and refuses unknown names', () => {
    expect(parseSlimPresets(['docs,locales', 'docs'])).toEqual(['docs', 'locales']);
    expect(parseSlimPresets(['all'])).toEqual(['docs', 'locales', 'caches', 'devel']);
    expect(() => parseSlimPresets(['doc'])).toThrow(/unknown slim preset "doc"; choose from docs, locales/);
  });
});
