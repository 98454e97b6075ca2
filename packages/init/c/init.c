/*
 * irb's static PID 1 for images with no shell.
 * SPDX-License-Identifier: Apache-2.0
 *
 * Built with -nostdlib -static -ffreestanding: no libc, raw Linux syscalls only (see
 * syscall.h), so one small binary per architecture runs in any image, even an empty one.
 *
 * It does what the generated shell /init of @irb/builder does: mount the API file systems,
 * set the hostname, bring lo up, then run the image's program with exactly the configured
 * environment, working directory and user; reap zombies while it waits, forward SIGTERM
 * and SIGINT to the program, print "irb: exit status N" and power off (or reboot).
 *
 * Its parameters come from /irb/init.conf (INIT_CONFIG_PATH in the TypeScript API), a
 * sequence of NUL-terminated fields: the magic "irb-init/1", then one field per value,
 * each a tag byte followed by the value's bytes (any byte but NUL):
 *   a  one argv word (in order, at least one)      e  one NAME=value env entry (in order)
 *   w  working directory                           u  uid (decimal)   g  gid (decimal)
 *   G  one supplementary group (decimal)           h  hostname
 *   x  "poweroff" or "reboot"
 */
#include "syscall.h"

#define CONFIG_PATH "/irb/init.conf"
#define CONFIG_MAGIC "irb-init/1"
#define CONFIG_MAX (1 << 20)
#define MAX_FIELDS 65536
#define MAX_GROUPS 65536
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* gcc may emit calls to these even when freestanding. */
void *memcpy(void *dst, const void *src, unsigned long n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}
void *memmove(void *dst, const void *src, unsigned long n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  if (d < s) {
    while (n--) *d++ = *s++;
  } else {
    while (n--) d[n] = s[n];
  }
  return dst;
}
void *memset(void *dst, int c, unsigned long n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}
int memcmp(const void *a, const void *b, unsigned long n) {
  const unsigned char *x = a, *y = b;
  for (; n; n--, x++, y++)
    if (*x != *y) return *x - *y;
  return 0;
}

static unsigned long slen(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

static int streq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

static int starts_with(const char *s, const char *prefix) {
  while (*prefix)
    if (*s++ != *prefix++) return 0;
  return 1;
}

/* ---- output: every message is built in one buffer and written with one write(2), so lines
 * from the program and from init never interleave inside a line. */

struct line {
  char buf[1024];
  unsigned long len;
};

static void put(struct line *l, const char *s) {
  while (*s && l->len < sizeof l->buf - 1) l->buf[l->len++] = *s++;
}

static void put_u(struct line *l, unsigned long v, int min_digits) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v || n < min_digits);
  while (n && l->len < sizeof l->buf - 1) l->buf[l->len++] = tmp[--n];
}

static void put_errno(struct line *l, long err) {
  const char *s = 0;
  switch (err) {
    case IRB_EPERM: s = "Operation not permitted"; break;
    case IRB_ENOENT: s = "No such file or directory"; break;
    case IRB_EIO: s = "Input/output error"; break;
    case IRB_E2BIG: s = "Argument list too long"; break;
    case IRB_ENOEXEC: s = "Exec format error"; break;
    case IRB_ENOMEM: s = "Cannot allocate memory"; break;
    case IRB_EACCES: s = "Permission denied"; break;
    case IRB_EBUSY: s = "Device or resource busy"; break;
    case IRB_ENODEV: s = "No such device"; break;
    case IRB_ENOTDIR: s = "Not a directory"; break;
    case IRB_EISDIR: s = "Is a directory"; break;
    case IRB_EINVAL: s = "Invalid argument"; break;
    case IRB_ETXTBSY: s = "Text file busy"; break;
    case IRB_ENAMETOOLONG: s = "File name too long"; break;
    case IRB_ELOOP: s = "Too many levels of symbolic links"; break;
    default: break;
  }
  if (s) {
    put(l, s);
  } else {
    put(l, "errno ");
    put_u(l, (unsigned long)err, 1);
  }
}

static void emit(int fd, struct line *l) {
  l->buf[l->len++] = '\n';
  unsigned long off = 0;
  while (off < l->len) {
    long n = sys_write(fd, l->buf + off, l->len - off);
    if (n == -IRB_EINTR) continue;
    if (n <= 0) break;
    off += (unsigned long)n;
  }
  l->len = 0;
}

