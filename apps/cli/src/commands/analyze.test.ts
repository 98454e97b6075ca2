import type { ArchiveAnalysis } from '@irb/builder';
import { describe, expect, it } from 'vitest';
import { analysisText } from './analyze.ts';

const MiB = 1024 * 1024;

function analysis(over: Partial<ArchiveAnalysis> = {}): ArchiveAnalysis {
  return {
    totalBytes: 100 * MiB,
    files: 1000,
    directories: 100,
    symlinks: 10,
    other: 0,
    byDirectory: Array.from({ length: 12 }, (_, i) => ({
      name: `/d${i}`,
      bytes: (12 - i) * MiB,
      files: 1 + i,
    })),
    byKind: [
      { name: 'shared libraries', bytes: 60 * MiB, files: 100 },
      { name: 'docs', bytes: 30 * MiB, files: 800 },
    ],
    largest: [{ path: '/usr/lib/libbig.so', bytes: 20 * MiB, kind: 'shared libraries' }],
    duplicates: [{ bytes: MiB, paths: ['/a', '/b', '/c', '/d', '/e'], wastedBytes: 4 * MiB }],
    duplicateBytes: 4 * MiB,
    presets: [
      { name: 'docs', bytes: 30 * MiB, files: 800 },
      { name: 'locales', bytes: 15 * MiB, files: 10 },
      { name: 'caches', bytes: 0, files: 0 },
      { name: 'devel', bytes: 0, files: 0 },
    ],
    ...over,
  };
}

describe('irb analyze text', () => {
  it('bars are proportional within a table; long tables and path lists are cut with what remains', () => {
    const lines = analysisText('img', analysis(), 10);
    const presets = lines.slice(lines.findIndex((l) => l.startsWith('slim presets')));
    const cells = (prefix: string) => (presets.find((l) => l.startsWith(prefix))?.match(/█/g) ?? []).length;
    expect(cells('  docs ')).toBe(24);
    expect(cells('  locales ')).toBe(12);
    expect(presets.find((l) => l.startsWith('  caches '))).toMatch(/^ {2}caches +0 B +apt\/apk\/dnf/);
    expect(lines).toContain('  … 2 more, 3.0 MiB (--json lists all)');
    expect(lines.join('\n')).toContain('4.0 MiB  5 × 1.0 MiB  /a, /b, /c and 2 more');
    expect(lines.at(-1)).toBe('  all: up to 45.0 MiB (45.0%) of 100 MiB');
  });

  it('says so when no files are duplicates', () => {
    expect(analysisText('img', analysis({ duplicates: [], duplicateBytes: 0 }), 10)).toContain(
      'identical files: none outside hard links',
    );
  });
});
