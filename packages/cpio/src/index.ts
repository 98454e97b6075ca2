export * from './checksum.ts';
export * from './errors.ts';
export {
  CPIO_HEADER_SIZE,
  CPIO_MAX_FILE_SIZE,
  CPIO_MAX_NAME_COMPONENT,
  CPIO_MAX_PATH_BYTES,
  CPIO_TRAILER_NAME,
  type CpioHeader,
  type CpioHeaderFields,
  CRC_MAGIC,
  cpioBodyOffset,
  cpioRecordSize,
  NEWC_MAGIC,
  parseCpioHeader,
  typeFromMode,
} from './newc.ts';
export {
  type CpioMemberInfo,
  type CpioReadEnd,
  type CpioReadEntry,
  type ReadCpioOptions,
  readCpio,
} from './reader.ts';
export { fromReadableStream, toReadableStream } from './streams.ts';
export type * from './types.ts';
export { type PackCpioOptions, type PackCpioSummary, packCpio } from './writer.ts';
