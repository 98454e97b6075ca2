export type { EnvAuthEntry, EnvKeychainOptions } from './keychain.ts';
export { createEnvKeychain, envHostSuffix } from './keychain.ts';