/* One line "irb-init: <what><arg>: <error>" on stderr (the console). */
static void fail(const char *what, const char *arg, long err) {
  struct line l = {.len = 0};
  put(&l, "irb-init: ");
  put(&l, what);
  if (arg) put(&l, arg);
  if (err) {
    put(&l, ": ");
    put_errno(&l, err);
  }
  emit(2, &l);
}

/* CLOCK_BOOTTIME in microseconds. */
static unsigned long boottime_us(void) {
  struct irb_timespec ts = {0, 0};
  sys_clock_gettime(IRB_CLOCK_BOOTTIME, &ts);
  return (unsigned long)ts.tv_sec * 1000000UL + (unsigned long)ts.tv_nsec / 1000;
}

/* The kernel log's clock (printk's "[   2.034914]"), in microseconds, or -1 without /dev/kmsg.
 * It is not CLOCK_BOOTTIME: on arm64 under QEMU the two differ by a fifth of a second, so
 * markers stated in CLOCK_BOOTTIME could not be set against the kernel's own lines. No syscall
 * reads this clock, so a debug-level record is written to /dev/kmsg and read back with its
 * timestamp (level 7 is below the default console level: it does not show on the console). */
static long printk_us(void) {
  long fd = sys_openat(IRB_AT_FDCWD, "/dev/kmsg", IRB_O_RDWR | IRB_O_NONBLOCK | IRB_O_CLOEXEC, 0);
  if (fd < 0) return -1;
  long result = -1;
  static const char probe[] = "<7>irb: clock\n";
  if (sys_lseek((int)fd, 0, IRB_SEEK_END) >= 0 && sys_write((int)fd, probe, sizeof probe - 1) > 0) {
    /* Each read returns one record, "prio,seq,usec,flags;text\n"; another record may come first. */
    for (int tries = 0; tries < 32 && result < 0; tries++) {
      char rec[512];
      long n = sys_read((int)fd, rec, sizeof rec - 1);
      if (n == -IRB_EPIPE) continue; /* records were overwritten under us */
      if (n <= 0) break;
      rec[n] = '\0';
      char *text = rec;
      while (*text && *text != ';') text++;
      if (!*text || !starts_with(text + 1, "irb: clock")) continue;
      const char *p = rec;
      for (int commas = 0; *p && commas < 2; p++)
        if (*p == ',') commas++;
      unsigned long us = 0;
      int digits = 0;
      for (; *p >= '0' && *p <= '9'; p++, digits++) us = us * 10 + (unsigned long)(*p - '0');
      if (digits) result = (long)us;
    }
  }
  sys_close((int)fd);
  return result;
}

/* "irb: <event> <seconds with microseconds>": the boot timeline's markers, on the console, in
 * the kernel log's clock when /dev/kmsg is there (else CLOCK_BOOTTIME). `before_us` says how long
 * ago, in CLOCK_BOOTTIME, the event happened. */
static void marker(const char *event, unsigned long before_us) {
  long now = printk_us();
  unsigned long at = now >= 0 ? (unsigned long)now : boottime_us();
  at = at > before_us ? at - before_us : 0;
  struct line l = {.len = 0};
  put(&l, "irb: ");
  put(&l, event);
  put(&l, " ");
  put_u(&l, at / 1000000UL, 1);
  put(&l, ".");
  put_u(&l, at % 1000000UL, 6);
  emit(1, &l);
}

/* ---- the end: PID 1 must never exit (the kernel would panic), so it powers off or reboots. */

static int reboot_on_exit;
static int trace_on_exit;
/* Seconds after which the program is stopped (SIGTERM, then SIGKILL 2 s later); 0: never. */
static unsigned long stop_after;

__attribute__((noreturn)) static void finish(void) {
  sys_sync();
  long r = sys_reboot(reboot_on_exit ? IRB_RB_AUTOBOOT : IRB_RB_POWER_OFF);
  fail(reboot_on_exit ? "cannot reboot" : "cannot power off", 0, -r);
  /* The shell init's fallback: sysrq acts asynchronously, so keep waiting afterwards. */
  long fd = sys_openat(IRB_AT_FDCWD, "/proc/sysrq-trigger", IRB_O_WRONLY | IRB_O_CLOEXEC, 0);
  if (fd >= 0) {
    sys_write((int)fd, reboot_on_exit ? "b" : "o", 1);
    sys_close((int)fd);
  }
  for (;;) sys_ppoll_forever();
}

