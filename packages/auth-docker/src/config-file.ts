import { readFile } from 'node:fs/promises';
import { IrbError } from '@irb/errors';
import type { Credential } from '@irb/registry';

/** One entry of a config file's `auths` map, as docker and podman write it. */
export interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/** The parts of a Docker `config.json` or containers `auth.json` that hold credentials. */
export interface AuthFileContents {
  auths: Record<string, AuthEntry>;
  credHelpers: Record<string, string>;
  credsStore?: string;
}

/** Where an auth file sits and how to read it. */
export interface AuthFile {
  path: string;
  /** `docker` (config.json), `containers` (auth.json) or `legacy` (~/.dockercfg: a bare map of entries). */
  kind: 'docker' | 'containers' | 'legacy';
}

/** Reads and parses an auth file; `undefined` when it does not exist. */
export async function readAuthFile(file: AuthFile): Promise<AuthFileContents | undefined> {
  let text: string;
  try {
    text = await readFile(file.path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new IrbError(
      'IRB_AUTH_FILE_UNREADABLE',
      `cannot read credentials file ${file.path} (${code ?? 'error'}); fix its permissions or point DOCKER_CONFIG / REGISTRY_AUTH_FILE elsewhere`,
      { cause: error },
    );
  }
  if (text.trim() === '') return { auths: {}, credHelpers: {} };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    // The parser's message quotes the text around the error, which may be a secret: keep no cause.
    throw new IrbError(
      'IRB_AUTH_FILE_INVALID',
      `credentials file ${file.path} is not valid JSON; fix or remove it (e.g. log in again)`,
    );
  }
  if (!isObject(data)) {
    throw new IrbError(
      'IRB_AUTH_FILE_INVALID',
      `credentials file ${file.path} is not a JSON object; fix or remove it`,
    );
  }
  const rawAuths = file.kind === 'legacy' ? data : (data.auths ?? {});
  if (!isObject(rawAuths)) {
    throw new IrbError('IRB_AUTH_FILE_INVALID', `"auths" in ${file.path} is not an object; fix or remove it`);
  }
  const auths: Record<string, AuthEntry> = {};
  for (const [key, value] of Object.entries(rawAuths)) {
    if (!isObject(value)) continue;
    auths[key] = pickStrings(value, ['auth', 'username', 'password', 'identitytoken', 'registrytoken']);
  }
  const credHelpers: Record<string, string> = {};
  if (file.kind !== 'legacy' && isObject(data.credHelpers)) {
    for (const [key, value] of Object.entries(data.credHelpers)) {
      if (typeof value === 'string' && value !== '') credHelpers[key] = value;
    }
  }
  const contents: AuthFileContents = { auths, credHelpers };
  // Podman ignores credsStore; docker honours it. Honour it wherever it is written (an auth file
  // named by REGISTRY_AUTH_FILE is often a copied config.json) so a store's secrets are found.
  if (file.kind !== 'legacy' && typeof data.credsStore === 'string' && data.credsStore !== '') {
    contents.credsStore = data.credsStore;
  }
  return contents;
}

/**
 * Turns an `auths` entry into a credential, as docker does: an `identitytoken` wins, then a
 * `registrytoken`, then the base64 `auth` (`user:password`), then `username`/`password`.
 * An empty entry (`{}`, what `docker login` writes when a credential store holds the secret)
 * yields `undefined`.
 */
export function entryCredential(
  entry: AuthEntry,
  where: { path: string; key: string },
): Credential | undefined {
  if (entry.identitytoken) return { kind: 'identity-token', token: entry.identitytoken };
  if (entry.registrytoken) return { kind: 'bearer', token: entry.registrytoken };
  if (entry.auth) {
    const decoded = decodeBase64Strict(entry.auth);
    const colon = decoded?.indexOf(':') ?? -1;
    if (decoded === undefined || colon < 0) {
      throw new IrbError(
        'IRB_AUTH_FILE_INVALID',
        `the "auth" value for "${where.key}" in ${where.path} is not base64 of "username:password"; log in again or fix the entry`,
      );
    }
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username && entry.password !== undefined) {
    return { kind: 'basic', username: entry.username, password: entry.password };
  }
  return undefined;
}

function decodeBase64Strict(value: string): string | undefined {
  const compact = value.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 === 1) return undefined;
  const bytes = Buffer.from(compact, 'base64');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function pickStrings<K extends string>(
  value: Record<string, unknown>,
  keys: K[],
): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const key of keys) {
    const v = value[key];
    if (typeof v === 'string') out[key] = v;
  }
  return out;
}
