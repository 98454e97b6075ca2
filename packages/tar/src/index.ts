export { binaryToBytes, bytesToBinary, utf8OrUndefined } from './bytes.ts';
export { TarFormatError, type TarFormatErrorOptions } from './errors.ts';
export {
  BLOCK_SIZE,
  checksumOk,
  cString,
  decodeHeader,
  entryTypeOf,
  FIELDS,
  formatOf,
  GNU_SPARSE,
  isZeroBlock,
  paddingOf,
  parseNumber,
  type TarEntryType,
  type TarField,
  type TarFormat,
  type TarHeader,
  TYPEFLAG,
} from './header.ts';
export { MAX_EXTENSION_SIZE, type TarInput, type TarMemberHeader, TarMembers } from './members.ts';
export { type PaxRecord, parsePax, paxInteger } from './pax.ts';