/* ---- trace: which files the run used.
 *
 * The kernel unpacks every file, directory and symlink with atime == mtime (both the archive's
 * mtime). A read, an exec, an mmap or following a symlink sets atime to now (relatime updates
 * an atime that is not newer than mtime), so after the program ran, the entries whose atime
 * differs from their mtime are the ones it used. They are printed as
 * "irb-trace: <f|d|l|o> <path as hex>" between "irb-trace: begin" and "irb-trace: end <count>".
 * Only the root filesystem is walked: /proc, /sys, /dev, /run and /tmp are other mounts. */

#if defined(__x86_64__)
#define IRB_O_DIRECTORY IRB_O_DIRECTORY_X86
#else
#define IRB_O_DIRECTORY IRB_O_DIRECTORY_ARM
#endif

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

__attribute__((noreturn)) static void finish_with_status(unsigned long status) {
  if (trace_on_exit) trace_walk();
  struct line l = {.len = 0};
  put(&l, "irb: exit status ");
  put_u(&l, status, 1);
  emit(1, &l);
  finish();
}

/* ---- configuration */

static char config[CONFIG_MAX + 1];
static char *argv_[MAX_FIELDS + 1];
static char *envp_[MAX_FIELDS + 1];
static unsigned int groups_[MAX_GROUPS];

struct init_config {
  unsigned long argc, envc, ngroups;
  const char *workdir, *hostname;
  unsigned long uid, gid;
};

static int parse_u32(const char *s, unsigned long *out) {
  unsigned long v = 0;
  if (!*s) return 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return 0;
    v = v * 10 + (unsigned long)(*s - '0');
    if (v > 0xffffffffUL) return 0;
  }
  *out = v;
  return 1;
}

/* Returns 0 on success; prints the problem and returns -1 otherwise. */
static int read_config(struct init_config *c) {
  long fd = sys_openat(IRB_AT_FDCWD, CONFIG_PATH, IRB_O_RDONLY | IRB_O_CLOEXEC, 0);
  if (fd < 0) {
    fail("cannot read " CONFIG_PATH, 0, -fd);
    return -1;
  }
  unsigned long len = 0;
  for (;;) {
    long n = sys_read((int)fd, config + len, CONFIG_MAX + 1 - len);
    if (n == -IRB_EINTR) continue;
    if (n < 0) {
      fail("cannot read " CONFIG_PATH, 0, -n);
      sys_close((int)fd);
      return -1;
    }
    if (n == 0) break;
    len += (unsigned long)n;
    if (len > CONFIG_MAX) {
      fail(CONFIG_PATH " is larger than 1 MiB", 0, 0);
      sys_close((int)fd);
      return -1;
    }
  }
  sys_close((int)fd);
  if (len == 0 || config[len - 1] != '\0') {
    fail(CONFIG_PATH " is truncated (its last field has no NUL terminator)", 0, 0);
    return -1;
  }
  unsigned long pos = 0;
  int first = 1;
  while (pos < len) {
    char *field = config + pos;
    pos += slen(field) + 1;
    if (first) {
      first = 0;
      if (!streq(field, CONFIG_MAGIC)) {
        fail(CONFIG_PATH " does not start with " CONFIG_MAGIC "; rebuild the archive with this irb", 0, 0);
        return -1;
      }
      continue;
    }
    char tag = field[0];
    char *value = field + (tag ? 1 : 0);
    unsigned long n;
    switch (tag) {
      case 'a':
      case 'e':
        if ((tag == 'a' ? c->argc : c->envc) >= MAX_FIELDS) {
          fail(CONFIG_PATH " has too many argv or env entries", 0, 0);
          return -1;
        }
        if (tag == 'a') argv_[c->argc++] = value;
        else envp_[c->envc++] = value;
        break;
      case 'w': c->workdir = value; break;
      case 'h': c->hostname = value; break;
      case 'u':
      case 'g':
      case 'G':
        if (!parse_u32(value, &n)) {
          fail(CONFIG_PATH " has a bad id: ", value, 0);
          return -1;
        }
        if (tag == 'u') c->uid = n;
        else if (tag == 'g') c->gid = n;
        else if (c->ngroups >= MAX_GROUPS) {
          fail(CONFIG_PATH " has too many groups", 0, 0);
          return -1;
        } else groups_[c->ngroups++] = (unsigned int)n;
        break;
      case 't':
        trace_on_exit = streq(value, "1");
        break;
      case 'T':
        if (!parse_u32(value, &n)) {
          fail(CONFIG_PATH " has a bad timeout: ", value, 0);
          return -1;
        }
        stop_after = n;
        break;
      case 'x':
        if (streq(value, "reboot")) reboot_on_exit = 1;
        else if (!streq(value, "poweroff")) {
          fail(CONFIG_PATH " has an unknown exit action: ", value, 0);
          return -1;
        }
        break;
      default:
        fail(CONFIG_PATH " has an unknown field; rebuild the archive with this irb", 0, 0);
        return -1;
    }
  }
  if (first) {
    fail(CONFIG_PATH " is empty", 0, 0);
    return -1;
  }
  if (c->argc == 0) {
    fail(CONFIG_PATH " has no program to run (no argv)", 0, 0);
    return -1;
  }
  argv_[c->argc] = 0;
  envp_[c->envc] = 0;
  return 0;
}

