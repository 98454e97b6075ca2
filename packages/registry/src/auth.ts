import { IrbError, isIrbError } from '@irb/errors';
import type { AuthScope, Credential, Keychain } from './types.ts';

/** One parsed `WWW-Authenticate` challenge. */
export interface Challenge {
  /** Lowercase scheme: `bearer`, `basic`, … */
  scheme: string;
  /** Parameters with lowercase names (`realm`, `service`, `scope`, `error`). */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header (RFC 7235): one or more challenges, each a scheme
 * followed by comma-separated `name=value` or `name="quoted value"` parameters.
 */
export function parseChallenges(value: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = value.length;
  const skip = () => {
    while (i < n && (value[i] === ' ' || value[i] === '\t' || value[i] === ',')) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(value[i] as string)) i++;
    return value.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skip();
    if (i >= n) break;
    const start = i;
    const name = token();
    if (!name) {
      i++;
      continue;
    }
    let j = i;
    while (j < n && value[j] === ' ') j++;
    if (value[j] === '=' && current) {
      i = j + 1;
      while (i < n && value[i] === ' ') i++;
      let param: string;
      if (value[i] === '"') {
        i++;
        let text = '';
        while (i < n && value[i] !== '"') {
          if (value[i] === '\\' && i + 1 < n) i++;
          text += value[i];
          i++;
        }
        i++;
        param = text;
      } else {
        const s = i;
        while (i < n && value[i] !== ',') i++;
        param = value.slice(s, i).trim();
      }
      current.params[name.toLowerCase()] = param;
    } else if (value[j] === '=' && !current) {
      i = j + 1;
    } else {
      current = { scheme: value.slice(start, i).toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/** A keychain that answers nothing, so requests go out anonymously. */
export const anonymousKeychain: Keychain = {
  name: 'anonymous',
  resolve: async () => ({ kind: 'anonymous' }),
};

/**
 * A keychain from a fixed map of registry → credential (handy for tests and scripts; read
 * secrets from a secret store, not from source code).
 */
export function createStaticKeychain(credentials: Record<string, Credential>, name = 'static'): Keychain {
  return {
    name,
    resolve: async (scope) => credentials[scope.registry],
  };
}

/** A resolved credential and the keychain that supplied it (`undefined` for anonymous). */
export interface ResolvedCredential {
  credential: Credential;
  keychain: string | undefined;
}

/** Asks each keychain in turn; the first answer wins; nobody answering means anonymous. */
export async function resolveCredential(
  keychains: readonly Keychain[],
  scope: AuthScope,
  signal?: AbortSignal,
): Promise<ResolvedCredential> {
  for (const keychain of keychains) {
    let answer: Credential | undefined;
    try {
      answer = await keychain.resolve(scope, signal ? { signal } : {});
    } catch (error) {
      if (signal?.aborted) throw error;
      if (isIrbError(error)) throw error;
      throw new IrbError(
        'IRB_KEYCHAIN_FAILED',
        `keychain "${keychain.name}" failed to look up credentials for ${scope.registry}; fix its configuration or remove it`,
        { cause: error },
      );
    }
    if (answer !== undefined) return { credential: answer, keychain: keychain.name };
  }
  return { credential: { kind: 'anonymous' }, keychain: undefined };
}

/** The secret strings inside a credential (for scrubbing messages). */
export function credentialSecrets(credential: Credential): string[] {
  switch (credential.kind) {
    case 'basic':
      return [
        credential.password,
        Buffer.from(`${credential.username}:${credential.password}`).toString('base64'),
        encodeURIComponent(credential.password),
      ];
    case 'identity-token':
    case 'bearer':
      return [credential.token];
    default:
      return [];
  }
}

/** `Basic base64(user:pass)`. */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

/** A bearer token answer from a token service. */
export interface TokenAnswer {
  token: string;
  /** Absolute expiry in ms since the epoch. */
  expiresAt: number;
}

/** Parses a token service answer (`token` or `access_token`, `expires_in` default 60 s). */
export function parseTokenAnswer(text: string, now = Date.now()): TokenAnswer | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!body || typeof body !== 'object') return undefined;
  const record = body as Record<string, unknown>;
  const token =
    typeof record.token === 'string' && record.token
      ? record.token
      : typeof record.access_token === 'string'
        ? record.access_token
        : undefined;
  if (!token) return undefined;
  const expiresIn = typeof record.expires_in === 'number' && record.expires_in > 0 ? record.expires_in : 60;
  let issued = now;
  if (typeof record.issued_at === 'string') {
    const parsed = Date.parse(record.issued_at);
    // A skewed server clock must not make a fresh token look expired.
    if (!Number.isNaN(parsed) && parsed <= now) issued = parsed;
  }
  return { token, expiresAt: issued + expiresIn * 1000 };
}
