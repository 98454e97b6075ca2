/*
 * Preparing the machine as a container runtime prepares a container: the API file systems, the
 * /dev links, the console.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef IRB_MACHINE_H
#define IRB_MACHINE_H

#include "base.h"

static unsigned long dev_of(const char *path, int *ok) {
  unsigned long st[32]; /* struct stat is 144 (x86_64) or 128 (aarch64) bytes; st_dev comes first on both */
  long r = sys_fstatat(IRB_AT_FDCWD, path, st, 0);
  *ok = r == 0;
  return st[0];
}

/* mkdir -p for an absolute path; errors surface when mounting. */
static void mkdirs(const char *path) {
  char buf[256];
  unsigned long n = slen(path);
  if (n >= sizeof buf) return;
  memcpy(buf, path, n + 1);
  for (unsigned long i = 1; i <= n; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char saved = buf[i];
      buf[i] = '\0';
      sys_mkdirat(IRB_AT_FDCWD, buf, 0755);
      buf[i] = saved;
    }
  }
}

/* Already a mount point (the kernel's devtmpfs automount, or a mount made before): its device
 * differs from its parent's. */
static int is_mounted(const char *path, const char *parent) {
  int ok1, ok2;
  unsigned long d1 = dev_of(path, &ok1), d2 = dev_of(parent, &ok2);
  return ok1 && ok2 && d1 != d2;
}

static void mount_one(const char *type, const char *source, const char *target, const char *parent,
                      unsigned long flags, const char *data) {
  mkdirs(target);
  if (is_mounted(target, parent)) return;
  long r = sys_mount(source, target, type, flags, data);
  if (r < 0 && r != -IRB_EBUSY) {
    struct line l = {.len = 0};
    put(&l, "irb-init: warning: could not mount ");
    put(&l, type);
    put(&l, " on ");
    put(&l, target);
    put(&l, ": ");
    put_errno(&l, -r);
    emit(2, &l);
  }
}

static void setup_mounts(void) {
  mount_one("proc", "proc", "/proc", "/", IRB_MS_NOSUID | IRB_MS_NODEV | IRB_MS_NOEXEC, 0);
  mount_one("sysfs", "sysfs", "/sys", "/", IRB_MS_NOSUID | IRB_MS_NODEV | IRB_MS_NOEXEC, 0);
  mount_one("devtmpfs", "devtmpfs", "/dev", "/", IRB_MS_NOSUID, "mode=0755");
  mount_one("devpts", "devpts", "/dev/pts", "/dev", IRB_MS_NOSUID | IRB_MS_NOEXEC, "mode=0620,ptmxmode=0666");
  mount_one("tmpfs", "shm", "/dev/shm", "/dev", IRB_MS_NOSUID | IRB_MS_NODEV, "mode=1777");
  mount_one("tmpfs", "tmpfs", "/run", "/", IRB_MS_NOSUID | IRB_MS_NODEV, "mode=0755");
  mount_one("tmpfs", "tmpfs", "/tmp", "/", IRB_MS_NOSUID | IRB_MS_NODEV, "mode=1777");
  /* The links a container runtime gives /dev; an existing name is kept. */
  sys_symlinkat("/proc/self/fd", IRB_AT_FDCWD, "/dev/fd");
  sys_symlinkat("/proc/self/fd/0", IRB_AT_FDCWD, "/dev/stdin");
  sys_symlinkat("/proc/self/fd/1", IRB_AT_FDCWD, "/dev/stdout");
  sys_symlinkat("/proc/self/fd/2", IRB_AT_FDCWD, "/dev/stderr");
}

/* The kernel gives init the console as fds 0-2 only when the archive has /dev/console. */
static void ensure_console(void) {
  if (sys_fcntl(1, IRB_F_GETFD, 0) >= 0) return;
  mkdirs("/dev");
  if (!is_mounted("/dev", "/")) sys_mount("devtmpfs", "/dev", "devtmpfs", IRB_MS_NOSUID, "mode=0755");
  long fd = sys_openat(IRB_AT_FDCWD, "/dev/console", IRB_O_RDWR, 0);
  if (fd < 0) return;
  for (int i = 0; i < 3; i++)
    if (fd != i) sys_dup3((int)fd, i, 0);
  if (fd > 2) sys_close((int)fd);
}

#endif
