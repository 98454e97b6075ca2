/**
 * Slim presets: well-known dead weight in container images that a microVM running one program
 * does not need. Each preset is a rule over absolute paths (names decoded as UTF-8 for matching
 * only; the archive keeps the exact bytes of whatever stays).
 */

/** The names of the slim presets. */
export const SLIM_PRESETS = ['docs', 'locales', 'caches', 'devel'] as const;

/** One slim preset's name. */
export type SlimPreset = (typeof SLIM_PRESETS)[number];

/** What a preset rule may look at besides the path. */
export interface SlimContext {
  /** Locale names the image's Env asks for (from LANG, LANGUAGE and LC_*), e.g. `de_DE.UTF-8`. */
  locales: readonly string[];
}

/** A preset and what it removes, for documentation and `irb analyze`. */
export interface SlimPresetInfo {
  name: SlimPreset;
  removes: string;
  keeps: string;
}

/** What each preset removes and keeps, in words. */
export const SLIM_PRESET_INFO: readonly SlimPresetInfo[] = [
  {
    name: 'docs',
    removes: '/usr/share/doc, /usr/share/man, /usr/share/info, /usr/share/doc-base, /usr/share/lintian',
    keeps: 'copyright and licence files under /usr/share/doc',
  },
  {
    name: 'locales',
    removes:
      'translations (/usr/share/locale), compiled locales (/usr/lib/locale) and locale sources (/usr/share/i18n/locales)',
    keeps: 'C, POSIX and C.UTF-8, and every locale the image’s Env names (LANG, LANGUAGE, LC_*)',
  },
  {
    name: 'caches',
    removes:
      'package-manager lists and caches (apt, apk, dnf/yum), debconf backups, pip/npm/yarn caches in home directories',
    keeps: 'the directories themselves (empty)',
  },
  {
    name: 'devel',
    removes: 'C headers (/usr/include, /usr/local/include), static libraries (*.a), pkg-config files',
    keeps: 'shared libraries and everything a program loads at run time',
  },
];

/** Locale names asked for by an image's environment (`NAME=value` strings). */
export function localesFromEnv(env: readonly string[]): string[] {
  const names = new Set<string>();
  for (const pair of env) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (name === 'LANGUAGE') {
      for (const part of value.split(':')) if (part) names.add(part);
    } else if (name === 'LANG' || name.startsWith('LC_')) {
      if (value) names.add(value);
    }
  }
  return [...names];
}

const ALWAYS_KEPT_LOCALES = new Set(['c', 'posix', 'c.utf8', 'c.utf-8']);

/** The spellings under which a locale name appears in directory names: `de_DE.UTF-8` → de_de.utf8, de_de, de. */
function localeKeys(locale: string): string[] {
  const lower = locale.toLowerCase();
  const noModifier = lower.split('@')[0] as string;
  const [base = '', codeset] = noModifier.split('.');
  const keys = [lower, noModifier, base, base.split('_')[0] as string];
  if (codeset) keys.push(`${base}.${codeset.replace(/-/g, '')}`);
  return keys.filter((k) => k !== '');
}

function localeKept(dirName: string, context: SlimContext): boolean {
  const name = dirName.toLowerCase();
  if (ALWAYS_KEPT_LOCALES.has(name)) return true;
  const normalized = name.replace(/-/g, '');
  for (const locale of context.locales) {
    for (const key of localeKeys(locale)) {
      if (name === key || normalized === key.replace(/-/g, '')) return true;
    }
  }
  return false;
}

/** The rest of `path` after `prefix`, or `undefined` when it is not below it. */
function under(path: string, prefix: string): string | undefined {
  if (!path.startsWith(prefix)) return undefined;
  return path.slice(prefix.length);
}

const COPYRIGHT = /^(copyright|license|licence|copying)(\..*)?$/i;

/**
 * True when `preset` removes `path` (absolute, no trailing slash). `isDirectory` tells whether
 * the path names a directory: presets that empty a directory keep the directory itself.
 */
export function slimRemoves(
  preset: SlimPreset,
  path: string,
  isDirectory: boolean,
  context: SlimContext,
): boolean {
  switch (preset) {
    case 'docs': {
      for (const root of ['/usr/share/man', '/usr/share/info', '/usr/share/doc-base', '/usr/share/lintian']) {
        if (path === root || path.startsWith(`${root}/`)) return true;
      }
      const doc = under(path, '/usr/share/doc/');
      if (doc === undefined) return false;
      // Keep directories (their copyright files may stay) and the licence files themselves.
      if (isDirectory) return false;
      const base = doc.slice(doc.lastIndexOf('/') + 1);
      return !COPYRIGHT.test(base);
    }
    case 'locales': {
      for (const root of ['/usr/share/locale/', '/usr/lib/locale/', '/usr/share/i18n/locales/']) {
        const rest = under(path, root);
        if (rest === undefined) continue;
        const first = rest.split('/')[0] as string;
        // locale-archive holds every compiled locale; keep it when the Env asks for one.
        if (root === '/usr/lib/locale/' && first === 'locale-archive') {
          return context.locales.every((l) => ALWAYS_KEPT_LOCALES.has(l.toLowerCase()));
        }
        // Loose files next to the locale directories (locale.alias) stay.
        if (root !== '/usr/share/i18n/locales/' && !rest.includes('/') && !isDirectory) return false;
        return !localeKept(first, context);
      }
      return false;
    }
    case 'caches': {
      const roots = [
        '/var/cache/apt/',
        '/var/lib/apt/lists/',
        '/var/cache/apk/',
        '/var/cache/dnf/',
        '/var/cache/yum/',
        '/var/cache/debconf/',
        '/root/.cache/',
        '/root/.npm/',
        '/usr/local/share/.cache/',
      ];
      for (const root of roots) {
        const rest = under(path, root);
        if (rest === undefined) continue;
        if (root === '/var/cache/debconf/') return rest.endsWith('-old');
        // Keep the directories apt itself expects (lists/partial, archives/partial).
        if (isDirectory && /(^|\/)partial$/.test(rest)) return false;
        if (root === '/var/lib/apt/lists/' && rest === 'lock') return false;
        return true;
      }
      const home = /^\/home\/[^/]+\/\.(cache|npm)\//.test(path);
      return home;
    }
    case 'devel': {
      for (const root of ['/usr/include', '/usr/local/include']) {
        if (path === root || path.startsWith(`${root}/`)) return true;
      }
      if (isDirectory) return /\/pkgconfig$/.test(path) && path.startsWith('/usr/');
      if (path.endsWith('.a') && /\/lib/.test(path)) return true;
      return path.startsWith('/usr/') && /\/pkgconfig\/[^/]+\.pc$/.test(path);
    }
  }
}

/** Parses `--slim docs,locales` style lists; throws a RangeError naming an unknown preset. */
export function parseSlimPresets(values: readonly string[]): SlimPreset[] {
  const out: SlimPreset[] = [];
  for (const value of values) {
    for (const part of value.split(',')) {
      const name = part.trim();
      if (name === '') continue;
      if (name === 'all') {
        for (const p of SLIM_PRESETS) if (!out.includes(p)) out.push(p);
        continue;
      }
      if (!(SLIM_PRESETS as readonly string[]).includes(name)) {
        throw new RangeError(`unknown slim preset "${name}"; choose from ${SLIM_PRESETS.join(', ')} or all`);
      }
      if (!out.includes(name as SlimPreset)) out.push(name as SlimPreset);
    }
  }
  return out;
}
