/** What a function threw, for looking at an error's `code` and one-line `message`; fails when nothing was thrown. */
export function thrown(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (error) {
    return error as { code?: string; message: string };
  }
  throw new Error('expected a throw');
}

/** A regular file entry of an archive (what `@irb/cpio` packs), root's unless said otherwise. */
export function fileEntry(
  path: string,
  body: Uint8Array | string,
  mode = 0o644,
  uid = 0,
  gid = 0,
): { type: 'file'; path: string; mode: number; uid: number; gid: number; size: number; body: Uint8Array } {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return { type: 'file', path, mode, uid, gid, size: bytes.length, body: bytes };
}
