/**
 * `@irb/builder/options`: the rules of the build options, each in one place, for a caller that
 * checks options before it loads the builder (the CLI parses its flags with them): compression
 * formats and level ranges (`@irb/compress`'s, without the compressors), the `SRC:DEST` inject
 * spec (`@irb/layers`', without the layer machinery), and which init options exclude which.
 */
export { COMPRESSION_FORMATS, COMPRESSION_LEVELS } from '@irb/compress/types';
export { parseInjectSpec } from '@irb/layers/inject-spec';
export {
  checkInitOptions,
  INIT_KINDS,
  type InitOptions,
  type InitOptionsConflict,
  initOptionsConflict,
} from './init-options.ts';
