export type { AuthFile } from './config-file.ts';
export { createDockerKeychain, type DockerKeychainOptions, findAuthFiles } from './keychain.ts';
