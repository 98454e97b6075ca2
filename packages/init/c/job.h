/*
 * Per-job overrides: the files in /irb/job.d that `irb append` members carry, applied in name
 * order over the program of /irb/init.conf (or, for the shell init, of `init exec`'s arguments),
 * `docker run` style; and the user given by name, resolved at boot from the guest's
 * /etc/passwd and /etc/group (an appended member cannot read them when it is built).
 * SPDX-License-Identifier: Apache-2.0
 *
 * A job file is NUL-terminated fields like init.conf: the magic "irb-job/1", then
 *   p  the entrypoint (one path): replaces the Entrypoint and clears the Cmd
 *   c  one Cmd word (in order): the words replace the Cmd (after p's, when both are given)
 *   e  one NAME=value: added, or replacing the variable of that name
 *   w  the working directory       U  the user: UID[:GID] or NAME[:GROUP]
 * Each file changes only what it names; a later file wins field by field.
 */
#ifndef IRB_JOB_H
#define IRB_JOB_H

#include "base.h"

#define JOB_DIR "/irb/job.d"
#define JOB_MAGIC "irb-job/1"
#define MAX_JOBS 256
#define MAX_FIELDS 65536
#define MAX_GROUPS 65536

/* What runs: argv_ (the first entry_n words are the Entrypoint), envp_, the ids. */
static char *argv_[MAX_FIELDS + 1];
static char *envp_[MAX_FIELDS + 1];
static unsigned int groups_[MAX_GROUPS];

struct program {
  unsigned long argc, envc, ngroups, entry_n;
  const char *workdir;
  unsigned long uid, gid;
  /* HOME was the user's home directory (irb added it), so it follows a job's user. */
  int home_from_user;
};

/* The length of NAME in "NAME=value" (the whole string when there is no '='). */
static unsigned long env_name_len(const char *kv) {
  unsigned long n = 0;
  while (kv[n] && kv[n] != '=') n++;
  return n;
}

/* Adds kv, or replaces the entry with its name; 0, or -1 when the table is full. */
static int env_set(struct program *p, char *kv) {
  unsigned long n = env_name_len(kv);
  for (unsigned long i = 0; i < p->envc; i++) {
    if (env_name_len(envp_[i]) == n && memcmp(envp_[i], kv, n) == 0) {
      envp_[i] = kv;
      return 0;
    }
  }
  if (p->envc >= MAX_FIELDS) return -1;
  envp_[p->envc++] = kv;
  envp_[p->envc] = 0;
  return 0;
}

/* ---- users: /etc/passwd and /etc/group, as runc reads them */

static char userdb[1 << 20];

/* The next line of a NUL-terminated buffer, split at ':' into at most `max` fields (the line is
 * changed); returns the number of fields, 0 at the end. */
static int next_record(char **cursor, char **fields, int max) {
  char *p = *cursor;
  if (!*p) return 0;
  char *end = p;
  while (*end && *end != '\n') end++;
  *cursor = *end ? end + 1 : end;
  *end = '\0';
  int n = 0;
  fields[n++] = p;
  for (; *p; p++) {
    if (*p == ':' && n < max) {
      *p = '\0';
      fields[n++] = p + 1;
    }
  }
  return n;
}

static void user_failed(const char *what, const char *name) {
  struct line l = {.len = 0};
  put(&l, "irb-init: ");
  put(&l, what);
  put(&l, " ");
  put(&l, name);
  put(&l, " is not in ");
  put(&l, what[0] == 'u' ? "/etc/passwd" : "/etc/group");
  put(&l, "; give a numeric id, or add it to the image");
  emit(2, &l);
}

static char home_env[4096 + 6];

/* Resolves "UID[:GID]" or "NAME[:GROUP]" (spec is changed) into p's ids and groups: the primary
 * group from passwd when none is given, supplementary groups from group membership (none when
 * the group was given), HOME from passwd when it followed the user. 0, or -1 after a line. */
