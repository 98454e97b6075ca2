import { moduleFileOf, normalizeAlias, normalizeModuleName } from './names.ts';

/*
 * Parsers of the text files depmod writes into lib/modules/<release>, and of a kernel's config.
 * They take text and return plain data; which tree they came from is the caller's business.
 */

/** One line of modules.dep: a module file and the files it needs, paths relative to the release directory. */
export interface ModulesDepLine {
  path: string;
  deps: string[];
}

/** Soft dependencies of one module: loaded before (`pre`) and after (`post`) it, by name or alias. */
export interface SoftDeps {
  pre: string[];
  post: string[];
}

/** A path of modules.dep relative to the release directory (old depmod wrote absolute paths). */
function relativeToRelease(path: string, release: string | undefined): string {
  if (!path.startsWith('/')) return path;
  const marker = release === undefined ? undefined : `/lib/modules/${release}/`;
  const at = marker === undefined ? -1 : path.indexOf(marker);
  if (at >= 0 && marker !== undefined) return path.slice(at + marker.length);
  const generic = /\/lib\/modules\/[^/]+\/(.+)$/.exec(path);
  return generic ? (generic[1] as string) : path.slice(1);
}

/** Parses modules.dep (`kernel/a.ko: kernel/b.ko kernel/c.ko`); blank lines and `#` comments are skipped. */
export function parseModulesDep(text: string, release?: string): ModulesDepLine[] {
  const lines: ModulesDepLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = relativeToRelease(line.slice(0, colon).trim(), release);
    const deps = line
      .slice(colon + 1)
      .split(/\s+/)
      .filter((d) => d !== '')
      .map((d) => relativeToRelease(d, release));
    lines.push({ path, deps });
  }
  return lines;
}

/** One line of modules.alias: a pattern (normalized) and the module it loads. */
export interface AliasLine {
  pattern: string;
  module: string;
}

/** Parses modules.alias (`alias PATTERN MODULE`). */
export function parseModulesAlias(text: string): AliasLine[] {
  const out: AliasLine[] = [];
  for (const raw of text.split('\n')) {
    const parts = raw.trim().split(/\s+/);
    if (parts[0] !== 'alias' || parts.length < 3) continue;
    out.push({
      pattern: normalizeAlias(parts[1] as string),
      module: normalizeModuleName(parts[2] as string),
    });
  }
  return out;
}

/**
 * Parses the words of one soft dependency, `pre: a b post: c` (modules.softdep's line after the
 * module name, or a module's `softdep=` modinfo field). Words before any `pre:` or `post:` are
 * ignored, as kmod ignores them.
 */
export function parseSoftdepWords(
  words: readonly string[],
  into: SoftDeps = { pre: [], post: [] },
): SoftDeps {
  let mode: 'pre' | 'post' | undefined;
  for (const word of words) {
    if (word === 'pre:') mode = 'pre';
    else if (word === 'post:') mode = 'post';
    else if (mode !== undefined && word !== '') into[mode].push(word);
  }
  return into;
}

/** Parses modules.softdep (`softdep MODULE pre: a b post: c`), merging several lines of one module. */
export function parseModulesSoftdep(text: string): Map<string, SoftDeps> {
  const out = new Map<string, SoftDeps>();
  for (const raw of text.split('\n')) {
    const words = raw.trim().split(/\s+/);
    if (words[0] !== 'softdep' || words.length < 3) continue;
    const name = normalizeModuleName(words[1] as string);
    let deps = out.get(name);
    if (!deps) {
      deps = { pre: [], post: [] };
      out.set(name, deps);
    }
    parseSoftdepWords(words.slice(2), deps);
  }
  return out;
}

/** Parses modules.builtin (one `kernel/…/name.ko` per line) into module names. */
export function parseModulesBuiltin(text: string): Set<string> {
  const out = new Set<string>();
  for (const raw of text.split('\n')) {
    const file = moduleFileOf(raw.trim());
    if (file) out.add(file.name);
  }
  return out;
}

/**
 * Parses modules.builtin.modinfo (NUL-separated `module.key=value` records, what builtin modules
 * would carry in `.modinfo`): the names of builtin modules and the aliases they answer to.
 */
export function parseBuiltinModinfo(bytes: Uint8Array): { names: Set<string>; aliases: AliasLine[] } {
  const names = new Set<string>();
  const aliases: AliasLine[] = [];
  for (const record of new TextDecoder().decode(bytes).split('\0')) {
    const dot = record.indexOf('.');
    const eq = record.indexOf('=', dot + 1);
    if (dot <= 0 || eq < 0) continue;
    const module = normalizeModuleName(record.slice(0, dot));
    names.add(module);
    if (record.slice(dot + 1, eq) === 'alias')
      aliases.push({ pattern: normalizeAlias(record.slice(eq + 1)), module });
  }
  return { names, aliases };
}

/** Parses a kernel `.config` into `CONFIG_X` → value (`y`, `m`, a number or a quoted string); unset options are absent. */
export function parseKernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(raw.trim());
    if (m) out.set(m[1] as string, m[2] as string);
  }
  return out;
}
