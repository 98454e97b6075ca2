/**
 * Scheme negotiation: which of https and http to use for a registry host, and whether its
 * certificate is verified. HTTPS always comes first; plain HTTP is tried only for loopback hosts
 * and for registries listed in `insecureRegistries`, and only once the HTTPS attempt showed the
 * server speaks plain HTTP (or refused the connection).
 */
import { IrbError } from '@irb/errors';
import type { Endpoint } from '../mirrors.ts';
import type { Secrets } from '../redact.ts';
import { isLoopbackRegistry } from '../reference.ts';
import { errorCode, isCertificateError, isPlainHttpAnswer } from './http.ts';

/** What one request to an endpoint uses. */
export interface SchemeChoice {
  scheme: 'https' | 'http';
  /** True when falling back to plain HTTP is allowed for this host. */
  mayDowngrade: boolean;
  /** True for hosts listed as insecure: their certificate is not verified. */
  skipTlsVerify: boolean;
}

/** The insecure-registry list and the scheme learned per host, for one client. */
export class Schemes {
  readonly #insecure: Set<string>;
  readonly #learned = new Map<string, 'https' | 'http'>();

  constructor(insecureRegistries: readonly string[] = []) {
    // Accept what people paste: `http://host:5000/` means `host:5000`.
    this.#insecure = new Set(
      insecureRegistries.map((r) =>
        r
          .trim()
          .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
          .replace(/\/+$/, '')
          .toLowerCase(),
      ),
    );
  }

  /** True when `host` is listed in `insecureRegistries`. */
  isInsecure(host: string): boolean {
    return this.#insecure.has(host.toLowerCase());
  }

  /** The scheme to use for the next request to `endpoint`. */
  choose(endpoint: Endpoint): SchemeChoice {
    if (endpoint.scheme) return { scheme: endpoint.scheme, mayDowngrade: false, skipTlsVerify: false };
    const listed = this.isInsecure(endpoint.host) || this.isInsecure(endpoint.registry);
    const mayDowngrade = listed || isLoopbackRegistry(endpoint.host);
    return { scheme: this.#learned.get(endpoint.host) ?? 'https', mayDowngrade, skipTlsVerify: listed };
  }

  /**
   * Judges a failed send: returns `true` when the host was switched to plain HTTP and the
   * request should be sent again, throws the `IrbError` for TLS and plain-HTTP refusals, and
   * returns `false` for failures that are not about the scheme.
   */
  onSendError(endpoint: Endpoint, choice: SchemeChoice, error: unknown, secrets: Secrets): boolean {
    if (
      choice.scheme === 'https' &&
      (isPlainHttpAnswer(error) || (choice.mayDowngrade && errorCode(error) === 'ECONNREFUSED'))
    ) {
      if (choice.mayDowngrade && !this.#learned.has(endpoint.host)) {
        this.#learned.set(endpoint.host, 'http');
        return true;
      }
      if (!choice.mayDowngrade) {
        throw new IrbError(
          'IRB_REGISTRY_INSECURE',
          `registry ${endpoint.host} answers in plain HTTP; irb uses plain HTTP only for localhost and the registries in \`insecureRegistries\`. If you trust the network, add it there: \`insecureRegistries: ['${endpoint.host}']\``,
          { cause: secrets.safeCause(error) },
        );
      }
    }
    if (isCertificateError(error)) {
      throw new IrbError(
        'IRB_TLS_FAILED',
        `the TLS certificate of ${endpoint.host} is not trusted (${errorCode(error)}); pass its CA certificate (PEM) in \`ca\` or set NODE_EXTRA_CA_CERTS=/path/ca.pem, or, if you accept the risk, add the registry to \`insecureRegistries\``,
        { cause: secrets.safeCause(error) },
      );
    }
    return false;
  }
}
