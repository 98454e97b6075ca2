import { open } from 'node:fs/promises';

/**
 * Flips one byte of a file in place (its size stays), as a failing disk or a stray write would:
 * the byte at `offset`, default the middle one.
 */
export async function flipByte(path: string, offset?: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const at = offset ?? Math.floor((await handle.stat()).size / 2);
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0] = (byte[0] as number) ^ 0x5a;
    await handle.write(byte, 0, 1, at);
  } finally {
    await handle.close();
  }
}
