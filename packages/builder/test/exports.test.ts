import { publicSurface } from '@irb/test-utils';
import { expect, it } from 'vitest';

it('exports what its README documents, and nothing else', () => {
  const none = { undocumented: [], missing: [], undocumentedEntries: [] };
  expect(publicSurface(new URL('..', import.meta.url))).toEqual(none);
});
