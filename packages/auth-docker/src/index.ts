export type { AuthEntry, AuthFile, AuthFileContents } from './config-file.ts';
export { entryCredential, readAuthFile } from './config-file.ts';
export type { CredentialHelperOptions } from './helper.ts';
export { runCredentialHelper } from './helper.ts';
export type { DockerKeychainOptions } from './keychain.ts';
export { createDockerKeychain, findAuthFiles } from './keychain.ts';
export { DOCKER_HUB_AUTH_KEY, helperServerUrl, normalizeAuthKey, normalizeRegistry } from './keys.ts';
