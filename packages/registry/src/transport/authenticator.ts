/**
 * Registry authentication, the way the distribution spec and Docker Hub do it: a request goes
 * out anonymously until a 401 names a challenge; a Basic challenge gets the keychain's
 * username/password, a Bearer challenge gets a token from the realm it names (fetched with
 * the keychain's credential, cached per scope until shortly before it expires). Keychains only
 * supply credentials; the challenge flow lives here.
 */
import { IrbError, isIrbError } from '@irb/errors';
import {
  basicAuthorization,
  type Challenge,
  credentialSecrets,
  parseChallenges,
  parseTokenAnswer,
  type ResolvedCredential,
  resolveCredential,
  type TokenAnswer,
} from '../auth.ts';
import { readBytes, readErrorBody, summarize } from '../errors.ts';
import type { Endpoint } from '../mirrors.ts';
import { redactUrl, type Secrets } from '../redact.ts';
import { isLoopbackRegistry, type Reference } from '../reference.ts';
import type { Keychain } from '../types.ts';
import {
  errorCode,
  formEncode,
  type HttpResponse,
  header,
  headerBytes,
  type Transport,
  urlFromHeader,
} from './http.ts';
import { HTTP_TRANSIENT, type RetryOptions, withRetry } from './retry.ts';
import type { Schemes } from './scheme.ts';

/** What one (endpoint, repository) pair knows about authenticating. */
export interface AuthState {
  challenge: Challenge | undefined;
  resolved: Promise<ResolvedCredential> | undefined;
}

/** Everything the authenticator shares with the rest of the client. */
export interface AuthenticatorOptions {
  keychains: readonly Keychain[];
  transport: Transport;
  schemes: Schemes;
  retry: Required<RetryOptions>;
  secrets: Secrets;
}

/** Challenges per host, credentials per repository and bearer tokens per scope, for one client. */
export class Authenticator {
  readonly #options: AuthenticatorOptions;
  readonly #challenges = new Map<string, Challenge>();
  readonly #states = new Map<string, AuthState>();
  readonly #tokens = new Map<string, TokenAnswer>();

  constructor(options: AuthenticatorOptions) {
    this.#options = options;
  }

