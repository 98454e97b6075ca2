// `@irb/store/paths`: where irb's cache lives, and nothing else, so that a process that only
// needs a path (the CLI's entry point enabling Node's compile cache, the KVM probe) loads no
// more than this file and `mkdir -p`.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { makeDirectory } from './mkdir.ts';

export { makeDirectory };

/**
 * The cache root when none is given: `IRB_CACHE_DIR`, else `$XDG_CACHE_HOME/irb` (an absolute
 * `XDG_CACHE_HOME` only, as the XDG spec asks), else `~/.cache/irb`. Always absolute.
 */
export function defaultCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IRB_CACHE_DIR) return resolve(env.IRB_CACHE_DIR);
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg?.startsWith('/') ? xdg : join(homedir(), '.cache'), 'irb');
}

/** Every place inside a cache root, by what lives there. All paths are absolute. */
export interface CacheLayout {
  /** The directory the user named (`cacheDir`, `--cache-dir`, `IRB_CACHE_DIR`) or the default. */
  root: string;
  /** Verified blobs by digest: `blobs/<algorithm>/<hex>` (@irb/registry). */
  blobs: string;
  /** Parsed tar headers of layers, one file per layer (@irb/layers). */
  index: string;
  /** Built members by key: `<key>.base|tree|overlay|meta|out` (@irb/builder), and what `irb append` knows of a BASE archive: `<content sha256>.atree` (its tree), `<sha256 of dev:ino>.aid` (which content that file had). */
  output: string;
  /** Spool files of a build's layer bodies; nameless while used, so normally empty (@irb/layers). */
  spool: string;
  /** Files being written (partial downloads, entries before their rename) and held links. */
  tmp: string;
  /** One file per running process naming the blobs it uses; a prune keeps those. */
  leases: string;
  /** Held by the one prune running on this root. */
  pruneLock: string;
  /** Registry hosts found to speak plain HTTP (loopback and `insecureRegistries` only). */
  schemes: string;
  /** Node's compile cache for the irb command: later runs skip compiling irb. */
  compileCache: string;
  /** Whether KVM really boots a guest on this host, until it reboots (@irb/boot). */
  kvmProbe: string;
}

/** The layout of the cache at `root` (default {@link defaultCacheRoot}); nothing is created. */
export function cacheLayout(root: string = defaultCacheRoot()): CacheLayout {
  const r = resolve(root);
  return {
    root: r,
    blobs: join(r, 'blobs'),
    index: join(r, 'index'),
    output: join(r, 'output'),
    spool: join(r, 'spool'),
    tmp: join(r, 'tmp'),
    leases: join(r, 'leases'),
    pruneLock: join(r, 'prune.lock'),
    schemes: join(r, 'schemes'),
    compileCache: join(r, 'compile-cache'),
    kvmProbe: join(r, 'kvm-probe.json'),
  };
}

/**
 * Where the blob `digest` (`algorithm:encoded`) lives in the cache at `root`:
 * `blobs/<algorithm>/<encoded>`; `undefined` for a string that is no digest.
 */
export function blobPath(root: string | CacheLayout, digest: string): string | undefined {
  const match = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(digest);
  if (!match) return undefined;
  const blobs = typeof root === 'string' ? cacheLayout(root).blobs : root.blobs;
  return join(blobs, match[1] as string, match[2] as string);
}

/** One place in the cache, for `irb cache path`. */
export interface CacheArea {
  /** The {@link CacheLayout} field. */
  name: Exclude<keyof CacheLayout, 'root'>;
  path: string;
  /** What it holds, in a few words. */
  holds: string;
}

const HOLDS: Record<CacheArea['name'], string> = {
  blobs: 'verified blobs (manifests, configs, layers) by digest',
  index: 'parsed tar headers of each layer, so a warm build does not decompress a layer twice',
  output: 'built members (image bases, overlays) by build key, and the outputs found holding them',
  spool: 'layer bodies a build decompressed, read back while packing (nameless while in use)',
  tmp: 'files being written (partial downloads, entries before their rename) and held links',
  leases: 'the blobs each running irb process uses (a prune keeps them)',
  pruneLock: 'held by the one prune running on this cache',
  schemes: 'registry hosts found to speak plain HTTP',
  compileCache: "Node's compile cache for the irb command",
  kvmProbe: 'whether KVM boots a guest on this host (until it reboots)',
};

/** Every area of the cache at `root`, in layout order, with what it holds. */
export function cacheAreas(root?: string): CacheArea[] {
  const layout = cacheLayout(root);
  return (Object.keys(HOLDS) as CacheArea['name'][]).map((name) => ({
    name,
    path: layout[name],
    holds: HOLDS[name],
  }));
}

/**
 * Creates the compile-cache directory of the cache at `root` and returns it, for
 * `module.enableCompileCache(dir)`; `undefined` when it cannot be created (read-only, or a path
 * such as `/proc/…` where Node's own recursive mkdir would never return): run without one.
 */
export async function compileCacheDirectory(root?: string): Promise<string | undefined> {
  const dir = cacheLayout(root).compileCache;
  try {
    await makeDirectory(dir);
    return dir;
  } catch {
    return undefined;
  }
}
