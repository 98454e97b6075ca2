import { IrbError } from '@irb/errors';

/** One line of `/etc/passwd`. */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** One line of `/etc/group`. */
export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** The user a container runtime would run the image's program as. */
export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups (from `/etc/group` membership), sorted, without `gid`. */
  groups: number[];
  /** The user name when `/etc/passwd` knows the user. */
  name?: string;
  /** Home directory from `/etc/passwd`, `/` otherwise (what runc uses for `HOME`). */
  home: string;
}

const ID = /^\d+$/;

/** Parses `/etc/passwd` text; malformed lines are skipped like libc does. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) continue;
    const [name, , uid, gid, , home, shell] = f as [string, string, string, string, string, string, string];
    if (!ID.test(uid) || !ID.test(gid)) continue;
    out.push({ name, uid: Number(uid), gid: Number(gid), home, shell });
  }
  return out;
}

/** Parses `/etc/group` text; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#')) continue;
    const [name, , gid, members] = f as [string, string, string, string];
    if (!ID.test(gid)) continue;
    out.push({ name, gid: Number(gid), members: members.split(',').filter(Boolean) });
  }
  return out;
}

/**
 * Resolves an image config's `User` (`user`, `uid`, `user:group`, `uid:gid`, …) the way runc does:
 * names through the image's `/etc/passwd` and `/etc/group`, numbers as they are, the primary group
 * from passwd when no group is given, supplementary groups from group membership.
 * An empty spec means root.
 */
export function resolveUser(
  spec: string,
  passwd: readonly PasswdEntry[],
  group: readonly GroupEntry[],
): ResolvedUser {
  const trimmed = spec.trim() || '0';
  const colon = trimmed.indexOf(':');
  const userPart = colon < 0 ? trimmed : trimmed.slice(0, colon);
  const groupPart = colon < 0 ? undefined : trimmed.slice(colon + 1);
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (ID.test(userPart)) {
    uid = Number(userPart);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === userPart);
    if (!entry) {
      throw new IrbError(
        'IRB_USER_UNKNOWN',
        `the image's User "${userPart}" is not in its /etc/passwd; use a numeric uid[:gid] in the image config, or set \`init\` to your own init program`,
      );
    }
    uid = entry.uid;
  }
  let gid: number;
  let explicitGroup = false;
  if (groupPart !== undefined && groupPart !== '') {
    explicitGroup = true;
    if (ID.test(groupPart)) gid = Number(groupPart);
    else {
      const g = group.find((x) => x.name === groupPart);
      if (!g) {
        throw new IrbError(
          'IRB_GROUP_UNKNOWN',
          `the image's group "${groupPart}" is not in its /etc/group; use a numeric gid in the image config, or set \`init\` to your own init program`,
        );
      }
      gid = g.gid;
    }
  } else gid = entry?.gid ?? 0;
  if (uid > 0xffffffff || gid > 0xffffffff) {
    throw new IrbError(
      'IRB_USER_INVALID',
      `the image's User "${spec}" is out of range; fix the image config`,
    );
  }
  const name = entry?.name;
  // runc adds supplementary groups only when the group was not forced.
  const groups =
    name !== undefined && !explicitGroup
      ? [...new Set(group.filter((g) => g.members.includes(name) && g.gid !== gid).map((g) => g.gid))].sort(
          (a, b) => a - b,
        )
      : [];
  const resolved: ResolvedUser = { uid, gid, groups, home: entry?.home || '/' };
  if (name !== undefined) resolved.name = name;
  return resolved;
}
