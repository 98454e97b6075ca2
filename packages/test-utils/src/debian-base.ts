import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runLogged } from './fixture-cache.ts';

/** The Debian suite every fixture is bootstrapped from. */
export const SUITE = 'bookworm';

/** Options of the Debian fixture images (`ensureDebianPythonImage`, `ensureDebianRustImage`). */
export interface DebianImageOptions {
  /** Debian mirror. Default: {@link detectDebianMirror} (`$IRB_DEBIAN_MIRROR`, else the machine's apt sources). */
  mirror?: string;
  /** Cache root. Default `fixtureCacheRoot()`. */
  cacheDir?: string;
  signal?: AbortSignal;
}

/** `deb [options] URI SUITE COMPONENT…` lines of a `.list` file: URIs serving {@link SUITE}. */
function parseOneLineSources(text: string): string[] {
  const uris: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\s*#.*/, '').trim();
    // Options sit in brackets and may contain spaces: `deb [arch=amd64 signed-by=/k.gpg] URI …`.
    const parts = line
      .replace(/\[[^\]]*\]/, ' ')
      .split(/\s+/)
      .filter(Boolean);
    if (parts[0] === 'deb' && parts[2] === SUITE && parts[1]) uris.push(parts[1]);
  }
  return uris;
}

/** deb822 stanzas of a `.sources` file: URIs of enabled `deb` stanzas serving {@link SUITE}. */
function parseDeb822Sources(text: string): string[] {
  const uris: string[] = [];
  for (const stanza of text.split(/\n[ \t]*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of stanza.split('\n')) {
      if (/^\s*#/.test(line)) continue;
      // A line starting with white space continues the previous field (deb822 folding).
      if (/^[ \t]/.test(line) && last) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`);
        continue;
      }
      const match = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (!match?.[1]) continue;
      last = match[1].toLowerCase();
      fields.set(last, (match[2] ?? '').trim());
    }
    if (/^(no|false|0)$/i.test(fields.get('enabled') ?? '')) continue;
    const types = (fields.get('types') ?? '').split(/\s+/);
    const suites = (fields.get('suites') ?? '').split(/\s+/);
    if (!types.includes('deb') || !suites.includes(SUITE)) continue;
    for (const uri of (fields.get('uris') ?? '').split(/\s+/)) if (uri) uris.push(uri);
  }
  return uris;
}

/** Options of {@link detectDebianMirror}. */
export interface DetectDebianMirrorOptions {
  /** apt's configuration directory. Default `/etc/apt`. */
  aptDir?: string;
  /** Environment read for `IRB_DEBIAN_MIRROR`. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/**
 * The Debian mirror to bootstrap {@link SUITE} from: `$IRB_DEBIAN_MIRROR`, else the first source
 * of this machine's apt serving that suite (`sources.list`, then `sources.list.d/*.list` and
 * deb822 `*.sources` in name order), so fixtures use the mirror this machine is set up to reach.
 * No mirror host is built in: with neither, it throws saying what to set.
 */
export async function detectDebianMirror(options: DetectDebianMirrorOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  if (env.IRB_DEBIAN_MIRROR) return env.IRB_DEBIAN_MIRROR;
  const aptDir = options.aptDir ?? '/etc/apt';
  const candidates: string[] = [];
  try {
    candidates.push(...parseOneLineSources(await readFile(join(aptDir, 'sources.list'), 'utf8')));
  } catch {}
  let names: string[] = [];
  try {
    names = (await readdir(join(aptDir, 'sources.list.d'))).sort();
  } catch {}
  for (const name of names) {
    if (!name.endsWith('.list') && !name.endsWith('.sources')) continue;
    const text = await readFile(join(aptDir, 'sources.list.d', name), 'utf8').catch(() => '');
    candidates.push(...(name.endsWith('.list') ? parseOneLineSources(text) : parseDeb822Sources(text)));
  }
  const mirror = candidates[0];
  if (mirror === undefined) {
    throw new Error(
      `no Debian ${SUITE} source in ${join(aptDir, 'sources.list')} or ${join(aptDir, 'sources.list.d')}/*.list|*.sources; set IRB_DEBIAN_MIRROR to a Debian mirror URL (or pass the mirror option)`,
    );
  }
  return mirror;
}

/**
 * Layer 1 of the Debian fixtures: `debootstrap --variant=minbase` into the bundle's rootfs, minus
 * the package lists and caches (as Debian's official images have it), committed with umoci.
 */
export async function debootstrapLayer(o: {
  rootfs: string;
  image: string;
  bundle: string;
  mirror: string;
  signal: AbortSignal | undefined;
}): Promise<void> {
  const { rootfs, signal } = o;
  await runLogged('debootstrap', ['--variant=minbase', SUITE, rootfs, o.mirror], { signal });
  for (const name of await readdir(join(rootfs, 'var/lib/apt/lists')).catch(() => [])) {
    if (name !== 'partial' && name !== 'lock')
      await rm(join(rootfs, 'var/lib/apt/lists', name), { force: true });
  }
  for (const name of ['pkgcache.bin', 'srcpkgcache.bin']) {
    await rm(join(rootfs, 'var/cache/apt', name), { force: true });
  }
  await runLogged(
    'umoci',
    [
      'repack',
      '--refresh-bundle',
      '--history.created_by',
      `debootstrap --variant=minbase ${SUITE}`,
      '--image',
      o.image,
      o.bundle,
    ],
    { signal },
  );
}

/** The rootfs of a fresh umoci bundle: an empty image in a new layout, unpacked. */
export async function newBundle(o: {
  layout: string;
  image: string;
  bundle: string;
  signal: AbortSignal | undefined;
}): Promise<void> {
  const { signal } = o;
  await runLogged('umoci', ['init', '--layout', o.layout], { signal });
  await runLogged('umoci', ['new', '--image', o.image], { signal });
  await runLogged('umoci', ['unpack', '--image', o.image, o.bundle], { signal });
}

/**
 * A layer of `apt-get install --no-install-recommends PACKAGES` run in the rootfs (chroot),
 * committed with umoci. `dropLists` also removes the package lists the install fetched.
 */
export async function aptLayer(o: {
  rootfs: string;
  image: string;
  bundle: string;
  packages: readonly string[];
  dropLists: boolean;
  signal: AbortSignal | undefined;
}): Promise<void> {
  const { signal } = o;
  const packages = o.packages.join(' ');
  await runLogged(
    'chroot',
    [
      o.rootfs,
      '/bin/sh',
      '-c',
      `apt-get update -qq && apt-get install -y -qq --no-install-recommends ${packages} && apt-get clean${o.dropLists ? ' && rm -rf /var/lib/apt/lists/*' : ''}`,
    ],
    {
      signal,
      env: {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        DEBIAN_FRONTEND: 'noninteractive',
        LC_ALL: 'C',
      },
    },
  );
  await runLogged(
    'umoci',
    [
      'repack',
      '--history.created_by',
      `apt-get install --no-install-recommends ${packages}`,
      '--image',
      o.image,
      o.bundle,
    ],
    { signal },
  );
}
