// `pnpm build`: the CLI as it ships, one entry (dist/bin.js) bundled by rolldown from src/ and the
// built packages it uses, with every command and the layer machinery in lazily loaded chunks.
// A rebuild from the cache spends most of its time loading modules (Node's ESM loader costs about
// half a millisecond per file), and the packages are about a hundred files.
//
// Not bundled: what package.json lists under "dependencies" (except BUNDLED_DEPENDENCIES). Those
// are the packages that find files beside their own modules — @irb/compress its deflate worker and
// the zstd-napi and lz4-napi addons (a missing addon would switch zstd to node:zlib, whose bytes
// differ), @irb/kmod the xz decoder — and every @irb package they import, so that no module is
// loaded twice (once bundled, once from node_modules). They are resolved from
// node_modules at run time, exactly as the unbundled packages find them. A third-party package
// that a bundled one imports is bundled only when it is listed in BUNDLED_THIRD_PARTY.
//
//   node bundle.ts [OUT_DIR]   (default dist/)
import { chmod, readFile, rm } from 'node:fs/promises';
import { createRequire, isBuiltin } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type InputOptions, type OutputAsset, type OutputChunk, rolldown } from 'rolldown';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Third-party packages bundled with the packages that import them. undici (the registry's blob
 * transfers) is JavaScript only, its llhttp WebAssembly inlined in a module; as 109 files it took
 * 130–170 ms to load with an empty compile cache and ~90 ms with a filled one, bundled 70–90 and
 * ~50 ms, on every build that downloads a blob, before its first request.
 */
const BUNDLED_THIRD_PARTY = new Set(['undici']);

/**
 * Dependencies of the CLI that are bundled all the same: they are installed for their files
 * (@irb/init's static binaries, which it finds through its package name), while their code loads
 * with the CLI's chunks (six files fewer on every build).
 */
const BUNDLED_DEPENDENCIES = new Set(['@irb/init']);

/**
 * Node's modules taken with `process.getBuiltinModule` instead of `import`. An ESM import of a
 * built-in module builds its namespace from every export, which runs the module's lazy getters:
 * `node:crypto`'s load WebCrypto and its key, cipher and X.509 modules, `node:util`'s its diff
 * and MIME modules. A cache hit imports both only to hash and to parse its arguments; the import
 * cost 4–7 ms each, the same names taken from the module object nothing. The named imports
 * rolldown writes (`import { a, b as c } from "node:x";`, one per line at the top of a chunk) become
 * `const { a, b: c } = process.getBuiltinModule("node:x");` on the same line, so the source maps
 * still hold; any other form of import is left as it is.
 */
export function builtinsByGetter(code: string): string {
  return code.replace(
    /^import \{([^}]*)\} from "(node:[^"]+)";$/gm,
    (_line, names: string, id: string) =>
      `const {${names.replace(/\b([\w$]+) as ([\w$]+)/g, '$1: $2')}} = process.getBuiltinModule(${JSON.stringify(id)});`,
  );
}

/**
 * What a module of the start chunks may import statically from outside the bundle: what every
 * build loads anyway (the error catalog, the names of the compressions, the member framing, the
 * archive epoch).
 */
export const START_EXTERNALS: ReadonlySet<string> = new Set([
  '@irb/errors',
  '@irb/compress/types',
  '@irb/compress/framing',
  '@irb/cpio/epoch',
]);

/** The packages whose light modules join the `library` chunk (of @irb/layers: the `--inject` parser). */
const LIBRARY = /[\\/]packages[\\/](builder|registry|store|init|layers|auth-[a-z]+)[\\/]/;
const CLI = /[\\/]apps[\\/]cli[\\/]src[\\/]/;
const RUN = /[\\/]apps[\\/]cli[\\/]src[\\/]run\.ts$/;

interface ModuleGraph {
  getModuleInfo(
    id: string,
  ): { importedIds: readonly string[]; dynamicallyImportedIds: readonly string[] } | null;
}

