import { IrbError } from '@irb/errors';
import { type AuthScope, type Credential, type Keychain, normalizeRegistry } from '@irb/registry';

/** Options for {@link createEnvKeychain}. */
export interface EnvKeychainOptions {
  /** Where the variables are read, at every `resolve` (so later changes are seen). Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /** Variable name prefix: `<PREFIX>_AUTH_<HOST>`, `<PREFIX>_TOKEN_<HOST>`, `<PREFIX>_REGISTRY_AUTH`. Default: `IRB`. */
  prefix?: string;
  /** Name used in messages. Default: `env`. */
  name?: string;
}

/** One entry of the `IRB_REGISTRY_AUTH` JSON map. Exactly one way of authenticating per entry. */
export type EnvAuthEntry =
  | { username: string; password: string }
  | { auth: string }
  | { token: string }
  | { identityToken: string };

/**
 * The `<HOST>` part of the per-registry variable names: uppercased, `-` → `__`, then every
 * other character that is not a letter or digit (`.`, `:` before the port) → `_`.
 * `registry.example.com:5000` → `REGISTRY_EXAMPLE_COM_5000`, `my-reg.io` → `MY__REG_IO`,
 * Docker Hub (`docker.io`) → `DOCKER_IO`.
 */
export function envHostSuffix(registry: string): string {
  const host = normalizeRegistry(registry);
  return host
    .toUpperCase()
    .replace(/-/g, '__')
    .replace(/[^A-Z0-9_]/g, '_');
}

/**
 * A keychain that takes registry credentials from environment variables, for CI jobs and
 * containers where a config file is a nuisance:
 *
 * - `IRB_AUTH_<HOST>=username:password` — basic auth for one registry (split at the first `:`).
 * - `IRB_TOKEN_<HOST>=token` — a ready bearer token for one registry, sent as is.
 * - `IRB_REGISTRY_AUTH={"host[:port][/repo-prefix]": {...}}` — a JSON map for everything else:
 *   `{username, password}`, `{auth}` (base64 `user:password`), `{token}` or `{identityToken}`.
 *
 * Most specific first: JSON keys with a repository prefix, then the per-host variables, then
 * the JSON host key. Resolves `undefined` when nothing is set for the registry.
 */
export function createEnvKeychain(options: EnvKeychainOptions = {}): Keychain {
  const prefix = options.prefix ?? 'IRB';
  return {
    name: options.name ?? 'env',
    async resolve(scope: AuthScope): Promise<Credential | undefined> {
      const env = options.env ?? process.env;
      const map = parseMap(env, `${prefix}_REGISTRY_AUTH`);
      const host = normalizeHost(scope.registry);

      const parts = scope.repository.split('/').filter((p) => p !== '');
      for (let n = parts.length; n > 0; n--) {
        const key = `${host}/${parts.slice(0, n).join('/')}`;
        const entry = map.get(key);
        if (entry) return entryCredential(entry, `${prefix}_REGISTRY_AUTH["${key}"]`);
      }

      const suffix = envHostSuffix(scope.registry);
      const authVar = `${prefix}_AUTH_${suffix}`;
      const tokenVar = `${prefix}_TOKEN_${suffix}`;
      const auth = lookup(env, authVar);
      const token = lookup(env, tokenVar);
      if (auth !== undefined && token !== undefined) {
        throw new IrbError(
          'IRB_AUTH_ENV_INVALID',
          `both ${authVar} and ${tokenVar} are set for ${scope.registry}; unset one of them`,
        );
      }
      if (token !== undefined) return { kind: 'bearer', token };
      if (auth !== undefined) return basic(auth, authVar);

      const entry = map.get(host);
      return entry ? entryCredential(entry, `${prefix}_REGISTRY_AUTH["${host}"]`) : undefined;
    },
  };
}

/** A variable's value by exact name, else by case-insensitive name; empty counts as unset. */
function lookup(env: Record<string, string | undefined>, name: string): string | undefined {
  let value = env[name];
  if (value === undefined) {
    const upper = name.toUpperCase();
    for (const [key, v] of Object.entries(env)) {
      if (key.toUpperCase() === upper) {
        value = v;
        break;
      }
    }
  }
  return value === undefined || value === '' ? undefined : value;
}

function normalizeHost(key: string): string {
  const host = key.replace(/^https?:\/\//i, '').replace(/\/+$/, '');
  const [first = '', ...rest] = host.split('/');
  const registry = normalizeRegistry(first.toLowerCase());
  // Docker's old Hub key carries an API path (`/v1`) that is not a repository.
  const path = registry === 'docker.io' && rest.join('/') === 'v1' ? [] : rest;
  return [registry, ...path].join('/');
}

function parseMap(
  env: Record<string, string | undefined>,
  name: string,
): Map<string, Record<string, unknown>> {
  const raw = lookup(env, name);
  const map = new Map<string, Record<string, unknown>>();
  if (raw === undefined) return map;
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    // JSON.parse quotes the text near the error, which would put a secret in the message: no cause.
    throw new IrbError(
      'IRB_AUTH_ENV_INVALID',
      `${name} is not valid JSON; expected {"registry.example.com": {"username": "...", "password": "..."}}`,
    );
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new IrbError('IRB_AUTH_ENV_INVALID', `${name} must be a JSON object keyed by registry`);
  }
  for (const [key, value] of Object.entries(data)) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new IrbError('IRB_AUTH_ENV_INVALID', `${name}["${key}"] must be an object`);
    }
    map.set(normalizeHost(key), value as Record<string, unknown>);
  }
  return map;
}

function entryCredential(entry: Record<string, unknown>, where: string): Credential {
  const fields = Object.keys(entry).sort().join(',');
  const str = (k: string) =>
    typeof entry[k] === 'string' && entry[k] !== '' ? (entry[k] as string) : undefined;
  switch (fields) {
    case 'password,username': {
      const username = str('username');
      const password = typeof entry.password === 'string' ? entry.password : undefined;
      if (username !== undefined && password !== undefined) return { kind: 'basic', username, password };
      break;
    }
    case 'auth': {
      const auth = str('auth');
      if (auth !== undefined) {
        if (/^[A-Za-z0-9+/]+={0,2}$/.test(auth)) {
          // Strict: a password that is not UTF-8 would be sent changed, so it is refused instead.
          let decoded: string;
          try {
            decoded = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(auth, 'base64'));
          } catch {
            // No cause: like every message here, nothing derived from the secret goes along.
            throw new IrbError(
              'IRB_AUTH_ENV_INVALID',
              `the "auth" of ${where} decodes to bytes that are not UTF-8; give "username" and "password" instead`,
            );
          }
          return basic(decoded, where);
        }
      }
      break;
    }
    case 'token': {
      const token = str('token');
      if (token !== undefined) return { kind: 'bearer', token };
      break;
    }
    case 'identityToken': {
      const token = str('identityToken');
      if (token !== undefined) return { kind: 'identity-token', token };
      break;
    }
  }
  throw new IrbError(
    'IRB_AUTH_ENV_INVALID',
    `${where} must hold exactly one of {username, password}, {auth}, {token} or {identityToken} as non-empty strings (it has ${fields ? `{${fields}}` : 'nothing'})`,
  );
}

function basic(value: string, where: string): Credential {
  const colon = value.indexOf(':');
  if (colon <= 0) {
    throw new IrbError('IRB_AUTH_ENV_INVALID', `${where} must be "username:password" (no colon found)`);
  }
  return { kind: 'basic', username: value.slice(0, colon), password: value.slice(colon + 1) };
}
