import { execFile } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Options of {@link startTokenServer}. */
export interface TokenServerOptions {
  /** The registry's service name (`aud` of tokens). */
  service: string;
  /** The `iss` of tokens. */
  issuer: string;
  /** username → password; these users may pull and push every repository. */
  users?: Record<string, string>;
  /** username → password; these users may only pull (their tokens never carry push). */
  readOnlyUsers?: Record<string, string>;
  /** Repositories anonymous clients may pull (`'*'` for all). Default none. */
  anonymousPull?: string[];
  /** refresh token (Docker `identitytoken`) → username. */
  refreshTokens?: Record<string, string>;
  /** Token lifetime in seconds. Default 300. */
  expiresIn?: number;
}

/** What the token server saw (for assertions). */
export interface TokenRequestRecord {
  method: string;
  grantType: string | undefined;
  scopes: string[];
  /** The user authenticated (basic, password grant or refresh token), if any. */
  user: string | undefined;
  /** True when credentials were presented and refused. */
  refused: boolean;
}

/** A running token server. */
export interface StartedTokenServer {
  /** `http://127.0.0.1:PORT/token` */
  realm: string;
  /** PEM file of the signing certificate (the registry's `rootcertbundle`). */
  certPath: string;
  /** Every token request, in order. */
  requests: TokenRequestRecord[];
  /** Tokens issued so far (to check they never leak). */
  issued: string[];
  /** A user with push rights the harness uses to push images. */
  pushCredentials: { username: string; password: string };
  stop(): Promise<void>;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A Docker-style token server (the flow of docker/distribution's `auth: token`): GET with
 * basic credentials or anonymously, POST with `grant_type=password` or `refresh_token`.
 * It signs RS256 JWTs with a self-signed certificate made by the `openssl` CLI and puts the
 * certificate in the `x5c` header, which distribution 2.8 verifies against `rootcertbundle`.
 */
export async function startTokenServer(options: TokenServerOptions): Promise<StartedTokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'irb-token-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '2',
    '-subj',
    '/CN=irb-test-token-issuer',
  ]);
  const key = createPrivateKey(await readFile(keyPath));
  const certDer = new X509Certificate(await readFile(certPath)).raw;
  const pushCredentials = {
    username: `pusher-${randomBytes(4).toString('hex')}`,
    password: randomBytes(12).toString('hex'),
  };
  const users: Record<string, string> = {
    ...options.users,
    ...options.readOnlyUsers,
    [pushCredentials.username]: pushCredentials.password,
  };
  const requests: TokenRequestRecord[] = [];
  const issued: string[] = [];
  const lifetime = options.expiresIn ?? 300;

  const makeToken = (user: string | undefined, scopes: string[]) => {
    const access: Array<{ type: string; name: string; actions: string[] }> = [];
    for (const scope of scopes) {
      const [type, ...rest] = scope.split(':');
      const actions = (rest.pop() ?? '').split(',').filter(Boolean);
      const name = rest.join(':');
      if (type !== 'repository' || !name) continue;
      let granted: string[];
      if (user && options.readOnlyUsers?.[user] !== undefined) granted = actions.filter((a) => a === 'pull');
      else if (user) granted = actions.filter((a) => a === 'pull' || a === 'push' || a === '*');
      else {
        const open = options.anonymousPull?.includes('*') || options.anonymousPull?.includes(name);
        granted = open ? actions.filter((a) => a === 'pull') : [];
      }
      access.push({ type, name, actions: granted });
    }
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = {
      iss: options.issuer,
      sub: user ?? '',
      aud: options.service,
      exp: now + lifetime,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('RSA-SHA256', Buffer.from(input), key);
    const token = `${input}.${b64url(signature)}`;
    issued.push(token);
    return token;
  };

  const deny = (res: ServerResponse) => {
    res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="irb-token"' });
    res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
  };

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== '/token') {
        res.writeHead(404).end();
        return;
      }
      let user: string | undefined;
      let refused = false;
      let scopes: string[];
      let grantType: string | undefined;
      let offline = false;
      if (req.method === 'POST') {
        const form = new URLSearchParams(await readBody(req));
        grantType = form.get('grant_type') ?? undefined;
        scopes = form
          .getAll('scope')
          .flatMap((s) => s.split(' '))
          .filter(Boolean);
        offline = form.get('access_type') === 'offline';
        if (grantType === 'password') {
          const name = form.get('username') ?? '';
          if (users[name] !== undefined && users[name] === form.get('password')) user = name;
          else refused = true;
        } else if (grantType === 'refresh_token') {
          const owner = options.refreshTokens?.[form.get('refresh_token') ?? ''];
          if (owner) user = owner;
          else refused = true;
        } else {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'unsupported_grant_type' }));
          return;
        }
      } else {
        scopes = url.searchParams
          .getAll('scope')
          .flatMap((s) => s.split(' '))
          .filter(Boolean);
        offline = url.searchParams.get('offline_token') === 'true';
        const authorization = req.headers.authorization;
        if (authorization?.startsWith('Basic ')) {
          const decoded = Buffer.from(authorization.slice(6), 'base64').toString('utf8');
          const colon = decoded.indexOf(':');
          const name = decoded.slice(0, colon);
          if (colon > 0 && users[name] !== undefined && users[name] === decoded.slice(colon + 1)) user = name;
          else refused = true;
        }
      }
      requests.push({ method: req.method ?? 'GET', grantType, scopes, user, refused });
      if (refused) {
        deny(res);
        return;
      }
      const token = makeToken(user, scopes);
      const body: Record<string, unknown> = {
        token,
        access_token: token,
        expires_in: lifetime,
        issued_at: new Date().toISOString(),
      };
      if (offline && user) {
        const refresh = randomBytes(16).toString('hex');
        options.refreshTokens ??= {};
        options.refreshTokens[refresh] = user;
        body.refresh_token = refresh;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    })().catch(() => {
      res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certPath,
    requests,
    issued,
    pushCredentials,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