/* ---- setting up the machine */

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

static void loopback_up(void) {
  long s = sys_socket(IRB_AF_INET, IRB_SOCK_DGRAM | IRB_SOCK_CLOEXEC, 0);
  if (s < 0) return;
  /* struct ifreq: 16 bytes of name, then the union whose first member is ifr_flags (short). */
  union {
    char bytes[40];
    unsigned long align;
  } ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.bytes, "lo", 3);
  if (sys_ioctl((int)s, IRB_SIOCGIFFLAGS, &ifr) == 0) {
    short flags;
    memcpy(&flags, ifr.bytes + 16, sizeof flags);
    flags |= IRB_IFF_UP;
    memcpy(ifr.bytes + 16, &flags, sizeof flags);
    sys_ioctl((int)s, IRB_SIOCSIFFLAGS, &ifr);
  }
  sys_close((int)s);
}

/* ---- running the program */

static const char *find_path(char *const envp[]) {
  for (; *envp; envp++)
    if (starts_with(*envp, "PATH=")) return *envp + 5;
  return DEFAULT_PATH;
}

/* execve, with a script without #! handed to /bin/sh as execvp does. */
static long try_exec(const char *file, char *const argv[], char *const envp[], unsigned long argc) {
  long r = sys_execve(file, argv, envp);
  if (r == -IRB_ENOEXEC && argc < MAX_FIELDS) {
    static char *sh_argv[MAX_FIELDS + 2];
    sh_argv[0] = "sh";
    sh_argv[1] = (char *)file;
    for (unsigned long i = 1; i <= argc; i++) sh_argv[i + 1] = argv[i];
    sys_execve("/bin/sh", sh_argv, envp);
  }
  return r;
}

/* execvp semantics: a name with '/' is run as is; otherwise each PATH entry is tried in turn
 * (an empty one means the working directory); EACCES is remembered and reported if nothing
 * else was found. Returns the errno that explains the failure. */
static long exec_program(char *const argv[], char *const envp[], unsigned long argc) {
  const char *name = argv[0];
  for (const char *p = name; *p; p++)
    if (*p == '/') return -try_exec(name, argv, envp, argc);
  if (!*name) return IRB_ENOENT;
  const char *path = find_path(envp);
  unsigned long nlen = slen(name);
  static char buf[4096];
  int saw_eacces = 0;
  for (;;) {
    const char *end = path;
    while (*end && *end != ':') end++;
    unsigned long dlen = (unsigned long)(end - path);
    if (dlen + 1 + nlen + 1 <= sizeof buf) {
      unsigned long k = 0;
      if (dlen) {
        memcpy(buf, path, dlen);
        k = dlen;
        buf[k++] = '/';
      }
      memcpy(buf + k, name, nlen + 1);
      long err = -try_exec(buf, argv, envp, argc);
      if (err == IRB_EACCES) saw_eacces = 1;
      else if (err != IRB_ENOENT && err != IRB_ENOTDIR && err != IRB_ENAMETOOLONG && err != IRB_ELOOP) return err;
    }
    if (!*end) break;
    path = end + 1;
  }
  return saw_eacces ? IRB_EACCES : IRB_ENOENT;
}

