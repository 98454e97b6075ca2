import type { InitRootfsView } from '../src/init.ts';

/** A node of {@link fakeRootfs}. */
export type Node = { type: 'file' | 'directory'; text?: string } | { type: 'symlink'; target: string };

/** An in-memory rootfs with symlink resolution, standing in for @irb/layers' Rootfs. */
export function fakeRootfs(nodes: Record<string, Node>): InitRootfsView {
  const resolve = (path: string, depth = 0): { path: string; node: Node } | undefined => {
    if (depth > 40) return undefined;
    const parts = path.split('/').filter(Boolean);
    let cur = '';
    for (let i = 0; i < parts.length; i++) {
      const next = `${cur}/${parts[i]}`;
      const node = nodes[next];
      if (!node) return undefined;
      if (node.type === 'symlink') {
        const base = node.target.startsWith('/') ? node.target : `${cur}/${node.target}`;
        const r = resolve(`${base}/${parts.slice(i + 1).join('/')}`, depth + 1);
        return r;
      }
      cur = next;
    }
    const node = nodes[cur] ?? { type: 'directory' };
    return { path: cur || '/', node };
  };
  return {
    async stat(path) {
      const r = resolve(path);
      return r ? { type: r.node.type === 'symlink' ? 'symlink' : r.node.type, path: r.path } : undefined;
    },
    async readText(path) {
      const r = resolve(path);
      return r?.node.type === 'file' ? (r.node.text ?? '') : undefined;
    },
  };
}
