import { IrbError } from '@irb/errors';
import { lookupModule, type ModuleIndex } from './module-index.ts';
import { nearest } from './names.ts';
import { MODULE_PRESETS, presetOf, VIRTIO_TRANSPORTS } from './presets.ts';

/** Why a module is in a set. */
export type ModuleReason = 'requested' | 'transport' | 'dependency' | 'softdep';

/** What one word of the module list turned into. */
export interface ResolvedRequest {
  /** The word as given. */
  request: string;
  /** `module`, `alias` (modules.alias), `builtin` (nothing to load), `preset`. */
  kind: 'module' | 'alias' | 'builtin' | 'preset';
  /** The modules it names (before dependencies), builtin ones included. */
  modules: string[];
}

/** The roots of a closure: the modules the list asks for (builtin ones too), with the reason each is there. */
export interface ModuleRequest {
  requests: ResolvedRequest[];
  roots: Map<string, ModuleReason>;
}

function unknown(index: ModuleIndex, word: string, label: string): IrbError {
  // A preset and the module it is named after (`vsock`) are one suggestion.
  const guesses = nearest(word, [
    ...new Set([...Object.keys(MODULE_PRESETS), ...index.modules.keys(), ...index.builtin]),
  ]);
  const hint =
    guesses.length > 0
      ? `did you mean ${guesses.join(', ')}?`
      : 'list it with modinfo or look in modules.alias';
  return new IrbError(
    'IRB_KMOD_MODULE_UNKNOWN',
    `"${word}" is no module, alias or preset of ${label} (${index.release}); ${hint} (presets: ${Object.keys(MODULE_PRESETS).join(', ')})`,
  );
}

/**
 * Turns the words of a module list into modules: presets first (`net`, `vsock`, `console`,
 * `blk`, `fs`, each with the virtio transports), then names and aliases as modprobe looks them up.
 *
 * @throws IrbError `IRB_KMOD_MODULE_UNKNOWN` with the nearest names for a word that is none of these.
 */
export function resolveRequest(index: ModuleIndex, words: readonly string[], label: string): ModuleRequest {
  const requests: ResolvedRequest[] = [];
  const roots = new Map<string, ModuleReason>();
  const add = (name: string, reason: ModuleReason) => {
    if ((index.modules.has(name) || index.builtin.has(name)) && roots.get(name) !== 'requested')
      roots.set(name, reason);
  };
  for (const raw of words) {
    const word = raw.trim();
    if (word === '') continue;
    const preset = presetOf(word);
    if (preset) {
      const modules: string[] = [];
      for (const member of preset.modules) {
        const found = lookupModule(index, member);
        if (!found) {
          throw new IrbError(
            'IRB_KMOD_MODULE_UNKNOWN',
            `preset ${word} needs ${member}, which ${label} (${index.release}) has neither as a module nor built in; list the modules you need instead of ${word}`,
          );
        }
        for (const name of found.names) {
          modules.push(name);
          add(name, 'requested');
        }
      }
      for (const transport of VIRTIO_TRANSPORTS) {
        const found = lookupModule(index, transport);
        // A kernel without one transport at all is fine: the guest uses the other.
        for (const name of found?.names ?? []) {
          modules.push(name);
          add(name, 'transport');
        }
      }
      requests.push({ request: word, kind: 'preset', modules });
      continue;
    }
    const found = lookupModule(index, word);
    if (!found) throw unknown(index, word, label);
    for (const name of found.names) add(name, 'requested');
    requests.push({ request: word, kind: found.kind, modules: found.names });
  }
  return { requests, roots };
}

/** A closure in load order. */
export interface ModuleClosure {
  /** Module names, each after every module it needs. */
  order: string[];
  /** Why each is there. */
  reasons: Map<string, ModuleReason>;
  /** Builtin modules met on the way (asked for, or depended on): nothing to load. */
  builtin: string[];
  /** Soft dependencies that are neither a module, an alias nor builtin here: skipped, as modprobe skips them. */
  missingSoftdeps: string[];
}

/** Options of {@link moduleClosure}. */
export interface ClosureOptions {
  /** Follow soft dependencies (`pre:` loaded before, `post:` after). Default true. */
  softdeps?: boolean;
}

/**
 * Every module the roots need, in an order the kernel can load them: each module after all it
 * depends on. Among modules that could come next, the one whose name sorts first goes, so the
 * order depends only on the set and its edges — the same whether the edges are modules.dep's
 * (all dependencies) or modinfo's (the direct ones), and whatever order the list was given in.
 *
 * @throws IrbError `IRB_KMOD_FILE_MISSING` when a dependency is neither a module nor builtin;
 * `IRB_KMOD_DEPENDENCY_CYCLE` when hard dependencies form a cycle.
 */
