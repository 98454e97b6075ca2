/**
 * One logical registry request, composed from the transport wrappers the way
 * go-containerregistry stacks its round-trippers: {@link withRetry} around an attempt that
 * picks the scheme ({@link Schemes}), adds credentials ({@link Authenticator}) and sends
 * ({@link Transport}). Statuses other than 401/403 and the transient ones are the caller's.
 */
import { IrbError, isIrbError } from '@irb/errors';
import { dump } from '../errors.ts';
import type { Endpoint } from '../mirrors.ts';
import type { Secrets } from '../redact.ts';
import type { Reference } from '../reference.ts';
import type { Authenticator } from './authenticator.ts';
import type { HttpBody, HttpMethod } from './engine.ts';
import { errorCode, type HttpResponse, type Transport } from './http.ts';
import { HTTP_TRANSIENT, type RetryOptions, withRetry } from './retry.ts';
import type { Schemes } from './scheme.ts';

/** The parts a {@link RegistryTransport} composes. */
export interface RegistryTransportOptions {
  transport: Transport;
  schemes: Schemes;
  auth: Authenticator;
  retry: Required<RetryOptions>;
  secrets: Secrets;
}

/** What a write (upload, manifest PUT) adds to a plain registry request. */
export interface RequestExtras {
  /** Makes the body of one attempt; called again for every retry, so a stream starts afresh. */
  body?: () => HttpBody;
  /**
   * Token scopes beyond `repository:<name>:pull`: `['push']` asks for `pull,push` on the
   * repository, `repository:<other>:pull` adds a cross-repository mount's source.
   */
  scopes?: readonly string[];
  /** Sends to this URL (an upload session's `Location`) instead of `/v2/<name>/<path>`. */
  url?: URL;
  /** False: one attempt only, the caller restarts the whole operation (uploads). Default true. */
  retry?: boolean;
  /**
   * True for a bulk transfer (a blob download): sent through undici rather than the light
   * `node:http` engine. A request with a body always is. Default false.
   */
  bulk?: boolean;
}

/** Sends registry API requests (`/v2/<repository>/…`) with scheme, auth and retries applied. */
export class RegistryTransport {
  readonly #o: RegistryTransportOptions;

  constructor(options: RegistryTransportOptions) {
    this.#o = options;
  }

  /**
   * One logical request to one endpoint: negotiates the scheme, authenticates (anonymous →
   * challenge → token/basic), retries transient failures with backoff (honouring Retry-After).
   * Returns the final response; the caller handles statuses other than 401/403/408/429/5xx
   * (and a 429/5xx that outlived the retries).
   */
  async request(
    endpoint: Endpoint,
    ref: Reference,
    method: HttpMethod,
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    name: string,
    extras: RequestExtras = {},
  ): Promise<HttpResponse> {
    const { auth, retry, secrets } = this.#o;
    const state = auth.state(endpoint, ref);
    // Credentials are re-sent after a 401 once per logical request, not once per retry.
    let authTried = false;
    let attempts = 0;
    const attempt = async (): Promise<HttpResponse> => {
      attempts++;
      for (;;) {
        const res = await this.#send(endpoint, ref, state, method, path, headers, signal, extras);
        if (res.status === 401) {
          await auth.onUnauthorized(res, endpoint, ref, state, authTried, signal, name, extras.scopes);
          authTried = true;
          continue;
        }
        if (res.status === 403) throw await auth.forbidden(res, endpoint, ref, state, name, extras.scopes);
        return res;
      }
    };
    try {
      const policy = extras.retry === false ? { ...retry, retries: 0 } : retry;
      return await withRetry(attempt, { ...policy, ...HTTP_TRANSIENT }, signal);
    } catch (error) {
      if (signal?.aborted || isIrbError(error)) throw error;
      throw new IrbError(
        'IRB_REGISTRY_UNREACHABLE',
        `cannot reach registry ${endpoint.host} for ${name}: ${errorCode(error) ?? secrets.clean((error as Error).message)}${attempts > 1 ? ` (after ${attempts} attempts)` : ''}; check the registry name, your network and proxy settings (HTTPS_PROXY, NO_PROXY)`,
        { cause: secrets.safeCause(error) },
      );
    }
  }

  /**
   * A request against the first endpoint that answers 200 (mirrors first, for manifests). A
   * failing mirror is skipped; the registry itself has the last word, whatever it answers.
   */
  async first(
    endpoints: readonly Endpoint[],
    ref: Reference,
    method: 'GET' | 'HEAD',
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    name: string,
  ): Promise<HttpResponse> {
    for (const endpoint of endpoints) {
      if (!endpoint.mirror) return this.request(endpoint, ref, method, path, headers, signal, name);
      try {
        const res = await this.request(endpoint, ref, method, path, headers, signal, name);
        if (res.status === 200) return res;
        await dump(res);
      } catch {
        signal?.throwIfAborted();
      }
    }
    throw new IrbError('IRB_REGISTRY_UNREACHABLE', `no endpoint for ${name}`);
  }

  /** One send with the current scheme and credentials; switches to plain HTTP when allowed. */
  async #send(
    endpoint: Endpoint,
    ref: Reference,
    state: ReturnType<Authenticator['state']>,
    method: HttpMethod,
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    extras: RequestExtras,
  ): Promise<HttpResponse> {
    const { transport, schemes, auth, secrets } = this.#o;
    for (;;) {
      signal?.throwIfAborted();
      const choice = schemes.choose(endpoint);
      const prefix = endpoint.base ? new URL(endpoint.base).pathname : '';
      const url =
        extras.url ?? new URL(`${choice.scheme}://${endpoint.host}${prefix}/v2/${ref.repository}/${path}`);
      const authorization = state.challenge
        ? await auth.authorization(endpoint, ref, state, signal, false, extras.scopes)
        : undefined;
      try {
        const res = await transport.send(
          {
            url,
            method,
            headers: { ...headers, ...(authorization ? { authorization } : {}) },
            body: extras.body?.(),
            signal,
          },
          { skipTlsVerify: choice.skipTlsVerify, ...(extras.bulk ? { bulk: true } : {}) },
        );
        if (schemes.onAnswer(endpoint, choice, res.status)) {
          await dump(res);
          continue;
        }
        return res;
      } catch (error) {
        signal?.throwIfAborted();
        if (isIrbError(error)) throw error;
        if (schemes.onSendError(endpoint, choice, error, secrets)) continue;
        throw error;
      }
    }
  }
}
