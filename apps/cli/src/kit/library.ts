import type { Keychain } from '@irb/builder';

/**
 * `@irb/builder`, loaded when a command first needs it. Nothing the CLI loads at start-up imports
 * it (only its types): `irb --help`, a usage error or `irb append` never pay for the registry
 * client, the layer machinery and the compressors they do not use.
 */
export function builder(): Promise<typeof import('@irb/builder')> {
  return import('@irb/builder');
}

/** `--keychain` modules are asked first, then the built-in keychains; `undefined` without any. */
export async function keychains(specs: readonly string[]): Promise<Keychain[] | undefined> {
  if (specs.length === 0) return undefined;
  const { defaultKeychains, loadKeychainModule } = await builder();
  const loaded: Keychain[] = [];
  for (const spec of specs) loaded.push(await loadKeychainModule(spec));
  return [...loaded, ...defaultKeychains()];
}
