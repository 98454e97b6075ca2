/**
 * How builder options become the options of an image source: the keychains (the user's, or the
 * environment's and Docker's), the cache, the registries' settings. Every path that opens an image
 * (build, inspect, trace, append's modules, a build key's module set) maps them here.
 */
import { createDockerKeychain } from '@irb/auth-docker';
import { createEnvKeychain } from '@irb/auth-env';
import type { Keychain } from '@irb/registry';
import type { SourceOptions } from './source.ts';
import type { BuildProgressEvent, InitramfsBuilderOptions } from './types.ts';

/**
 * The keychains used when none are given: `IRB_AUTH_*` variables, then Docker/Podman config files.
 * Variables come first because they are set for this run on purpose, while a config file may
 * name a credential helper that is missing on this machine (a `credsStore` copied from a desktop).
 */
export function defaultKeychains(): Keychain[] {
  return [createEnvKeychain(), createDockerKeychain()];
}

/** Registry/source options shared by build, inspect and list-layers. */
export function sourceOptions(
  o: Pick<
    InitramfsBuilderOptions,
    'platform' | 'keychains' | 'cacheDir' | 'cache' | 'insecureRegistries' | 'mirrors' | 'signal'
  >,
  emit?: (event: BuildProgressEvent) => void,
): SourceOptions {
  const options: SourceOptions = { keychains: o.keychains ?? defaultKeychains() };
  if (o.platform !== undefined) options.platform = o.platform;
  if (o.cacheDir !== undefined) options.cacheDir = o.cacheDir;
  if (o.cache !== undefined) options.cache = o.cache;
  if (o.insecureRegistries) options.insecureRegistries = o.insecureRegistries;
  if (o.mirrors) options.mirrors = o.mirrors;
  if (o.signal) options.signal = o.signal;
  if (emit) options.onProgress = (p) => emit({ ...p, type: 'blob' });
  return options;
}
