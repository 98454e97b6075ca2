/*
 * The few Linux syscalls irb's init needs, for x86_64 and aarch64, without libc.
 * SPDX-License-Identifier: Apache-2.0
 *
 * Only the *at and generic variants are used, since aarch64 has no open, mkdir, fork or pause.
 * Every wrapper returns the raw kernel result: >= 0 on success, -errno on failure.
 */
#ifndef IRB_SYSCALL_H
#define IRB_SYSCALL_H

#if defined(__x86_64__)
#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_lseek 8
#define NR_rt_sigprocmask 14
#define NR_ioctl 16
#define NR_socket 41
#define NR_clone 56
#define NR_execve 59
#define NR_wait4 61
#define NR_kill 62
#define NR_fcntl 72
#define NR_chdir 80
#define NR_setuid 105
#define NR_setgid 106
#define NR_setgroups 116
#define NR_sync 162
#define NR_mount 165
#define NR_reboot 169
#define NR_sethostname 170
#define NR_clock_gettime 228
#define NR_exit_group 231
#define NR_openat 257
#define NR_mkdirat 258
#define NR_fstatat 262
#define NR_symlinkat 266
#define NR_ppoll 271
#define NR_signalfd4 289
#define NR_dup3 292
#define NR_getdents64 217
#define NR_setitimer 38
#define NR_statx 332
#define NR_getpid 39
#define NR_setdomainname 171
#define NR_finit_module 313
#define NR_renameat2 316