  /**
   * The state for requests to `ref` at `endpoint`. A host that challenged before is asked with
   * credentials right away, saving the anonymous round trip for every other repository.
   */
  state(endpoint: Endpoint, ref: Reference): AuthState {
    const key = `${endpoint.host}|${ref.repository}`;
    let state = this.#states.get(key);
    if (!state) {
      state = { challenge: this.#challenges.get(endpoint.host), resolved: undefined };
      this.#states.set(key, state);
    }
    return state;
  }

  /** The `Authorization` header for the state's current challenge; `fresh` skips the token cache. */
  async authorization(
    endpoint: Endpoint,
    ref: Reference,
    state: AuthState,
    signal: AbortSignal | undefined,
    fresh = false,
    extraScopes: readonly string[] = [],
  ): Promise<string | undefined> {
    const challenge = state.challenge;
    if (!challenge) return undefined;
    const { credential } = await this.#credential(endpoint, ref, state, signal);
    if (credential.kind === 'bearer') return `Bearer ${credential.token}`;
    if (challenge.scheme === 'basic') {
      return credential.kind === 'basic'
        ? basicAuthorization(credential.username, credential.password)
        : undefined;
    }
    const realm = challenge.params.realm;
    if (!realm) {
      throw new IrbError(
        'IRB_REGISTRY_UNAUTHORIZED',
        `registry ${endpoint.host} sent a Bearer challenge without a realm`,
      );
    }
    const scopes = [
      `repository:${ref.repository}:${extraScopes.includes('push') ? 'pull,push' : 'pull'}`,
      ...extraScopes.filter((s) => s !== 'push'),
    ];
    const asked = challenge.params.scope;
    if (asked && fresh) for (const s of asked.split(' ')) if (s && !scopes.includes(s)) scopes.push(s);
    const service = challenge.params.service ?? '';
    const key = `${realm}|${service}|${scopes.join(' ')}|${endpoint.registry}|${ref.repository}`;
    const cached = this.#tokens.get(key);
    if (!fresh && cached && cached.expiresAt > Date.now() + 5_000) return `Bearer ${cached.token}`;
    const token = await this.#fetchToken(endpoint, ref, state, realm, service, scopes, signal);
    this.#tokens.set(key, token);
    this.#options.secrets.add(token.token);
    return `Bearer ${token.token}`;
  }

  /**
   * Handles a 401: adopts the challenge it names and prepares fresh credentials for the retry.
   * Throws `IRB_REGISTRY_UNAUTHORIZED` when there is no usable challenge, or when credentials
   * were already sent (`alreadyTried`) and refused.
   */
  async onUnauthorized(
    res: HttpResponse,
    endpoint: Endpoint,
    ref: Reference,
    state: AuthState,
    alreadyTried: boolean,
    signal: AbortSignal | undefined,
    name: string,
    extraScopes: readonly string[] = [],
  ): Promise<void> {
    const text = this.#options.secrets.clean(await readErrorBody(res));
    const challenge = parseChallenges(header(res.headers, 'www-authenticate') ?? '').find(
      (c) => c.scheme === 'bearer' || c.scheme === 'basic',
    );
    if (!challenge) {
      throw new IrbError(
        'IRB_REGISTRY_UNAUTHORIZED',
        `registry ${endpoint.host} refused ${name} (401) without saying how to authenticate${text ? `: ${text}` : ''}`,
      );
    }
    if (alreadyTried) {
      if (extraScopes.includes('push')) throw await this.#noPush(endpoint, ref, state, name, text);
      throw await this.#unauthorized(endpoint, state, name, text);
    }
    state.challenge = challenge;
    this.#challenges.set(endpoint.host, challenge);
    await this.authorization(endpoint, ref, state, signal, true, extraScopes);
  }

  /** The error for a 403: the credentials work but lack permission. */
  async forbidden(
    res: HttpResponse,
    endpoint: Endpoint,
    ref: Reference,
    state: AuthState,
    name: string,
    extraScopes: readonly string[] = [],
  ) {
    const text = this.#options.secrets.clean(await readErrorBody(res));
    const action = extraScopes.includes('push') ? 'push' : 'pull';
    return new IrbError(
      'IRB_REGISTRY_UNAUTHORIZED',
      `registry ${endpoint.host} denied access to ${name} (403)${text ? `: ${text}` : ''}; the credentials${await this.#keychainNote(state)} lack ${action} permission for ${ref.repository}${action === 'push' ? '; use credentials allowed to push there' : ''}`,
    );
  }

  /** A write refused even with fresh credentials: the token (or user) has no push permission. */
  async #noPush(
    endpoint: Endpoint,
    ref: Reference,
    state: AuthState,
    name: string,
    text: string,
  ): Promise<IrbError> {
    const resolved = state.resolved ? await state.resolved.catch(() => undefined) : undefined;
    if (!resolved || resolved.credential.kind === 'anonymous') {
      return new IrbError(
        'IRB_REGISTRY_UNAUTHORIZED',
        `registry ${endpoint.host} refused ${name}: pushing to ${ref.repository} needs credentials with push permission and no keychain supplied any${text ? ` (${text})` : ''}; log in (e.g. docker login ${endpoint.registry}) or pass a keychain in \`keychains\``,
      );
    }
    return new IrbError(
      'IRB_REGISTRY_UNAUTHORIZED',
      `registry ${endpoint.host} refused ${name}: the credentials from keychain "${resolved.keychain}" lack push permission for ${ref.repository} (scope repository:${ref.repository}:pull,push was not granted)${text ? ` (${text})` : ''}; log in with an account or token allowed to push there (e.g. docker login ${endpoint.registry}; on GHCR a token with write:packages)`,
    );
  }

