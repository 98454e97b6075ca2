export * from './digest.ts';
export * from './media-types.ts';
export * from './platform.ts';
export * from './reference.ts';
export type * from './types.ts';
