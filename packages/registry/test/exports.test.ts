import { fileURLToPath } from 'node:url';
import { publicSurface } from '@irb/test-utils';
import { expect, it } from 'vitest';

it('exports what its README documents, and nothing else', () => {
  expect(publicSurface(fileURLToPath(new URL('..', import.meta.url)))).toEqual({
    undocumented: [],
    missing: [],
    undocumentedEntries: [],
  });
});