  async #credential(
    endpoint: Endpoint,
    ref: Reference,
    state: AuthState,
    signal: AbortSignal | undefined,
  ): Promise<ResolvedCredential> {
    state.resolved ??= resolveCredential(
      this.#options.keychains,
      { registry: endpoint.registry, repository: ref.repository },
      signal,
    );
    let resolved: ResolvedCredential;
    try {
      resolved = await state.resolved;
    } catch (error) {
      state.resolved = undefined;
      throw error;
    }
    this.#options.secrets.add(...credentialSecrets(resolved.credential));
    return resolved;
  }

  async #fetchToken(
    endpoint: Endpoint,
    ref: Reference,
    state: AuthState,
    realm: string,
    service: string,
    scopes: string[],
    signal: AbortSignal | undefined,
  ): Promise<TokenAnswer> {
    const { transport, schemes, retry, secrets } = this.#options;
    const { credential, keychain } = await this.#credential(endpoint, ref, state, signal);
    let realmUrl: URL;
    try {
      realmUrl = urlFromHeader(realm);
    } catch {
      throw new IrbError(
        'IRB_REGISTRY_UNAUTHORIZED',
        `registry ${endpoint.host} named an invalid token realm`,
      );
    }
    if (
      realmUrl.protocol === 'http:' &&
      !isLoopbackRegistry(realmUrl.host) &&
      !schemes.isInsecure(endpoint.host)
    ) {
      throw new IrbError(
        'IRB_REGISTRY_INSECURE',
        `registry ${endpoint.host} asks for credentials at a plain-HTTP token service (${redactUrl(realmUrl)}); refusing to send them unencrypted. Add the registry to \`insecureRegistries\` if you accept that`,
      );
    }
    // The challenge's service and scopes go back to the token service as the bytes it sent.
    const challenged: Array<[string, Uint8Array]> = [
      ...(service ? [['service', headerBytes(service)] as [string, Uint8Array]] : []),
      ...scopes.map((scope) => ['scope', headerBytes(scope)] as [string, Uint8Array]),
    ];
    const send = (): Promise<HttpResponse> => {
      if (credential.kind === 'identity-token') {
        const form = formEncode([
          ['grant_type', 'refresh_token'],
          ['refresh_token', credential.token],
          ['service', headerBytes(service)],
          ['client_id', 'irb'],
          ...challenged.filter(([name]) => name === 'scope'),
        ]);
        // A small form: the light engine, although the request has a body.
        return transport.send(
          {
            url: realmUrl,
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: form,
            signal,
          },
          { bulk: false },
        );
      }
      const url = new URL(realmUrl);
      const kept = url.search
        .slice(1)
        .split('&')
        .filter((pair) => pair !== '' && !(service && pair.split('=')[0] === 'service'));
      url.search = [...kept, formEncode(challenged)].filter(Boolean).join('&');
      const headers: Record<string, string> = {};
      if (credential.kind === 'basic') {
        headers.authorization = basicAuthorization(credential.username, credential.password);
      }
      return transport.send({ url, method: 'GET', headers, signal });
    };
    let res: HttpResponse;
    try {
      res = await withRetry(send, { ...retry, ...HTTP_TRANSIENT }, signal);
    } catch (error) {
      if (signal?.aborted || isIrbError(error)) throw error;
      throw new IrbError(
        'IRB_REGISTRY_UNREACHABLE',
        `cannot reach the token service of ${endpoint.host} (${redactUrl(realmUrl)}): ${errorCode(error) ?? 'connection failed'}`,
        { cause: secrets.safeCause(error) },
      );
    }
    const body = await readBytes(res, 256 * 1024);
    const text = new TextDecoder().decode(body); // for messages
    if (res.status === 401 || res.status === 403) {
      throw new IrbError(
        'IRB_REGISTRY_UNAUTHORIZED',
        credential.kind === 'anonymous'
          ? `registry ${endpoint.host} requires credentials for ${ref.repository} and no keychain supplied any; log in (e.g. docker login ${endpoint.registry}) or pass a keychain in \`keychains\``
          : `registry ${endpoint.host} rejected the ${credential.kind === 'identity-token' ? 'identity token' : 'username/password'} from keychain "${keychain}" (token service answered ${res.status}): the password or token is wrong or expired; log in again (docker login ${endpoint.registry}) or fix the credentials`,
      );
    }
    if (res.status !== 200) {
      throw new IrbError(
        'IRB_REGISTRY_FAILED',
        `the token service of ${endpoint.host} answered ${res.status}${text ? `: ${secrets.clean(summarize(text))}` : ''}`,
      );
    }
    let exact: string;
    try {
      // The token is sent back byte for byte: a lossy decode would send another token.
      exact = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      throw new IrbError(
        'IRB_REGISTRY_FAILED',
        `the token service of ${endpoint.host} sent an answer that is not UTF-8`,
      );
    }
    const answer = parseTokenAnswer(exact);
    if (!answer) {
      throw new IrbError('IRB_REGISTRY_FAILED', `the token service of ${endpoint.host} sent no token`);
    }
    return answer;
  }

  async #keychainNote(state: AuthState): Promise<string> {
    if (!state.resolved) return '';
    try {
      const { keychain } = await state.resolved;
      return keychain ? ` from keychain "${keychain}"` : ' (anonymous)';
    } catch {
      return '';
    }
  }

  async #unauthorized(endpoint: Endpoint, state: AuthState, name: string, text: string): Promise<IrbError> {
    const resolved = state.resolved ? await state.resolved.catch(() => undefined) : undefined;
    if (!resolved || resolved.credential.kind === 'anonymous') {
      return new IrbError(
        'IRB_REGISTRY_UNAUTHORIZED',
        `registry ${endpoint.host} requires authentication for ${name} and no keychain supplied credentials (or the repository does not exist)${text ? `: ${text}` : ''}; log in (e.g. docker login ${endpoint.registry}) or pass a keychain in \`keychains\``,
      );
    }
    return new IrbError(
      'IRB_REGISTRY_UNAUTHORIZED',
      `registry ${endpoint.host} rejected the credentials from keychain "${resolved.keychain}" for ${name}${text ? `: ${text}` : ''}; the username or password is wrong or lacks access — log in again (docker login ${endpoint.registry}) or fix the credentials`,
    );
  }
}
