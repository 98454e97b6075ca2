/*
 * Trace mode: after the program ran, which files of the root filesystem it used.
 * SPDX-License-Identifier: Apache-2.0
 *
 * The kernel unpacks every file, directory and symlink with atime == mtime (both the archive's
 * mtime). A read, an exec, an mmap or following a symlink sets atime to now (relatime updates
 * an atime that is not newer than mtime), so after the program ran, the entries whose atime
 * differs from their mtime are the ones it used. They are printed as
 * "irb-trace: <f|d|l|o> <path as hex>" between "irb-trace: begin" and "irb-trace: end <count>".
 * Only the root filesystem is walked: /proc, /sys, /dev, /run and /tmp are other mounts.
 */
#ifndef IRB_TRACE_H
#define IRB_TRACE_H

#include "base.h"

static char trace_path[4096 + 2];
static unsigned long trace_count;
static unsigned int root_dev_major, root_dev_minor;

struct irb_statx_view {
  unsigned short mode;
  long long atime_sec, mtime_sec;
  unsigned int atime_nsec, mtime_nsec;
  unsigned int dev_major, dev_minor;
};

static int statx_at(int dir, const char *name, struct irb_statx_view *v) {
  unsigned char buf[256];
  long r = sys_statx(dir, name, IRB_AT_SYMLINK_NOFOLLOW, IRB_STATX_BASIC_STATS, buf);
  if (r < 0) return -1;
  memcpy(&v->mode, buf + 28, 2);
  memcpy(&v->atime_sec, buf + 64, 8);
  memcpy(&v->atime_nsec, buf + 72, 4);
  memcpy(&v->mtime_sec, buf + 112, 8);
  memcpy(&v->mtime_nsec, buf + 120, 4);
  memcpy(&v->dev_major, buf + 136, 4);
  memcpy(&v->dev_minor, buf + 140, 4);
  return 0;
}

static void trace_emit(char kind, unsigned long len) {
  static const char hex[] = "0123456789abcdef";
  static char out[16 + 2 * sizeof trace_path];
  unsigned long n = 0;
  const char *prefix = "irb-trace: ";
  while (*prefix) out[n++] = *prefix++;
  out[n++] = kind;
  out[n++] = ' ';
  for (unsigned long i = 0; i < len; i++) {
    unsigned char b = (unsigned char)trace_path[i];
    out[n++] = hex[b >> 4];
    out[n++] = hex[b & 15];
  }
  out[n++] = '\n';
  unsigned long off = 0;
  while (off < n) {
    long w = sys_write(1, out + off, n - off);
    if (w == -IRB_EINTR) continue;
    if (w <= 0) break;
    off += (unsigned long)w;
  }
  trace_count++;
}

static void trace_dir(int dirfd, unsigned long len) {
  static unsigned char dents[4096];
  for (;;) {
    long n = sys_getdents64(dirfd, dents, sizeof dents);
    if (n == -IRB_EINTR) continue;
    if (n <= 0) return;
    /* Entries are handled after the whole buffer was read: the recursion reuses `dents`. */
    static char names[8192];
    unsigned long used = 0;
    for (long off = 0; off < n;) {
      unsigned short reclen;
      memcpy(&reclen, dents + off + 16, 2);
      const char *name = (const char *)dents + off + 19;
      unsigned long nl = slen(name);
      if (!(name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) && used + nl + 1 <= sizeof names) {
        memcpy(names + used, name, nl + 1);
        used += nl + 1;
      }
      off += reclen;
    }
    /* Copy out of the static buffer: the recursion below overwrites it. */
    char local[8192];
    memcpy(local, names, used);
    for (unsigned long p = 0; p < used;) {
      const char *name = local + p;
      unsigned long nl = slen(name);
      p += nl + 1;
      if (len + 1 + nl >= sizeof trace_path - 1) continue;
      unsigned long sub = len;
      trace_path[sub++] = '/';
      memcpy(trace_path + sub, name, nl);
      sub += nl;
      trace_path[sub] = 0;
      struct irb_statx_view v;
      if (statx_at(dirfd, name, &v) < 0) continue;
      if (v.dev_major != root_dev_major || v.dev_minor != root_dev_minor) continue;
      unsigned int type = v.mode & 0170000;
      int used_it = v.atime_sec != v.mtime_sec || v.atime_nsec != v.mtime_nsec;
      char kind = type == 0040000 ? 'd' : type == 0100000 ? 'f' : type == 0120000 ? 'l' : 'o';
      if (used_it) trace_emit(kind, sub);
      if (type == 0040000) {
        long fd = sys_openat(dirfd, name, IRB_O_RDONLY | IRB_O_DIRECTORY | IRB_O_CLOEXEC, 0);
        if (fd >= 0) {
          trace_dir((int)fd, sub);
          sys_close((int)fd);
        }
      }
      trace_path[len] = 0;
    }
  }
}

static void trace_walk(void) {
  struct irb_statx_view root;
  struct line l = {.len = 0};
  put(&l, "irb-trace: begin");
  emit(1, &l);
  trace_count = 0;
  if (statx_at(IRB_AT_FDCWD, "/", &root) == 0) {
    root_dev_major = root.dev_major;
    root_dev_minor = root.dev_minor;
    long fd = sys_openat(IRB_AT_FDCWD, "/", IRB_O_RDONLY | IRB_O_DIRECTORY | IRB_O_CLOEXEC, 0);
    if (fd >= 0) {
      trace_path[0] = 0;
      trace_dir((int)fd, 0);
      sys_close((int)fd);
    }
  }
  put(&l, "irb-trace: end ");
  put_u(&l, trace_count, 1);
  emit(1, &l);
}

#endif