static int resolve_user(struct program *p, char *spec) {
  char *group = spec;
  while (*group && *group != ':') group++;
  if (*group) *group++ = '\0';
  else group = 0;
  static char name[256];
  name[0] = '\0';
  const char *home = "/";
  unsigned long uid = 0, gid = 0;
  int numeric = parse_u32(spec, &uid), have_entry = 0;
  long n = read_file(IRB_AT_FDCWD, "/etc/passwd", userdb, sizeof userdb - 1);
  if (n < 0 && !numeric) {
    fail("cannot read /etc/passwd", 0, -n);
    return -1;
  }
  static char home_buf[4096];
  char *cursor = n < 0 ? (char *)"" : userdb, *f[7];
  for (int k; (k = next_record(&cursor, f, 7));) {
    unsigned long u, g;
    if (k < 7 || f[0][0] == '#' || !parse_u32(f[2], &u) || !parse_u32(f[3], &g)) continue;
    if (numeric ? u != uid : !streq(f[0], spec)) continue;
    if (slen(f[0]) >= sizeof name || slen(f[5]) >= sizeof home_buf) continue;
    memcpy(name, f[0], slen(f[0]) + 1);
    memcpy(home_buf, f[5], slen(f[5]) + 1);
    if (*home_buf) home = home_buf;
    uid = u;
    gid = g;
    have_entry = 1;
    break;
  }
  if (!numeric && !have_entry) {
    user_failed("user", spec);
    return -1;
  }
  unsigned long ngroups = 0;
  int explicit_group = group && *group;
  if (explicit_group && !parse_u32(group, &gid)) {
    n = read_file(IRB_AT_FDCWD, "/etc/group", userdb, sizeof userdb - 1);
    cursor = n < 0 ? (char *)"" : userdb;
    int found = 0;
    for (int k; !found && (k = next_record(&cursor, f, 4));) {
      if (k >= 4 && f[0][0] != '#' && streq(f[0], group) && parse_u32(f[2], &gid)) found = 1;
    }
    if (!found) {
      user_failed("group", group);
      return -1;
    }
  } else if (!explicit_group && have_entry) {
    n = read_file(IRB_AT_FDCWD, "/etc/group", userdb, sizeof userdb - 1);
    cursor = n < 0 ? (char *)"" : userdb;
    for (int k; (k = next_record(&cursor, f, 4));) {
      unsigned long g;
      if (k < 4 || f[0][0] == '#' || !parse_u32(f[2], &g) || g == gid) continue;
      int member = 0;
      for (char *m = f[3]; *m && !member;) {
        char *e = m;
        while (*e && *e != ',') e++;
        char saved = *e;
        *e = '\0';
        member = streq(m, name);
        *e = saved;
        m = saved ? e + 1 : e;
      }
      if (!member) continue;
      /* Sorted, each once (as the builder resolves an image's User). */
      unsigned long at = 0;
      while (at < ngroups && groups_[at] < g) at++;
      if ((at < ngroups && groups_[at] == g) || ngroups >= MAX_GROUPS) continue;
      memmove(groups_ + at + 1, groups_ + at, (ngroups - at) * sizeof groups_[0]);
      groups_[at] = (unsigned int)g;
      ngroups++;
    }
  }
  p->uid = uid;
  p->gid = gid;
  p->ngroups = ngroups;
  if (p->home_from_user) {
    memcpy(home_env, "HOME=", 5);
    memcpy(home_env + 5, home, slen(home) + 1);
    if (env_set(p, home_env) < 0) return -1;
  }
  return 0;
}

/* ---- the job files */

static char jobs[1 << 20];

static void job_failed(const char *name, const char *why) {
  struct line l = {.len = 0};
  put(&l, "irb-init: " JOB_DIR "/");
  put(&l, name);
  put(&l, " ");
  put(&l, why);
  put(&l, "; the job cannot run as asked");
  emit(2, &l);
}