/**
 * Three chunks for what a start of the CLI loads, instead of the ~35 small ones rolldown's own
 * splitting makes of it (Node's ESM loader pays for every file: resolving, reading, linking):
 * `entry`, what bin.ts loads before the compile cache is on (kept apart and small, so the large
 * chunks are always read with the cache); `cli`, the CLI's kit, `main` and its commands;
 * `library`, the modules of the builder, the registry client, the store, the keychains and the
 * init's options that an unchanged `irb build` runs. A module joins `cli` or `library` only when
 * it is light (see {@link lightModules}): a module that reaches anything else (a compressor, the
 * CPIO reader, the layer or kernel-module machinery, QEMU's driver, undici) stays in rolldown's
 * chunks, loaded when a run needs it, so the chunks never make a command load that. run.ts stays
 * out: its top-level await must not sit in a chunk that other chunks import. An unchanged
 * `irb build` loads 15 files instead of 53 (BENCHMARKS.md has the time).
 */
export function startChunks(entry: string, isExternal: (id: string) => boolean, light: ReadonlySet<string>) {
  let boot: Set<string> | undefined;
  /** What bin.ts loads before run.ts, static or dynamic. */
  const bootOf = (graph: ModuleGraph) => {
    const found = new Set<string>();
    const todo = [entry];
    for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
      if (found.has(next) || isExternal(next) || RUN.test(next)) continue;
      found.add(next);
      const info = graph.getModuleInfo(next);
      todo.push(...(info?.importedIds ?? []), ...(info?.dynamicallyImportedIds ?? []));
    }
    return found;
  };
  return (id: string, graph: ModuleGraph): string | null => {
    boot ??= bootOf(graph);
    if (boot.has(id)) return 'entry';
    const group = CLI.test(id) ? 'cli' : LIBRARY.test(id) ? 'library' : null;
    if (!group || RUN.test(id) || !light.has(id)) return null;
    return group;
  };
}

/**
 * The modules whose chunk, in a bundle split by rolldown alone, loads nothing from outside the
 * bundle but Node's modules and {@link START_EXTERNALS}, following its static imports through
 * the other chunks. Judged on that bundle, not on the module graph: the graph still holds the
 * imports tree-shaking drops (a package's index re-exports everything it has, so through the
 * registry client's index every keychain would seem to load the docker-archive reader and
 * @irb/tar).
 */
export function lightModules(output: readonly (OutputChunk | OutputAsset)[]): Set<string> {
  const chunks = new Map(output.flatMap((c) => (c.type === 'chunk' ? [[c.fileName, c] as const] : [])));
  const verdicts = new Map<string, boolean>();
  const isLight = (fileName: string): boolean => {
    const seen = new Set<string>();
    const todo = [fileName];
    for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
      if (seen.has(next)) continue;
      seen.add(next);
      if (verdicts.get(next) === false) return false;
      const chunk = chunks.get(next);
      if (chunk === undefined) {
        if (!isBuiltin(next) && !START_EXTERNALS.has(next)) return false;
        continue;
      }
      if (chunk.moduleIds.some((id) => /[\\/]node_modules[\\/]/.test(id))) return false;
      todo.push(...chunk.imports);
    }
    return true;
  };
  const light = new Set<string>();
  for (const [fileName, chunk] of chunks) {
    const verdict = isLight(fileName);
    verdicts.set(fileName, verdict);
    if (verdict) for (const id of chunk.moduleIds) light.add(id);
  }
  return light;
}

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const readManifest = async (path: string): Promise<Manifest> => JSON.parse(await readFile(path, 'utf8'));

/** `@scope/name/sub/path` → `@scope/name`; `name/sub` → `name`. */
export function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

/**
 * The packages the bundle leaves to node_modules: the CLI's "dependencies". Fails when one of
 * them imports an @irb package that would be bundled (that package would then run twice, with
 * two copies of its state), or when a bundled @irb package needs a third-party package that is
 * neither a dependency of the CLI (the bundle could not resolve it at run time) nor in
 * {@link BUNDLED_THIRD_PARTY}.
 */
