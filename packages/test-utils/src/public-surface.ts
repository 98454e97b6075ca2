import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The names an entry module exports, split as a consumer sees them. */
export interface ModuleExports {
  /** Names that exist at run time (functions, classes, constants, namespaces). */
  values: string[];
  /** Names that exist only for the type checker (interfaces, type aliases, `export type`). */
  types: string[];
}

const IDENT = /^[A-Za-z_$][\w$]*$/;

/** The source without comments and without the contents of string and template literals. */
function stripComments(source: string): string {
  let out = '';
  let i = 0;
  while (i < source.length) {
    const c = source[i] as string;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      i = end < 0 ? source.length : end + 2;
    } else if (c === "'" || c === '"' || c === '`') {
      // Module specifiers are kept; any other literal is kept as well, since only export
      // statements are read afterwards and those carry nothing but names and specifiers.
      let j = i + 1;
      while (j < source.length && source[j] !== c) j += source[j] === '\\' ? 2 : 1;
      out += source.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

function add(into: ModuleExports, name: string, type: boolean): void {
  (type ? into.types : into.values).push(name);
}

function readModule(file: string, seen: Set<string>): ModuleExports {
  const found: ModuleExports = { values: [], types: [] };
  if (seen.has(file)) return found;
  seen.add(file);
  const source = stripComments(readFileSync(file, 'utf8'));
  const follow = (specifier: string, onlyTypes: boolean): void => {
    if (!specifier.startsWith('.')) {
      throw new Error(`${file}: export * from "${specifier}" cannot be followed; list the names`);
    }
    const inner = readModule(resolve(dirname(file), specifier), seen);
    for (const name of inner.values) add(found, name, onlyTypes);
    for (const name of inner.types) add(found, name, true);
  };
  for (const m of source.matchAll(
    /\bexport\s+(type\s+)?\*\s+(?:as\s+([\w$]+)\s+)?from\s+['"]([^'"]+)['"]/g,
  )) {
    if (m[2]) add(found, m[2], Boolean(m[1]));
    else follow(m[3] as string, Boolean(m[1]));
  }
  for (const m of source.matchAll(/\bexport\s+(type\s+)?\{([^}]*)\}/g)) {
    for (const part of (m[2] as string).split(',')) {
      const words = part.trim().split(/\s+/).filter(Boolean);
      if (words.length === 0) continue;
      const typeOnly = Boolean(m[1]) || words[0] === 'type';
      const rest = words[0] === 'type' ? words.slice(1) : words;
      const name = rest[rest.length - 1] as string;
      if (!IDENT.test(name)) throw new Error(`${file}: cannot read the export "${part.trim()}"`);
      add(found, name, typeOnly);
    }
  }
  const declaration =
    /\bexport\s+(?:declare\s+)?(?:default\s+)?(?:abstract\s+)?(async\s+function\*?|function\*?|class|const|let|var|enum|interface|type|namespace)\s+([\w$]+)/g;
  for (const m of source.matchAll(declaration)) {
    const kind = m[1] as string;
    add(found, m[2] as string, kind === 'interface' || kind === 'type');
  }
  return found;
}

/**
 * What a TypeScript entry module exports, values and types apart, read from its source: export
 * declarations, `export { … }` lists and `export * from` of relative modules (followed). Written
 * for the house style of the package indexes; anything it cannot read throws rather than guess.
 */
export function moduleExports(entry: string): ModuleExports {
  const found = readModule(resolve(entry), new Set());
  const values = [...new Set(found.values)].sort();
  const valueSet = new Set(values);
  // A class or an enum is both; it counts once, as a value.
  const types = [...new Set(found.types)].filter((name) => !valueSet.has(name)).sort();
  return { values, types };
}

/**
 * The names a package README documents as its API: the first cell of every row of its export
 * tables (a table whose header's first cell is `Export`, wherever it stands), each name in
 * backticks, a call's name before its `(`. A cell may hold several names (`` `a`, `b(x)` ``).
 */
export function documentedExports(readme: string): string[] {
  const names = new Set<string>();
  let inTable = false;
  let tables = 0;
  for (const line of readFileSync(readme, 'utf8').split('\n')) {
    if (!line.startsWith('|')) {
      inTable = false;
      continue;
    }
    const cell = line.split(/(?<!\\)\|/)[1]?.trim() ?? '';
    if (!inTable) {
      // A table's first row is its header.
      inTable = cell === 'Export';
      if (inTable) tables++;
      continue;
    }
    for (const m of cell.matchAll(/`([^`]+)`/g)) {
      const name = /^(?:new\s+)?([A-Za-z_$][\w$]*)/.exec((m[1] as string).trim())?.[1];
      if (name) names.add(name);
    }
  }
  if (tables === 0) throw new Error(`${readme} has no export table (a table headed | Export | … |)`);
  return [...names].sort();
}

/**
 * Compares a package's entry module with its README's export tables: `undocumented` are exports
 * the README does not name (an internal helper leaking out), `missing` are names the README
 * documents that the entry does not export, and `undocumentedEntries` are subpath entries of
 * `package.json`'s `exports` (`@irb/x/sub`) that the README never mentions. All empty when the
 * README and the package agree. `packageDir` may be a `file:` URL (`new URL('..', import.meta.url)`).
 */
export function publicSurface(
  packageDir: string | URL,
  entry = 'src/index.ts',
): { undocumented: string[]; missing: string[]; undocumentedEntries: string[] } {
  if (packageDir instanceof URL) packageDir = fileURLToPath(packageDir);
  const exported = moduleExports(join(packageDir, entry));
  const all = new Set([...exported.values, ...exported.types]);
  const readme = join(packageDir, 'README.md');
  const documented = documentedExports(readme);
  const documentedSet = new Set(documented);
  const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as {
    name: string;
    exports?: Record<string, unknown>;
  };
  const text = readFileSync(readme, 'utf8');
  const entries = Object.keys(manifest.exports ?? {})
    .filter((key) => key !== '.' && key !== './package.json')
    .map((key) => `${manifest.name}/${key.slice(2)}`);
  return {
    undocumented: [...all].filter((name) => !documentedSet.has(name)).sort(),
    missing: documented.filter((name) => !all.has(name)),
    undocumentedEntries: entries.filter(
      (name) => !new RegExp(`${name.replace(/[/.]/g, '\\$&')}(?![\\w/-])`).test(text),
    ),
  };
}
