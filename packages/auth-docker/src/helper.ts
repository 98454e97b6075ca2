import { IrbError } from '@irb/errors';
import type { Credential } from '@irb/registry';

/** Options for {@link runCredentialHelper}. */
export interface CredentialHelperOptions {
  /** Environment for the helper; its PATH is where `docker-credential-<name>` is looked up. Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /** Milliseconds before the helper is killed and the lookup fails. Default: 30000. */
  timeout?: number;
  signal?: AbortSignal;
}

/** Docker's credential helpers print exactly this (on stdout, exit 1) when they hold nothing for the server. */
const NOT_FOUND = 'credentials not found in native keychain';

/**
 * Runs `docker-credential-<name> get` with the server URL on stdin, as docker does, and turns
 * its `{ServerURL, Username, Secret}` answer into a credential (`<token>` as username means
 * the secret is an identity token). Resolves `undefined` when the helper holds nothing for the
 * server. Errors name the helper and the fix, never the secret.
 */
export function runCredentialHelper(
  name: string,
  serverUrl: string,
  options: CredentialHelperOptions = {},
): Promise<Credential | undefined> {
  const program = `docker-credential-${name}`;
  const timeout = options.timeout ?? 30_000;
  options.signal?.throwIfAborted();
  // Taken when a helper runs, not imported: `node:child_process` costs 2–4 ms to load, on every
  // start of a program that may never need a helper (an unchanged `irb build` needs none).
  const { spawn } = process.getBuiltinModule('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], {
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(() =>
        reject(
          new IrbError(
            'IRB_AUTH_HELPER_TIMEOUT',
            `credential helper ${program} did not answer within ${timeout} ms for ${serverUrl}; unlock its keychain or check that it works: echo ${serverUrl} | ${program} get`,
          ),
        ),
      );
    }, timeout);
    const onAbort = () => {
      child.kill('SIGKILL');
      finish(() => reject(options.signal?.reason));
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // A helper that exits without reading stdin makes the write fail with EPIPE; its exit status tells the story.
    child.stdin.on('error', () => {});
    child.stdin.end(serverUrl);

    child.on('error', (error: NodeJS.ErrnoException) => {
      finish(() => {
        if (error.code === 'ENOENT') {
          reject(
            new IrbError(
              'IRB_AUTH_HELPER_NOT_FOUND',
              `credential helper ${program} is not on PATH (needed for ${serverUrl}); install it, or remove "${name}" from credHelpers/credsStore in your Docker config`,
              { cause: error },
            ),
          );
        } else {
          reject(
            new IrbError(
              'IRB_AUTH_HELPER_FAILED',
              `cannot run credential helper ${program}: ${error.message}`,
              {
                cause: error,
              },
            ),
          );
        }
      });
    });

    child.on('close', (code, signal) => {
      finish(() => {
        const out = Buffer.concat(stdout).toString('utf8').trim();
        if (code !== 0) {
          if (out === NOT_FOUND || out.startsWith(`${NOT_FOUND}`)) {
            resolve(undefined);
            return;
          }
          // Helpers report failures on stdout (docker-credential-helpers) or stderr. A failing
          // helper has no secret to leak, but keep only one short line of it all the same.
          const detail = firstLine(Buffer.concat(stderr).toString('utf8')) || firstLine(out);
          const status = signal ? `was killed by ${signal}` : `exited with status ${code}`;
          reject(
            new IrbError(
              'IRB_AUTH_HELPER_FAILED',
              `credential helper ${program} ${status} for ${serverUrl}${detail ? `: ${detail}` : ''}; check it with: echo ${serverUrl} | ${program} get`,
            ),
          );
          return;
        }
        try {
          resolve(parseHelperOutput(out));
        } catch {
          // Never echo the output: it may hold the secret.
          reject(
            new IrbError(
              'IRB_AUTH_HELPER_FAILED',
              `credential helper ${program} answered for ${serverUrl} with something other than {"Username","Secret"} JSON; check the helper`,
            ),
          );
        }
      });
    });
  });
}

function parseHelperOutput(out: string): Credential | undefined {
  const data: unknown = JSON.parse(out);
  if (typeof data !== 'object' || data === null) throw new Error('not an object');
  const { Username, Secret } = data as { Username?: unknown; Secret?: unknown };
  if (typeof Secret !== 'string' || (Username !== undefined && typeof Username !== 'string')) {
    throw new Error('bad fields');
  }
  if (Secret === '') return undefined;
  if (Username === '<token>') return { kind: 'identity-token', token: Secret };
  return { kind: 'basic', username: Username ?? '', password: Secret };
}

function firstLine(text: string): string {
  const line = text.trim().split('\n', 1)[0]?.trim() ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