static inline long irb_syscall6(long n, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

/* The kernel enters with the stack 16-byte aligned and argc on it; C wants rsp = 8 mod 16 after a
 * call. irb_main gets the stack pointer: argc, then argv, a NULL, envp, a NULL. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call irb_main\n"
        "  hlt\n");

#elif defined(__aarch64__)
#define NR_dup3 24
#define NR_fcntl 25
#define NR_ioctl 29
#define NR_mkdirat 34
#define NR_symlinkat 36
#define NR_mount 40
#define NR_chdir 49
#define NR_openat 56
#define NR_close 57
#define NR_lseek 62
#define NR_read 63
#define NR_write 64
#define NR_ppoll 73
#define NR_signalfd4 74
#define NR_fstatat 79
#define NR_sync 81
#define NR_exit_group 94
#define NR_clock_gettime 113
#define NR_kill 129
#define NR_rt_sigprocmask 135
#define NR_reboot 142
#define NR_setgid 144
#define NR_setuid 146
#define NR_setgroups 159
#define NR_sethostname 161
#define NR_socket 198
#define NR_clone 220
#define NR_execve 221
#define NR_wait4 260
#define NR_getdents64 61
#define NR_setitimer 103
#define NR_statx 291
#define NR_getpid 172
#define NR_setdomainname 162
#define NR_finit_module 273
#define NR_renameat2 276

static inline long irb_syscall6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory", "cc");
  return x0;
}

__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  mov x29, #0\n"
        "  mov x30, #0\n"
        "  mov x0, sp\n"
        "  bl irb_main\n"
        "  brk #0\n");

#else
#error "irb init supports x86_64 and aarch64"
#endif

#define SC(n, a, b, c, d, e, f) irb_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* errno values (asm-generic, the same on both architectures) */
#define IRB_EPERM 1
#define IRB_ENOENT 2
#define IRB_EINTR 4
#define IRB_EIO 5
#define IRB_E2BIG 7
#define IRB_ENOEXEC 8
#define IRB_ENOMEM 12
#define IRB_EACCES 13
#define IRB_EBUSY 16
#define IRB_ENODEV 19
#define IRB_ENOTDIR 20
#define IRB_EISDIR 21
#define IRB_EINVAL 22
#define IRB_ETXTBSY 26
#define IRB_ENAMETOOLONG 36
#define IRB_ELOOP 40
#define IRB_EPIPE 32
#define IRB_ENXIO 6
#define IRB_EEXIST 17
#define IRB_EFBIG 27
#define IRB_ENOSPC 28
#define IRB_EROFS 30
#define IRB_ERANGE 34
#define IRB_ENOSYS 38
#define IRB_ENOKEY 126
#define IRB_EKEYREJECTED 129
#define IRB_EOPNOTSUPP 95
#define IRB_EADDRNOTAVAIL 99
#define IRB_ENETUNREACH 101

#define IRB_AT_FDCWD (-100)
#define IRB_O_RDONLY 0
#define IRB_O_WRONLY 1
#define IRB_O_RDWR 2
#define IRB_O_NONBLOCK 04000
#define IRB_O_CLOEXEC 02000000
#define IRB_O_DIRECTORY_X86 0200000
#define IRB_O_DIRECTORY_ARM 040000
#if defined(__x86_64__)
#define IRB_O_DIRECTORY IRB_O_DIRECTORY_X86
#else
#define IRB_O_DIRECTORY IRB_O_DIRECTORY_ARM
#endif
#define IRB_AT_SYMLINK_NOFOLLOW 0x100
#define IRB_STATX_BASIC_STATS 0x7ffU
#define IRB_SEEK_END 2
#define IRB_O_CREAT 0100
#define IRB_O_TRUNC 01000
#define IRB_F_GETFD 1

#define IRB_MS_NOSUID 2UL
#define IRB_MS_NODEV 4UL
#define IRB_MS_NOEXEC 8UL

#define IRB_CLOCK_BOOTTIME 7
#define IRB_SIGINT 2
#define IRB_SIGTERM 15
#define IRB_SIGCHLD 17
#define IRB_SIGKILL 9
#define IRB_SIGALRM 14
#define IRB_ITIMER_REAL 0
#define IRB_SIGBIT(s) (1UL << ((s) - 1))
#define IRB_SIG_BLOCK 0
#define IRB_SIG_SETMASK 2
#define IRB_SFD_CLOEXEC 02000000
#define IRB_WNOHANG 1

#define IRB_AF_INET 2
#define IRB_SOCK_DGRAM 2
#define IRB_SOCK_CLOEXEC 02000000
#define IRB_SIOCGIFFLAGS 0x8913
#define IRB_SIOCSIFFLAGS 0x8914
#define IRB_SIOCGIFADDR 0x8915
#define IRB_SIOCSIFADDR 0x8916
#define IRB_SIOCSIFNETMASK 0x891c
#define IRB_SIOCADDRT 0x890b
#define IRB_IFF_UP 0x1
#define IRB_RTF_UP 0x1
#define IRB_RTF_GATEWAY 0x2
#define IRB_MODULE_INIT_COMPRESSED_FILE 4

#define IRB_REBOOT_MAGIC1 0xfee1deadL
#define IRB_REBOOT_MAGIC2 0x28121969L
#define IRB_RB_AUTOBOOT 0x01234567L
#define IRB_RB_POWER_OFF 0x4321fedcL
/* tcdrain(): TCSBRK with a non-zero argument waits until the tty has sent its output (asm-generic: both arches). */
#define IRB_TCSBRK 0x5409

typedef unsigned long irb_sigset_t;
struct irb_timespec {
  long tv_sec;
  long tv_nsec;
};

static inline long sys_read(int fd, void *buf, unsigned long n) { return SC(NR_read, fd, buf, n, 0, 0, 0); }
static inline long sys_write(int fd, const void *buf, unsigned long n) { return SC(NR_write, fd, buf, n, 0, 0, 0); }
static inline long sys_close(int fd) { return SC(NR_close, fd, 0, 0, 0, 0, 0); }
static inline long sys_lseek(int fd, long off, int whence) { return SC(NR_lseek, fd, off, whence, 0, 0, 0); }
static inline long sys_openat(int dir, const char *path, long flags, long mode) {
  return SC(NR_openat, dir, path, flags, mode, 0, 0);
}
static inline long sys_mkdirat(int dir, const char *path, long mode) { return SC(NR_mkdirat, dir, path, mode, 0, 0, 0); }
static inline long sys_symlinkat(const char *target, int dir, const char *path) {
  return SC(NR_symlinkat, target, dir, path, 0, 0, 0);
}
static inline long sys_fstatat(int dir, const char *path, void *st, long flags) {
  return SC(NR_fstatat, dir, path, st, flags, 0, 0);
}
static inline long sys_mount(const char *src, const char *target, const char *type, unsigned long flags, const void *data) {
  return SC(NR_mount, src, target, type, flags, data, 0);
}
static inline long sys_chdir(const char *path) { return SC(NR_chdir, path, 0, 0, 0, 0, 0); }
static inline long sys_fcntl(int fd, int cmd, long arg) { return SC(NR_fcntl, fd, cmd, arg, 0, 0, 0); }
static inline long sys_dup3(int from, int to, int flags) { return SC(NR_dup3, from, to, flags, 0, 0, 0); }
static inline long sys_ioctl(int fd, unsigned long req, void *arg) { return SC(NR_ioctl, fd, req, arg, 0, 0, 0); }
static inline long sys_socket(int domain, int type, int proto) { return SC(NR_socket, domain, type, proto, 0, 0, 0); }
static inline long sys_sethostname(const char *name, unsigned long len) {
  return SC(NR_sethostname, name, len, 0, 0, 0, 0);
}
static inline long sys_setgroups(unsigned long n, const unsigned int *groups) {
  return SC(NR_setgroups, n, groups, 0, 0, 0, 0);
}
static inline long sys_setgid(unsigned long gid) { return SC(NR_setgid, gid, 0, 0, 0, 0, 0); }
static inline long sys_setuid(unsigned long uid) { return SC(NR_setuid, uid, 0, 0, 0, 0, 0); }
static inline long sys_execve(const char *path, char *const argv[], char *const envp[]) {
  return SC(NR_execve, path, argv, envp, 0, 0, 0);
}
/* fork() is clone(SIGCHLD): no new stack, no tid pointers, so the argument order difference
 * between x86_64 and aarch64 (tls and child_tid swapped) does not matter. */
static inline long sys_fork(void) { return SC(NR_clone, 17 /* SIGCHLD */, 0, 0, 0, 0, 0); }
static inline long sys_wait4(long pid, int *status, int options) { return SC(NR_wait4, pid, status, options, 0, 0, 0); }
static inline long sys_kill(long pid, int sig) { return SC(NR_kill, pid, sig, 0, 0, 0, 0); }
static inline long sys_rt_sigprocmask(int how, const irb_sigset_t *set, irb_sigset_t *old) {
  return SC(NR_rt_sigprocmask, how, set, old, sizeof(irb_sigset_t), 0, 0);
}
static inline long sys_signalfd4(int fd, const irb_sigset_t *mask, int flags) {
  return SC(NR_signalfd4, fd, mask, sizeof(irb_sigset_t), flags, 0, 0);
}
static inline long sys_clock_gettime(int clock, struct irb_timespec *ts) {
  return SC(NR_clock_gettime, clock, ts, 0, 0, 0, 0);
}
static inline long sys_sync(void) { return SC(NR_sync, 0, 0, 0, 0, 0, 0); }
static inline long sys_reboot(long cmd) {
  return SC(NR_reboot, IRB_REBOOT_MAGIC1, IRB_REBOOT_MAGIC2, cmd, 0, 0, 0);
}
static inline long sys_setitimer_seconds(unsigned long seconds) {
  long value[4] = {0, 0, (long)seconds, 0}; /* it_interval {0,0}, it_value {seconds, 0} */
  return SC(NR_setitimer, IRB_ITIMER_REAL, value, 0, 0, 0, 0);
}
static inline long sys_getdents64(int fd, void *buf, unsigned long n) { return SC(NR_getdents64, fd, buf, n, 0, 0, 0); }
static inline long sys_statx(int dir, const char *path, int flags, unsigned int mask, void *buf) {
  return SC(NR_statx, dir, path, flags, mask, buf, 0);
}
static inline long sys_getpid(void) { return SC(NR_getpid, 0, 0, 0, 0, 0, 0); }
static inline long sys_setdomainname(const char *name, unsigned long len) {
  return SC(NR_setdomainname, name, len, 0, 0, 0, 0);
}
static inline long sys_finit_module(int fd, const char *params, int flags) {
  return SC(NR_finit_module, fd, params, flags, 0, 0, 0);
}
static inline long sys_renameat(int olddir, const char *oldpath, int newdir, const char *newpath) {
  return SC(NR_renameat2, olddir, oldpath, newdir, newpath, 0, 0);
}
/* Sleeps `ms` milliseconds (ppoll with no descriptors: nanosleep under another name on both). */
static inline long sys_sleep_ms(unsigned long ms) {
  struct irb_timespec ts = {(long)(ms / 1000), (long)(ms % 1000) * 1000000L};
  return SC(NR_ppoll, 0, 0, &ts, 0, sizeof(irb_sigset_t), 0);
}
/* Blocks until a signal that is not blocked arrives: pause(), which aarch64 lacks. */
static inline long sys_ppoll_forever(void) { return SC(NR_ppoll, 0, 0, 0, 0, 0, 0); }
__attribute__((noreturn)) static inline void sys_exit_group(int code) {
  for (;;) SC(NR_exit_group, code, 0, 0, 0, 0, 0);
}

#endif