export async function externalPackages(): Promise<Set<string>> {
  const cli = await readManifest(join(here, 'package.json'));
  const external = new Set(
    Object.keys(cli.dependencies ?? {}).filter((name) => !BUNDLED_DEPENDENCIES.has(name)),
  );
  const problems: string[] = [];
  const seen = new Set<string>();
  const visit = async (name: string, fromDir: string): Promise<void> => {
    if (seen.has(name)) return;
    seen.add(name);
    const path = createRequire(join(fromDir, 'package.json')).resolve(`${name}/package.json`);
    const manifest = await readManifest(path);
    for (const dep of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) {
      const isIrb = dep.startsWith('@irb/');
      const unresolvable = !isIrb && !external.has(dep) && !BUNDLED_THIRD_PARTY.has(dep);
      if (external.has(name) ? isIrb && !external.has(dep) : unresolvable) {
        const what = external.has(name) ? 'not bundled' : 'bundled';
        problems.push(
          `${name} (${what}) imports ${dep}: add ${dep} to the CLI's dependencies (or, for a third-party package without files of its own, to BUNDLED_THIRD_PARTY)`,
        );
      }
      if (isIrb) await visit(dep, dirname(path));
    }
  };
  for (const name of Object.keys({ ...cli.dependencies, ...cli.devDependencies })) {
    if (name.startsWith('@irb/') && name !== '@irb/test-utils') await visit(name, here);
  }
  if (problems.length > 0) throw new Error(`the bundle's externals are not closed:\n${problems.join('\n')}`);
  return external;
}

/** A file of the bundle: its name under the output directory and what it imports from outside itself. */
export interface BundledFile {
  fileName: string;
  /** Specifiers imported statically and dynamically: other files of the bundle, Node's modules, dependencies. */
  imports: string[];
  /** The specifiers of {@link imports} that are static imports (loaded with the file itself). */
  staticImports: string[];
}

/** Bundles the CLI into `outDir` (emptied first); returns the JavaScript files written. */
export async function bundleCli(outDir: string): Promise<BundledFile[]> {
  const entry = join(here, 'src', 'bin.ts');
  const external = await externalPackages();
  await rm(outDir, { recursive: true, force: true });
  const isExternal = (id: string) =>
    isBuiltin(id) || (!id.startsWith('.') && !id.startsWith('/') && external.has(packageOf(id)));
  const input: InputOptions = {
    input: { bin: entry },
    platform: 'node',
    cwd: here,
    // The packages as they are published (their dist/), not their TypeScript sources.
    resolve: { conditionNames: ['import', 'node', 'default'] },
    external: isExternal,
    // The packages say "sideEffects": false, and so did the CLI, whose bin.ts and run.ts are
    // nothing but side effects; its package.json now names them.
    treeshake: true,
    // What the entry exports is nothing: a chunk may add exports to it (the start groups need that).
    preserveEntrySignatures: 'allow-extension',
    plugins: [
      { name: 'builtins-by-getter', renderChunk: (code) => ({ code: builtinsByGetter(code), map: null }) },
    ],
  };
  const format = {
    format: 'esm',
    entryFileNames: '[name].js',
    chunkFileNames: 'chunks/[name]-[hash].js',
  } as const;
  const bundle = await rolldown(input);
  // First rolldown's own splitting, in memory, to see which modules load nothing heavy.
  const light = lightModules((await bundle.generate(format)).output);
  const { output } = await bundle.write({
    ...format,
    dir: outDir,
    sourcemap: true,
    codeSplitting: {
      // The entry's closure stays out of the groups (see startChunks), though the chunks import it.
      includeDependenciesRecursively: false,
      groups: [{ name: startChunks(entry, isExternal, light), debugName: 'start' }],
    },
  });
  await bundle.close();
  await chmod(join(outDir, 'bin.js'), 0o755);
  return output.flatMap((file) =>
    file.type === 'chunk'
      ? [
          {
            fileName: file.fileName,
            imports: [...file.imports, ...file.dynamicImports],
            staticImports: [...file.imports],
          },
        ]
      : [],
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = await bundleCli(resolve(here, process.argv[2] ?? 'dist'));
  process.stdout.write(`bundled ${files.length} files into ${process.argv[2] ?? 'dist'}\n`);
}
