import { homedir } from 'node:os';
import { join } from 'node:path';
import type { AuthScope, Credential, Keychain } from '@irb/registry';
import { type AuthFile, type AuthFileContents, entryCredential, readAuthFile } from './config-file.ts';
import { runCredentialHelper } from './helper.ts';
import {
  credHelperKeys,
  exactAuthKeys,
  helperServerUrl,
  normalizeAuthKey,
  normalizeRegistry,
} from './keys.ts';

/** Options for {@link createDockerKeychain}. */
export interface DockerKeychainOptions {
  /**
   * Environment to read `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `XDG_CONFIG_HOME`, `DOCKER_CONFIG`,
   * `HOME` and (for credential helpers) `PATH` from. Default: `process.env`.
   */
  env?: Record<string, string | undefined>;
  /** Home directory. Default: `env.HOME`, else `os.homedir()`. */
  homeDir?: string;
  /** Read exactly these files, in this order, instead of searching. Default: {@link findAuthFiles}. */
  files?: AuthFile[];
  /** Milliseconds one credential helper run may take. Default: 30000. */
  helperTimeout?: number;
  /** Name used in messages. Default: `docker`. */
  name?: string;
}

/**
 * The auth files searched, in podman's order: the first file that yields a credential wins.
 *
 * 1. `$REGISTRY_AUTH_FILE` — when set, the only file read (as podman and skopeo do).
 * 2. `$XDG_RUNTIME_DIR/containers/auth.json` (`/run/containers/<uid>/auth.json` without it).
 * 3. `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config/containers/auth.json`).
 * 4. `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`).
 * 5. `~/.dockercfg` (the legacy format).
 */
export function findAuthFiles(options: Pick<DockerKeychainOptions, 'env' | 'homeDir'> = {}): AuthFile[] {
  const env = options.env ?? process.env;
  const explicit = env.REGISTRY_AUTH_FILE;
  if (explicit) return [{ path: explicit, kind: 'containers' }];
  const home = options.homeDir ?? (env.HOME || homedir());
  const runtimeDir = env.XDG_RUNTIME_DIR || join('/run/containers', String(process.getuid?.() ?? 0));
  const runtimeAuth = env.XDG_RUNTIME_DIR
    ? join(runtimeDir, 'containers', 'auth.json')
    : join(runtimeDir, 'auth.json');
  const configHome = env.XDG_CONFIG_HOME || join(home, '.config');
  const dockerDir = env.DOCKER_CONFIG || join(home, '.docker');
  return [
    { path: runtimeAuth, kind: 'containers' },
    { path: join(configHome, 'containers', 'auth.json'), kind: 'containers' },
    { path: join(dockerDir, 'config.json'), kind: 'docker' },
    { path: join(home, '.dockercfg'), kind: 'legacy' },
  ];
}

/**
 * A keychain that finds credentials where docker and podman keep them: `auths` entries
 * (base64 `auth`, `username`/`password`, `identitytoken`), per-registry `credHelpers` and the
 * default `credsStore` (run as `docker-credential-<name> get`), repository-scoped keys
 * (`registry/namespace/repo`). Resolves `undefined` when no file knows the registry, so the
 * next keychain (or anonymous access) gets its turn.
 */
export function createDockerKeychain(options: DockerKeychainOptions = {}): Keychain {
  const env = options.env ?? process.env;
  const helperCache = new Map<string, Promise<Credential | undefined>>();

  const helper = (name: string, serverUrl: string, signal?: AbortSignal) => {
    const key = `${name}\0${serverUrl}`;
    let pending = helperCache.get(key);
    if (!pending) {
      pending = runCredentialHelper(name, serverUrl, {
        env,
        ...(options.helperTimeout !== undefined && { timeout: options.helperTimeout }),
        ...(signal && { signal }),
      });
      // A failed run (missing helper, locked keychain, abort) may succeed when asked again.
      pending.catch(() => helperCache.delete(key));
      helperCache.set(key, pending);
    }
    return pending;
  };

  return {
    name: options.name ?? 'docker',
    async resolve(scope: AuthScope, resolveOptions?: { signal?: AbortSignal }) {
      const files =
        options.files ?? findAuthFiles({ env, ...(options.homeDir && { homeDir: options.homeDir }) });
      for (const file of files) {
        resolveOptions?.signal?.throwIfAborted();
        const contents = await readAuthFile(file);
        if (!contents) continue;
        const credential = await fromFile(file, contents, scope, (name, url) =>
          helper(name, url, resolveOptions?.signal),
        );
        if (credential) return credential;
      }
      return undefined;
    },
  };
}

/** The credential one file holds for the scope, in docker's order: credHelpers, auths, credsStore. */
async function fromFile(
  file: AuthFile,
  contents: AuthFileContents,
  scope: AuthScope,
  helper: (name: string, serverUrl: string) => Promise<Credential | undefined>,
): Promise<Credential | undefined> {
  const legacy = file.kind === 'legacy';
  const serverUrl = helperServerUrl(scope.registry);

  // A registry's own helper owns it: docker never looks at auths for it, whatever the helper says.
  for (const key of credHelperKeys(scope.registry)) {
    const name = contents.credHelpers[key];
    if (name) return helper(name, serverUrl);
  }

  for (const key of exactAuthKeys(scope.registry, scope.repository, legacy)) {
    const entry = contents.auths[key];
    if (!entry) continue;
    const credential = entryCredential(entry, { path: file.path, key });
    if (credential) return credential;
  }
  // `docker login https://host/v1/` once stored keys with a scheme and path; match those loosely.
  const wanted = normalizeRegistry(scope.registry);
  for (const [key, entry] of Object.entries(contents.auths)) {
    if (normalizeAuthKey(key, legacy) !== wanted) continue;
    const credential = entryCredential(entry, { path: file.path, key });
    if (credential) return credential;
  }

  if (contents.credsStore) return helper(contents.credsStore, serverUrl);
  return undefined;
}