/* Applies one job file's fields (NUL-terminated, magic first) to p; 0, or -1 after a line. */
static int apply_job(struct program *p, const char *name, char *buf, unsigned long len, char **user) {
  if (len == 0 || buf[len - 1] != '\0') {
    job_failed(name, "is truncated (its last field has no NUL terminator)");
    return -1;
  }
  if (!streq(buf, JOB_MAGIC)) {
    job_failed(name, "does not start with " JOB_MAGIC);
    return -1;
  }
  /* Two passes: an entrypoint clears the Cmd wherever its field stands among the Cmd words. */
  unsigned long start = slen(buf) + 1, ncmd = 0;
  char *entry = 0;
  for (unsigned long pos = start; pos < len; pos += slen(buf + pos) + 1) {
    char tag = buf[pos];
    if (tag == 'p') entry = buf + pos + 1;
    else if (tag == 'c') ncmd++;
    else if (tag != 'e' && tag != 'w' && tag != 'U') {
      job_failed(name, "has an unknown field");
      return -1;
    }
  }
  if (entry) {
    argv_[0] = entry;
    p->argc = p->entry_n = 1;
  } else if (ncmd) {
    p->argc = p->entry_n;
  }
  for (unsigned long pos = start; pos < len; pos += slen(buf + pos) + 1) {
    char *value = buf + pos + 1;
    switch (buf[pos]) {
      case 'c':
        if (p->argc >= MAX_FIELDS) {
          job_failed(name, "has too many Cmd words");
          return -1;
        }
        argv_[p->argc++] = value;
        break;
      case 'e':
        if (env_name_len(value) == 0 || !value[env_name_len(value)] || env_set(p, value) < 0) {
          job_failed(name, "has an env entry that is not NAME=value, or too many");
          return -1;
        }
        if (starts_with(value, "HOME=")) p->home_from_user = 0;
        break;
      case 'w':
        if (value[0] != '/') {
          job_failed(name, "has a working directory that is not absolute");
          return -1;
        }
        p->workdir = value;
        break;
      case 'U': *user = value; break;
      default: break;
    }
  }
  argv_[p->argc] = 0;
  return 0;
}

/* Reads JOB_DIR's *.conf files in name order and applies them, then resolves the user the last
 * one named. Without the directory nothing changes. 0, or -1 after a line. */
static int apply_jobs(struct program *p) {
  long dir = sys_openat(IRB_AT_FDCWD, JOB_DIR, IRB_O_RDONLY | IRB_O_DIRECTORY | IRB_O_CLOEXEC, 0);
  if (dir == -IRB_ENOENT) return 0;
  if (dir < 0) {
    fail("cannot read " JOB_DIR, 0, -dir);
    return -1;
  }
  /* Names, then their contents, share one buffer: names from the front, files after them. */
  static char *names[MAX_JOBS];
  static unsigned char dents[4096];
  unsigned long used = 0, count = 0;
  int result = 0;
  for (int rounds = 0; rounds < 4096 && result == 0; rounds++) {
    long n = sys_getdents64((int)dir, dents, sizeof dents);
    if (n <= 0) break;
    for (long off = 0; off < n && result == 0;) {
      unsigned short reclen;
      memcpy(&reclen, dents + off + 16, 2);
      const char *name = (const char *)dents + off + 19;
      off += reclen;
      unsigned long nl = slen(name);
      if (name[0] == '.' || nl < 6 || !streq(name + nl - 5, ".conf")) continue;
      if (count >= MAX_JOBS || used + nl + 1 > sizeof jobs / 4) {
        fail(JOB_DIR " holds too many job files", 0, 0);
        result = -1;
        break;
      }
      /* Insertion in byte order of the names. */
      char *copy = jobs + used;
      memcpy(copy, name, nl + 1);
      used += nl + 1;
      unsigned long at = count;
      while (at > 0 && scmp(names[at - 1], copy) > 0) {
        names[at] = names[at - 1];
        at--;
      }
      names[at] = copy;
      count++;
    }
  }
  char *user = 0;
  for (unsigned long i = 0; i < count && result == 0; i++) {
    long len = read_file((int)dir, names[i], jobs + used, sizeof jobs - used - 1);
    if (len < 0) {
      fail("cannot read " JOB_DIR "/", names[i], -len);
      result = -1;
      break;
    }
    result = apply_job(p, names[i], jobs + used, (unsigned long)len, &user);
    used += (unsigned long)len + 1;
  }
  sys_close((int)dir);
  if (result == 0 && user) result = resolve_user(p, user);
  return result;
}

#endif
