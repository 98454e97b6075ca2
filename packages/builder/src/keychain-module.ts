import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { IrbError } from '@irb/errors';
import type { Keychain } from '@irb/registry';

/** Options of {@link loadKeychainModule}. */
export interface LoadKeychainModuleOptions {
  /** Directory that relative paths and package names are resolved from. Default `process.cwd()`. */
  cwd?: string;
}

const DEFAULT_EXPORTS = ['createKeychain', 'default'];

function isKeychain(value: unknown): value is Keychain {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Keychain).resolve === 'function' &&
    typeof (value as Keychain).name === 'string'
  );
}

function failure(spec: string, why: string, cause?: unknown): IrbError {
  return new IrbError(
    'IRB_KEYCHAIN_MODULE_INVALID',
    `keychain module ${spec}: ${why}`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Loads a custom auth package for the CLI's `--keychain MODULE[#EXPORT]`: a file path (relative
 * to `cwd`) or a package name installed where irb runs from `cwd`. The export (default
 * `createKeychain`, else the default export) is a factory called with no arguments, or a
 * ready `Keychain` object.
 */
export async function loadKeychainModule(
  spec: string,
  options: LoadKeychainModuleOptions = {},
): Promise<Keychain> {
  const cwd = options.cwd ?? process.cwd();
  const hash = spec.lastIndexOf('#');
  const specifier = hash > 0 ? spec.slice(0, hash) : spec;
  const wanted = hash > 0 ? [spec.slice(hash + 1)] : DEFAULT_EXPORTS;
  let url: string;
  if (specifier.startsWith('.') || isAbsolute(specifier)) {
    url = pathToFileURL(resolve(cwd, specifier)).href;
  } else {
    try {
      url = pathToFileURL(createRequire(join(cwd, 'package.json')).resolve(specifier)).href;
    } catch {
      // Not installed next to the caller: let Node resolve it from irb's own dependencies.
      url = specifier;
    }
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw failure(
      spec,
      `cannot be loaded (${(error as Error).message.split('\n')[0]}); check the path, or install the package`,
      error,
    );
  }
  const name = wanted.find((n) => mod[n] !== undefined);
  if (name === undefined) {
    throw failure(spec, `exports none of ${wanted.join(', ')}; name the factory as MODULE#EXPORT`);
  }
  const exported = mod[name];
  let keychain: unknown = exported;
  if (typeof exported === 'function') {
    try {
      keychain = await (exported as () => unknown)();
    } catch (error) {
      throw failure(spec, `${name}() failed: ${(error as Error).message}`, error);
    }
  }
  if (!isKeychain(keychain)) {
    throw failure(
      spec,
      `${name} is not a Keychain (an object with a name and resolve()) nor a factory of one`,
    );
  }
  return keychain;
}
