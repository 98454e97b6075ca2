export * from './debian-image.ts';
export * from './fault-proxy.ts';
export * from './forward-proxy.ts';
export * from './oci-layout.ts';
export * from './push.ts';
export * from './registry-server.ts';
export * from './tar.ts';
export * from './token-server.ts';
