import { describe, expect, it } from 'vitest';
import { Mirrors } from './mirrors.ts';
import { parseReference } from './reference.ts';

describe('Mirrors', () => {
  it('folds mirrors declared under any Docker Hub alias into docker.io, environment first', () => {
    const mirrors = new Mirrors(
      { 'registry.hub.docker.com': ['https://b.example'], 'Index.Docker.IO': ['https://c.example/v2/'] },
      'registry-1.docker.io=https://a.example',
    );
    const endpoints = mirrors.endpoints(parseReference('alpine'));
    expect(endpoints.map((e) => e.base)).toEqual([
      'https://a.example',
      'https://b.example',
      'https://c.example',
      '',
    ]);
    expect(endpoints.at(-1)).toMatchObject({ host: 'registry-1.docker.io', mirror: false });
    expect(mirrors.endpoints(parseReference('ghcr.io/o/r')).map((e) => e.host)).toEqual(['ghcr.io']);
  });

  it('refuses a bad mirror when the client is made, naming it without its credentials', () => {
    expect(() => new Mirrors({ 'docker.io': ['https://user:pw@m.example'] }, undefined)).toThrow(
      /mirror https:\/\/m\.example\/ for docker\.io has credentials in its URL/,
    );
    expect(() => new Mirrors({}, 'docker.io=ftp://m.example')).toThrow(/must be an http\(s\) URL/);
  });
});
