import { IrbError } from '@irb/errors';

/**
 * Splits an inject spec `SRC:DEST` (host path, then path in the image) at its last `:`.
 * DEST is taken inside the image root whether or not it starts with `/`.
 */
export function parseInjectSpec(spec: string): { src: string; dest: string } {
  const colon = spec.lastIndexOf(':');
  const src = colon === -1 ? '' : spec.slice(0, colon);
  const dest = colon === -1 ? '' : spec.slice(colon + 1);
  if (src === '' || dest === '') {
    throw new IrbError(
      'IRB_INJECT_SPEC_INVALID',
      `inject spec "${spec}" is not SRC:DEST; write the host path, a colon and the path in the image, e.g. ./agent:/usr/bin/agent`,
    );
  }
  return { src, dest };
}
