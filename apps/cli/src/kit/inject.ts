/** `--inject SRC:DEST`, split by the library's one parser of the spec. */
import { parseInjectSpec } from '@irb/builder/options';

/** `{ src, dest }` of an inject spec, split at its last `:`; `undefined` when either side is empty. */
export function injectSpec(spec: string): { src: string; dest: string } | undefined {
  try {
    return parseInjectSpec(spec);
  } catch {
    return undefined;
  }
}
