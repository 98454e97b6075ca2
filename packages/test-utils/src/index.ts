export * from './debian-image.ts';
export * from './tar.ts';
