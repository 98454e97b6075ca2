import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type StartedTokenServer, startTokenServer, type TokenServerOptions } from './token-server.ts';

const run = promisify(execFile);

/** How the test registry authenticates clients. */
export type RegistryAuth =
  | { htpasswd: { user: string; pass: string } }
  | { token: Omit<TokenServerOptions, 'service' | 'issuer'> & { service?: string; issuer?: string } };

/** Options of {@link startRegistry}. */
export interface StartRegistryOptions {
  auth?: RegistryAuth;
  /** Path of the distribution binary. Default `/usr/bin/docker-registry`. */
  binary?: string;
}

/** A running registry. */
export interface StartedRegistry {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT` — use as the registry part of references. */
  host: string;
  /** The token server, when `auth.token` was given. */
  tokenServer?: StartedTokenServer;
  /** Credentials pushes should use (basic or token auth). */
  pushCredentials?: { username: string; password: string };
  /** Stops the registry (and token server) and removes its storage. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, release it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitReady(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${stderr()}`);
    try {
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`docker-registry did not start at ${url}: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts the CNCF distribution server (Debian's docker-registry) on 127.0.0.1 with a free port
 * and temp storage, optionally with htpasswd or token auth (then a token server is started too).
 */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<StartedRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'irb-registry-'));
  let tokenServer: StartedTokenServer | undefined;
  let pushCredentials: { username: string; password: string } | undefined;
  let authYaml = '';
  try {
    if (options.auth && 'htpasswd' in options.auth) {
      const { user, pass } = options.auth.htpasswd;
      const { stdout } = await run('htpasswd', ['-Bbn', user, pass]);
      await writeFile(join(dir, 'htpasswd'), stdout);
      authYaml = `auth:\n  htpasswd:\n    realm: irb-test\n    path: ${join(dir, 'htpasswd')}\n`;
      pushCredentials = { username: user, password: pass };
    } else if (options.auth && 'token' in options.auth) {
      const service = options.auth.token.service ?? 'irb-test-registry';
      const issuer = options.auth.token.issuer ?? 'irb-test-issuer';
      tokenServer = await startTokenServer({ ...options.auth.token, service, issuer });
      authYaml = `auth:\n  token:\n    realm: ${tokenServer.realm}\n    service: ${service}\n    issuer: ${issuer}\n    rootcertbundle: ${tokenServer.certPath}\n`;
      pushCredentials = tokenServer.pushCredentials;
    }
    for (let tries = 0; ; tries++) {
      const port = await freePort();
      const config = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'data')}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: irb-test-secret
${authYaml}`;
      const configPath = join(dir, 'config.yml');
      await writeFile(configPath, config);
      const child = spawn(options.binary ?? '/usr/bin/docker-registry', ['serve', configPath], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-8000);
      });
      const url = `http://127.0.0.1:${port}`;
      try {
        await waitReady(url, child, () => stderr);
      } catch (error) {
        child.kill('SIGKILL');
        if (/address already in use/i.test(stderr) && tries < 5) continue;
        throw error;
      }
      const stop = async () => {
        if (child.exitCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        }
        await tokenServer?.stop();
        await rm(dir, { recursive: true, force: true });
      };
      const started: StartedRegistry = { url, host: `127.0.0.1:${port}`, stop };
      if (tokenServer) started.tokenServer = tokenServer;
      if (pushCredentials) started.pushCredentials = pushCredentials;
      return started;
    }
  } catch (error) {
    await tokenServer?.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
