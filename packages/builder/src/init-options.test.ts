import { describe, expect, it } from 'vitest';
import { InitramfsBuilder } from './builder.ts';
import { checkInitOptions, initOptionsConflict } from './init-options.ts';

describe('initOptionsConflict', () => {
  it('accepts what picks one /init', () => {
    expect(initOptionsConflict({})).toBeUndefined();
    expect(initOptionsConflict({ initKind: 'sh' })).toBeUndefined();
    expect(initOptionsConflict({ initKind: 'auto', init: './init' })).toBeUndefined();
    expect(initOptionsConflict({ keepImageInit: true })).toBeUndefined();
    expect(initOptionsConflict({ trace: true, injectsInit: false })).toBeUndefined();
  });

  it('names the first rule broken', () => {
    expect(initOptionsConflict({ init: 'x', keepImageInit: true, initKind: 'sh' })).toEqual({
      option: 'init',
      conflictsWith: 'keepImageInit',
    });
    expect(initOptionsConflict({ initKind: 'busybox' as 'sh' })).toEqual({
      option: 'initKind',
      value: 'busybox',
    });
    expect(initOptionsConflict({ initKind: 'static', keepImageInit: true })).toEqual({
      option: 'initKind',
      conflictsWith: 'keepImageInit',
    });
    expect(initOptionsConflict({ trace: true, init: 'x' })).toEqual({
      option: 'trace',
      conflictsWith: 'init',
    });
    expect(initOptionsConflict({ injectsInit: true, keepImageInit: true })).toEqual({
      option: 'inject',
      conflictsWith: 'keepImageInit',
    });
  });

  it('words each rule in the library option names', () => {
    const message = (o: Parameters<typeof checkInitOptions>[0]) => {
      try {
        checkInitOptions(o);
      } catch (error) {
        expect(error).toMatchObject({ code: 'IRB_OPTION_INVALID' });
        return (error as Error).message;
      }
      return undefined;
    };
    expect(message({ initKind: 'x' as 'sh' })).toBe('`initKind` "x" is unknown; use auto, static or sh');
    expect(message({ initKind: 'sh', init: 'i' })).toBe(
      '`initKind` chooses the generated /init, and `init` says not to generate one; keep only one of them',
    );
    expect(message({ injectsInit: true, init: 'i' })).toBe(
      '`inject` targets /init and `init` says otherwise; keep only one of them',
    );
  });

  it('is checked when a builder is made', () => {
    expect(() => new InitramfsBuilder({ image: 'a', init: 'x', keepImageInit: true })).toThrow(
      '`init` and `keepImageInit` exclude each other; set one of them',
    );
    expect(() => new InitramfsBuilder({ image: 'a', initKind: 'static', keepImageInit: true })).toThrow(
      /`initKind` chooses the generated \/init/,
    );
  });
});
