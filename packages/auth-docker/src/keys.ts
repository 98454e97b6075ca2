/**
 * Which keys of a config file's `auths` / `credHelpers` maps can hold the credential for a
 * registry and repository, following docker's and containers/image's matching rules.
 */

import { DOCKER_HUB, DOCKER_HUB_ALIASES, normalizeRegistry } from '@irb/registry';

// Docker Hub's names are declared once, in @irb/registry; re-exported for this package's users.
export { normalizeRegistry };

/** The key `docker login` writes for Docker Hub (docker's `registry.IndexServer`). */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

/** True when the registry is Docker Hub under any of its names. */
export function isDockerHub(registry: string): boolean {
  return normalizeRegistry(registry) === DOCKER_HUB;
}

/**
 * The server URL handed to a credential helper on stdin: what `docker login` stored the
 * secret under (`https://index.docker.io/v1/` for Docker Hub, `host[:port]` otherwise).
 */
export function helperServerUrl(registry: string): string {
  return isDockerHub(registry) ? DOCKER_HUB_AUTH_KEY : registry;
}

/** Keys a `credHelpers` map may use for the registry, most usual first. */
export function credHelperKeys(registry: string): string[] {
  if (!isDockerHub(registry)) return [registry];
  const others = DOCKER_HUB_ALIASES.filter((alias) => alias !== DOCKER_HUB);
  return [DOCKER_HUB, DOCKER_HUB_AUTH_KEY, ...others];
}

/**
 * Keys looked up verbatim in `auths`, most specific first: repository-scoped keys
 * (`host/ns/repo`, then `host/ns`, as podman's auth.json allows), then the registry's own key.
 * Legacy `.dockercfg` files only know registry keys.
 */
export function exactAuthKeys(registry: string, repository: string, legacyFormat: boolean): string[] {
  const host = normalizeRegistry(registry);
  const keys: string[] = [];
  if (!legacyFormat && repository !== '') {
    const parts = repository.split('/');
    for (let n = parts.length; n > 0; n--) keys.push(`${host}/${parts.slice(0, n).join('/')}`);
  }
  if (isDockerHub(registry)) keys.push(DOCKER_HUB_AUTH_KEY, DOCKER_HUB, 'index.docker.io');
  else keys.push(registry);
  return keys;
}

/**
 * The registry a loosely written `auths` key stands for: `https://host:port/v1/` → `host:port`.
 * A path is only cut when a scheme was present (or in legacy files), because a scheme-less key
 * with a path is a repository-scoped key that must match exactly, never a whole registry.
 */
export function normalizeAuthKey(key: string, legacyFormat: boolean): string {
  let stripped = key.replace(/^https?:\/\//i, '');
  if (legacyFormat || stripped !== key) stripped = stripped.split('/', 1)[0] ?? '';
  return normalizeRegistry(stripped);
}
