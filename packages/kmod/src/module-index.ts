import {
  type AliasLine,
  parseBuiltinModinfo,
  parseModulesAlias,
  parseModulesBuiltin,
  parseModulesDep,
  parseModulesSoftdep,
  type SoftDeps,
} from './indexes.ts';
import type { ModuleInfo } from './modinfo.ts';
import { aliasMatches, moduleFileOf, normalizeAlias, normalizeModuleName } from './names.ts';

/** A loadable module of a tree. */
export interface IndexedModule {
  /** Module name, normalized (`virtio_net`). */
  name: string;
  /** Path relative to the release directory, as modules.dep has it (`kernel/drivers/net/virtio_net.ko`). */
  path: string;
  /** Names of the modules it needs loaded first (from modules.dep: all of them; from modinfo: the direct ones). */
  deps: string[];
}

/** What is known about one kernel release's modules: the graph the closure walks. */
export interface ModuleIndex {
  release: string;
  /** Loadable modules by name. */
  modules: Map<string, IndexedModule>;
  /** Names of modules built into the kernel (modules.builtin, modules.builtin.modinfo). */
  builtin: Set<string>;
  /** modules.alias, or the `alias=` fields of every module. */
  aliases: AliasLine[];
  /** Aliases of builtin modules (modules.builtin.modinfo). */
  builtinAliases: AliasLine[];
  /** Soft dependencies by module name. */
  softdeps: Map<string, SoftDeps>;
  /** Where the dependencies came from. */
  from: 'modules.dep' | 'modinfo';
}

/** The text files of a depmod'ed tree (`modules.dep` is the one that must be there). */
export interface DepmodFiles {
  dep: string;
  alias?: string;
  softdep?: string;
  builtin?: string;
  builtinModinfo?: Uint8Array;
}

function builtinOf(
  builtin?: string,
  builtinModinfo?: Uint8Array,
): { names: Set<string>; aliases: AliasLine[] } {
  const names = builtin === undefined ? new Set<string>() : parseModulesBuiltin(builtin);
  const fromModinfo = builtinModinfo
    ? parseBuiltinModinfo(builtinModinfo)
    : { names: new Set<string>(), aliases: [] };
  for (const name of fromModinfo.names) names.add(name);
  return { names, aliases: fromModinfo.aliases };
}

/** The index of a tree that depmod has run on. */
export function indexFromDepmod(release: string, files: DepmodFiles): ModuleIndex {
  const modules = new Map<string, IndexedModule>();
  for (const line of parseModulesDep(files.dep, release)) {
    const file = moduleFileOf(line.path);
    if (!file || modules.has(file.name)) continue;
    const deps: string[] = [];
    for (const dep of line.deps) {
      const d = moduleFileOf(dep);
      if (d) deps.push(d.name);
    }
    modules.set(file.name, { name: file.name, path: line.path, deps });
  }
  const builtin = builtinOf(files.builtin, files.builtinModinfo);
  return {
    release,
    modules,
    builtin: builtin.names,
    aliases: files.alias === undefined ? [] : parseModulesAlias(files.alias),
    builtinAliases: builtin.aliases,
    softdeps: files.softdep === undefined ? new Map() : parseModulesSoftdep(files.softdep),
    from: 'modules.dep',
  };
}

/** Where depmod looks first when two files have one module name (its default `search updates built-in`). */
function searchRank(path: string): number {
  if (path.startsWith('updates/')) return 0;
  if (path.startsWith('kernel/')) return 1;
  return 2;
}

/**
 * The index of a tree without modules.dep, from what each module's `.modinfo` says: what depmod
 * would write, for a tree whose modules were built together (`depends=` is what modpost found
 * when it linked them).
 */
export function indexFromModinfo(
  release: string,
  found: readonly { path: string; info: ModuleInfo }[],
  builtinText?: string,
  builtinModinfo?: Uint8Array,
): ModuleIndex {
  const chosen = new Map<string, { path: string; info: ModuleInfo }>();
  for (const entry of found) {
    const file = moduleFileOf(entry.path);
    if (!file) continue;
    const had = chosen.get(file.name);
    if (
      !had ||
      searchRank(entry.path) < searchRank(had.path) ||
      (searchRank(entry.path) === searchRank(had.path) && entry.path < had.path)
    ) {
      chosen.set(file.name, entry);
    }
  }
  const modules = new Map<string, IndexedModule>();
  const aliases: AliasLine[] = [];
  const softdeps = new Map<string, SoftDeps>();
  for (const name of [...chosen.keys()].sort()) {
    const { path, info } = chosen.get(name) as { path: string; info: ModuleInfo };
    modules.set(name, { name, path, deps: [...info.depends] });
    for (const pattern of info.aliases) aliases.push({ pattern, module: name });
    if (info.softdeps.pre.length > 0 || info.softdeps.post.length > 0) softdeps.set(name, info.softdeps);
  }
  const builtin = builtinOf(builtinText, builtinModinfo);
  return {
    release,
    modules,
    builtin: builtin.names,
    aliases,
    builtinAliases: builtin.aliases,
    softdeps,
    from: 'modinfo',
  };
}

/** What a name or alias stands for in a tree. */
export type Lookup =
  | { kind: 'module'; names: string[] }
  | { kind: 'alias'; names: string[] }
  | { kind: 'builtin'; names: string[] }
  | undefined;

/**
 * Looks a word up as modprobe does: a module name (`-` and `_` alike), a builtin module, then
 * an alias — the pattern itself (`fs-overlay`, `virtio:d00000001v*`) or a modalias the patterns
 * match (`virtio:d00000001v00001AF4`) — of loadable modules (all that match), then of builtin ones.
 */
export function lookupModule(index: ModuleIndex, word: string): Lookup {
  const name = normalizeModuleName(word);
  if (index.modules.has(name)) return { kind: 'module', names: [name] };
  if (index.builtin.has(name)) return { kind: 'builtin', names: [name] };
  const alias = normalizeAlias(word);
  const match = (lines: AliasLine[]): string[] => {
    const exact = lines.filter((l) => l.pattern === alias);
    const hits = exact.length > 0 ? exact : lines.filter((l) => aliasMatches(l.pattern, alias));
    return [...new Set(hits.map((l) => l.module))].sort();
  };
  const loadable = match(index.aliases).filter((n) => index.modules.has(n) || index.builtin.has(n));
  const modules = loadable.filter((n) => index.modules.has(n));
  if (modules.length > 0) return { kind: 'alias', names: modules };
  if (loadable.length > 0) return { kind: 'builtin', names: loadable };
  const builtins = match(index.builtinAliases);
  if (builtins.length > 0) return { kind: 'builtin', names: builtins };
  return undefined;
}
