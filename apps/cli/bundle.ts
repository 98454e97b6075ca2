// `pnpm build`: the CLI as it ships, one entry (dist/bin.js) bundled by rolldown from src/ and the
// built packages it uses, with every command and the layer machinery in lazily loaded chunks.
// A rebuild from the cache spends most of its time loading modules (Node's ESM loader costs about
// half a millisecond per file), and the packages are about a hundred files.
//
// Not bundled: what package.json lists under "dependencies". Those are the packages that find
// files beside their own modules — @irb/compress its deflate worker and the zstd-napi and
// lz4-napi addons (a missing addon would switch zstd to node:zlib, whose bytes differ), @irb/init
// its static binaries, @irb/kmod the xz decoder — and every @irb package they import, so that no
// module is loaded twice (once bundled, once from node_modules). They are resolved from
// node_modules at run time, exactly as the unbundled packages find them. A third-party package
// that a bundled one imports is bundled only when it is listed in BUNDLED_THIRD_PARTY.
//
//   node bundle.ts [OUT_DIR]   (default dist/)
import { chmod, readFile, rm } from 'node:fs/promises';
import { createRequire, isBuiltin } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Third-party packages bundled with the packages that import them. undici (the registry's blob
 * transfers) is JavaScript only, its llhttp WebAssembly inlined in a module; as 109 files it took
 * 130–170 ms to load with an empty compile cache and ~90 ms with a filled one, bundled 70–90 and
 * ~50 ms, on every build that downloads a blob, before its first request.
 */
const BUNDLED_THIRD_PARTY = new Set(['undici']);

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
  const external = new Set(Object.keys(cli.dependencies ?? {}));
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
}

/** Bundles the CLI into `outDir` (emptied first); returns the JavaScript files written. */
export async function bundleCli(outDir: string): Promise<BundledFile[]> {
  const external = await externalPackages();
  await rm(outDir, { recursive: true, force: true });
  const bundle = await rolldown({
    input: { bin: join(here, 'src', 'bin.ts') },
    platform: 'node',
    cwd: here,
    // The packages as they are published (their dist/), not their TypeScript sources.
    resolve: { conditionNames: ['import', 'node', 'default'] },
    external: (id) =>
      isBuiltin(id) || (!id.startsWith('.') && !id.startsWith('/') && external.has(packageOf(id))),
    // The packages say "sideEffects": false, and so did the CLI, whose bin.ts and run.ts are
    // nothing but side effects; its package.json now names them.
    treeshake: true,
  });
  const { output } = await bundle.write({
    dir: outDir,
    format: 'esm',
    entryFileNames: '[name].js',
    chunkFileNames: 'chunks/[name]-[hash].js',
    sourcemap: true,
  });
  await bundle.close();
  await chmod(join(outDir, 'bin.js'), 0o755);
  return output.flatMap((file) =>
    file.type === 'chunk'
      ? [{ fileName: file.fileName, imports: [...file.imports, ...file.dynamicImports] }]
      : [],
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = await bundleCli(resolve(here, process.argv[2] ?? 'dist'));
  process.stdout.write(`bundled ${files.length} files into ${process.argv[2] ?? 'dist'}\n`);
}