export function moduleClosure(
  index: ModuleIndex,
  roots: ReadonlyMap<string, ModuleReason>,
  label: string,
  options: ClosureOptions = {},
): ModuleClosure {
  const withSoft = options.softdeps !== false;
  const reasons = new Map<string, ModuleReason>();
  const builtin = new Set<string>();
  const missingSoftdeps = new Set<string>();
  // Ordering edges: `after.get(x)` are the modules x must come after.
  const after = new Map<string, Set<string>>();
  const softAfter = new Map<string, Set<string>>();
  const edge = (map: Map<string, Set<string>>, node: string, before: string) => {
    let set = map.get(node);
    if (!set) {
      set = new Set();
      map.set(node, set);
    }
    set.add(before);
  };
  const queue: string[] = [];
  const include = (name: string, reason: ModuleReason) => {
    if (reasons.has(name)) return;
    reasons.set(name, reason);
    queue.push(name);
  };
  for (const [name, reason] of [...roots].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (index.modules.has(name)) include(name, reason);
    else builtin.add(name);
  }
  while (queue.length > 0) {
    const name = queue.shift() as string;
    const module = index.modules.get(name);
    if (!module) continue;
    for (const dep of module.deps) {
      if (index.modules.has(dep)) {
        include(dep, 'dependency');
        edge(after, name, dep);
      } else if (index.builtin.has(dep)) builtin.add(dep);
      else {
        throw new IrbError(
          'IRB_KMOD_FILE_MISSING',
          `${name} needs ${dep}, which ${label} (${index.release}) has neither as a module file nor built in; the tree is incomplete — give the whole lib/modules/${index.release}`,
        );
      }
    }
    const soft = withSoft ? index.softdeps.get(name) : undefined;
    for (const [kind, words] of [
      ['pre', soft?.pre ?? []],
      ['post', soft?.post ?? []],
    ] as const) {
      for (const word of words) {
        const found = lookupModule(index, word);
        if (!found) {
          missingSoftdeps.add(word);
          continue;
        }
        for (const target of found.names) {
          if (found.kind === 'builtin' || !index.modules.has(target)) {
            builtin.add(target);
            continue;
          }
          include(target, 'softdep');
          if (kind === 'pre') edge(softAfter, name, target);
          else edge(softAfter, target, name);
        }
      }
    }
  }
  const nodes = [...reasons.keys()];
  // Soft edges order what they can; when they would make a cycle, hard edges alone decide.
  const order = topologicalOrder(nodes, after, softAfter) ?? topologicalOrder(nodes, after, new Map());
  if (!order) throw cycleError(nodes, after, index.release);
  return { order, reasons, builtin: [...builtin].sort(), missingSoftdeps: [...missingSoftdeps].sort() };
}

/** Kahn's algorithm, the smallest name first among the ready ones; `undefined` on a cycle. */
function topologicalOrder(
  nodes: readonly string[],
  after: ReadonlyMap<string, ReadonlySet<string>>,
  softAfter: ReadonlyMap<string, ReadonlySet<string>>,
): string[] | undefined {
  const inSet = new Set(nodes);
  const waiting = new Map<string, number>();
  const next = new Map<string, string[]>();
  for (const node of nodes) {
    const before = new Set([...(after.get(node) ?? []), ...(softAfter.get(node) ?? [])]);
    let count = 0;
    for (const b of before) {
      if (!inSet.has(b) || b === node) continue;
      count++;
      const list = next.get(b);
      if (list) list.push(node);
      else next.set(b, [node]);
    }
    waiting.set(node, count);
  }
  const ready = nodes.filter((n) => waiting.get(n) === 0).sort();
  const order: string[] = [];
  while (ready.length > 0) {
    const node = ready.shift() as string;
    order.push(node);
    for (const n of next.get(node) ?? []) {
      const left = (waiting.get(n) as number) - 1;
      waiting.set(n, left);
      if (left === 0) {
        const at = ready.findIndex((r) => r > n);
        ready.splice(at < 0 ? ready.length : at, 0, n);
      }
    }
  }
  return order.length === nodes.length ? order : undefined;
}

function cycleError(
  nodes: readonly string[],
  after: ReadonlyMap<string, ReadonlySet<string>>,
  release: string,
): IrbError {
  // Walk dependencies from a node that could not be ordered until one repeats: that is a cycle.
  const stuck = new Set(nodes);
  const order = topologicalOrder(nodes, after, new Map()) ?? [];
  for (const n of order) stuck.delete(n);
  const path: string[] = [];
  let node = [...stuck].sort()[0] as string;
  while (!path.includes(node)) {
    path.push(node);
    node = [...(after.get(node) ?? [])].filter((d) => stuck.has(d)).sort()[0] as string;
  }
  const cycle = [...path.slice(path.indexOf(node)), node];
  return new IrbError(
    'IRB_KMOD_DEPENDENCY_CYCLE',
    `modules of ${release} depend on each other in a cycle (${cycle.join(' → ')}); no load order exists — run depmod again or fix the tree`,
  );
}