__attribute__((noreturn)) static void child(const struct init_config *c) {
  /* Stamped before the user switch, which takes /dev/kmsg (root only) and its clock away. */
  marker("exec", 0);
  irb_sigset_t none = 0;
  sys_rt_sigprocmask(IRB_SIG_SETMASK, &none, 0);
  long r = sys_setgroups(c->ngroups, groups_);
  if (r == 0) r = sys_setgid(c->gid);
  if (r == 0) r = sys_setuid(c->uid);
  if (r < 0) {
    struct line l = {.len = 0};
    put(&l, "irb-init: cannot switch to uid ");
    put_u(&l, c->uid, 1);
    put(&l, " gid ");
    put_u(&l, c->gid, 1);
    put(&l, ": ");
    put_errno(&l, -r);
    emit(2, &l);
    sys_exit_group(126);
  }
  long err = exec_program(argv_, envp_, c->argc);
  fail("cannot execute ", argv_[0], err);
  /* Like a shell: 127 when the program was not found, 126 when it could not run. */
  sys_exit_group(err == IRB_ENOENT || err == IRB_ENOTDIR ? 127 : 126);
}

static unsigned long wait_status_code(int status) {
  if ((status & 0x7f) == 0) return (unsigned long)((status >> 8) & 0xff);
  return 128 + (unsigned long)(status & 0x7f); /* killed by a signal: what sh reports */
}

void irb_main(void) {
  unsigned long start = boottime_us();
  ensure_console();
  /* Mounted first, as the shell init does: the marker's clock needs /dev/kmsg, and a config
   * error still finds /proc for the sysrq fallback. */
  setup_mounts();
  marker("init", boottime_us() - start);
  struct init_config c;
  memset(&c, 0, sizeof c);
  c.workdir = "/";
  c.hostname = "irb";
  if (read_config(&c) < 0) finish();
  sys_sethostname(c.hostname, slen(c.hostname));
  loopback_up();
  long r = sys_chdir(c.workdir);
  if (r < 0) {
    struct line l = {.len = 0};
    put(&l, "irb-init: cannot change to WorkingDir ");
    put(&l, c.workdir);
    put(&l, ": ");
    put_errno(&l, -r);
    emit(2, &l);
    finish_with_status(126);
  }

  /* Signals are taken from a signalfd, not handlers: no sigreturn trampoline is needed, and a
   * blocked signal is queued for PID 1 even though its disposition is SIG_DFL. */
  irb_sigset_t mask =
      IRB_SIGBIT(IRB_SIGCHLD) | IRB_SIGBIT(IRB_SIGTERM) | IRB_SIGBIT(IRB_SIGINT) | IRB_SIGBIT(IRB_SIGALRM);
  sys_rt_sigprocmask(IRB_SIG_BLOCK, &mask, 0);
  long sfd = sys_signalfd4(-1, &mask, IRB_SFD_CLOEXEC);
  if (sfd < 0) {
    fail("cannot create a signalfd", 0, -sfd);
    finish_with_status(126);
  }
  long pid = sys_fork();
  if (pid < 0) {
    fail("cannot start the program", 0, -pid);
    finish_with_status(126);
  }
  if (pid == 0) child(&c);
  if (stop_after) sys_setitimer_seconds(stop_after);
  int stopping = 0;

  for (;;) {
    /* struct signalfd_siginfo is 128 bytes; ssi_signo is its first field. */
    unsigned int info[32 * 8];
    long n = sys_read((int)sfd, info, sizeof info);
    if (n == -IRB_EINTR) continue;
    if (n < 0) {
      fail("cannot read the signalfd", 0, -n);
      finish_with_status(126);
    }
    for (long off = 0; off + 128 <= n; off += 128) {
      unsigned int sig = info[off / 4];
      if (sig == IRB_SIGTERM || sig == IRB_SIGINT) sys_kill(pid, (int)sig);
      if (sig == IRB_SIGALRM) {
        /* The run's time is up (a server does not exit by itself): stop it, harder if it must be. */
        struct line l = {.len = 0};
        put(&l, stopping ? "irb: the program did not stop; killing it" : "irb: time is up; stopping the program");
        emit(1, &l);
        sys_kill(pid, stopping ? IRB_SIGKILL : IRB_SIGTERM);
        if (!stopping) sys_setitimer_seconds(2);
        stopping = 1;
      }
    }
    /* Reap every child, orphans included; SIGCHLDs coalesce, so loop until none is left. */
    for (;;) {
      int status = 0;
      long r = sys_wait4(-1, &status, IRB_WNOHANG);
      if (r <= 0) break;
      if (r == pid) finish_with_status(wait_status_code(status));
    }
  }
}
