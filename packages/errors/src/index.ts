export { ERROR_CODES, type IrbErrorCode, isIrbErrorCode } from './codes.ts';
export { IrbError, isIrbError } from './errors.ts';
