/*
 * irb's static PID 1 for images with no shell, and the helper of its shell init.
 * SPDX-License-Identifier: Apache-2.0
 *
 * Built with -nostdlib -static -ffreestanding: no libc, raw Linux syscalls only (see
 * syscall.h), so one small binary per architecture runs in any image, even an empty one. It is
 * one translation unit: this file includes its parts (base.h, machine.h, modules.h, net.h,
 * job.h, trace.h), whose functions are all static.
 *
 * As PID 1 it does what a container runtime does, plus what a VM needs: mount the API file
 * systems, apply the per-job files of /irb/job.d over the configuration, load the kernel
 * modules both list, set the hostname, bring lo up, configure the network from the kernel's
 * ip= (or the baked value), then run the program with exactly the configured environment,
 * working directory and user; reap zombies while it waits, forward SIGTERM and SIGINT to the
 * program, print "irb: exit status N" and power off (or reboot).
 *
 * Its parameters come from /irb/init.conf (INIT_CONFIG_PATH in the TypeScript API), a
 * sequence of NUL-terminated fields: the magic "irb-init/1", then one field per value,
 * each a tag byte followed by the value's bytes (any byte but NUL):
 *   a  one argv word (in order, at least one)      e  one NAME=value env entry (in order)
 *   w  working directory                           u  uid (decimal)   g  gid (decimal)
 *   G  one supplementary group (decimal)           h  hostname
 *   x  "poweroff" or "reboot"                      t  "1": list what the program used
 *   T  seconds after which the program is stopped  m  one kernel module file (in order)
 *   n  the network, in ip= syntax                  N  ms to wait for the network device
 *   E  how many argv words are the Entrypoint      H  "1": HOME follows the user
 *
 * Run as any other process (not PID 1) it is the shell init's helper:
 *   init setup [-m MODULE]... [-n IP] [-w MS]      modules, lo, network (with those of
 *                                                  /irb/job.d); always exits 0
 *   init exec [-u UID] [-g GID] [-G GID]... [-E N] [-H] [-e NAME=VALUE]... -- ARGV...
 *                                                  applies /irb/job.d, switches user, execs
 *   init ip VALUE                                  prints how an ip= value is read
 */
#include "base.h"
#include "job.h"
#include "machine.h"
#include "modules.h"
#include "net.h"
#include "trace.h"

#define CONFIG_PATH "/irb/init.conf"
#define CONFIG_MAGIC "irb-init/1"
#define CONFIG_MAX (1 << 20)
#define MAX_MODULES 4096
#define NET_WAIT_MS 5000
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- the end: PID 1 must never exit (the kernel would panic), so it powers off or reboots. */

static int reboot_on_exit;
static int trace_on_exit;
/* Seconds after which the program is stopped (SIGTERM, then SIGKILL 2 s later); 0: never. */
static unsigned long stop_after;

__attribute__((noreturn)) static void finish(void) {
  /* The console's last lines (the exit status, a trace's list) are still in the serial driver's
     buffer; powering off now would cut them. Wait until they are sent. */
  sys_ioctl(1, IRB_TCSBRK, (void *)1);
  sys_ioctl(2, IRB_TCSBRK, (void *)1);
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
static char *modules_[MAX_MODULES];

struct init_config {
  struct program prog;
  const char *hostname, *net;
  unsigned long nmodules, net_wait_ms;
};

/* Returns 0 on success; prints the problem and returns -1 otherwise. */
static int read_config(struct init_config *c) {
  long len = read_file(IRB_AT_FDCWD, CONFIG_PATH, config, CONFIG_MAX);
  if (len == -IRB_EFBIG) {
    fail(CONFIG_PATH " is larger than 1 MiB", 0, 0);
    return -1;
  }
  if (len < 0) {
    fail("cannot read " CONFIG_PATH, 0, -len);
    return -1;
  }
  if (len == 0 || config[len - 1] != '\0') {
    fail(CONFIG_PATH " is truncated (its last field has no NUL terminator)", 0, 0);
    return -1;
  }
  struct program *p = &c->prog;
  unsigned long pos = 0;
  int first = 1;
  while (pos < (unsigned long)len) {
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
        if ((tag == 'a' ? p->argc : p->envc) >= MAX_FIELDS) {
          fail(CONFIG_PATH " has too many argv or env entries", 0, 0);
          return -1;
        }
        if (tag == 'a') argv_[p->argc++] = value;
        else envp_[p->envc++] = value;
        break;
      case 'm':
        if (c->nmodules >= MAX_MODULES) {
          fail(CONFIG_PATH " has too many modules", 0, 0);
          return -1;
        }
        modules_[c->nmodules++] = value;
        break;
      case 'w': p->workdir = value; break;
      case 'h': c->hostname = value; break;
      case 'n': c->net = value; break;
      case 'H': p->home_from_user = streq(value, "1"); break;
      case 't': trace_on_exit = streq(value, "1"); break;
      case 'u':
      case 'g':
      case 'G':
      case 'T':
      case 'N':
      case 'E':
        if (!parse_u32(value, &n)) {
          fail(CONFIG_PATH " has a bad number: ", value, 0);
          return -1;
        }
        if (tag == 'u') p->uid = n;
        else if (tag == 'g') p->gid = n;
        else if (tag == 'T') stop_after = n;
        else if (tag == 'N') c->net_wait_ms = n;
        else if (tag == 'E') p->entry_n = n;
        else if (p->ngroups >= MAX_GROUPS) {
          fail(CONFIG_PATH " has too many groups", 0, 0);
          return -1;
        } else groups_[p->ngroups++] = (unsigned int)n;
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
  if (p->argc == 0) {
    fail(CONFIG_PATH " has no program to run (no argv)", 0, 0);
    return -1;
  }
  if (p->entry_n > p->argc) p->entry_n = p->argc;
  argv_[p->argc] = 0;
  envp_[p->envc] = 0;
  return 0;
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

/* Switches to the program's user and execs it; only returns by exiting (126, 127). */
__attribute__((noreturn)) static void run_program(const struct program *p) {
  long r = sys_setgroups(p->ngroups, groups_);
  if (r == 0) r = sys_setgid(p->gid);
  if (r == 0) r = sys_setuid(p->uid);
  if (r < 0) {
    struct line l = {.len = 0};
    put(&l, "irb-init: cannot switch to uid ");
    put_u(&l, p->uid, 1);
    put(&l, " gid ");
    put_u(&l, p->gid, 1);
    put(&l, ": ");
    put_errno(&l, -r);
    emit(2, &l);
    sys_exit_group(126);
  }
  long err = exec_program(argv_, envp_, p->argc);
  fail("cannot execute ", argv_[0], err);
  /* Like a shell: 127 when the program was not found, 126 when it could not run. */
  sys_exit_group(err == IRB_ENOENT || err == IRB_ENOTDIR ? 127 : 126);
}

/* chdir, or the shell init's line and 0. */
static int enter_workdir(const char *dir) {
  long r = sys_chdir(dir);
  if (r == 0) return 1;
  struct line l = {.len = 0};
  put(&l, "irb-init: cannot change to WorkingDir ");
  put(&l, dir);
  put(&l, ": ");
  put_errno(&l, -r);
  emit(2, &l);
  return 0;
}

static unsigned long wait_status_code(int status) {
  if ((status & 0x7f) == 0) return (unsigned long)((status >> 8) & 0xff);
  return 128 + (unsigned long)(status & 0x7f); /* killed by a signal: what sh reports */
}

/* ---- the shell init's helper (not PID 1) */

static int usage(void) {
  fail("usage: init setup [-m MODULE]... [-n IP] [-w MS] | init exec [-u UID] [-g GID] [-G GID]... "
       "[-E N] [-H] [-e NAME=VALUE]... -- ARGV... | init ip VALUE",
       0, 0);
  return 2;
}

/* `init ip VALUE`: the parse, one line (for the tests that hold this parser and src/net.ts together). */
static int describe_ip(char *value) {
  struct ipspec c;
  struct line l = {.len = 0};
  if (parse_ip(value, &c) < 0) {
    put(&l, "error ");
    put(&l, c.field);
    emit(1, &l);
    return 1;
  }
  put(&l, c.kind == IP_STATIC ? "static" : c.kind == IP_DYNAMIC ? "dynamic" : "off");
  if (c.kind == IP_STATIC) {
    put(&l, " ");
    put_ipv4(&l, c.client);
    put(&l, "/");
    put_u(&l, (unsigned long)mask_prefix(c.mask), 1);
  }
  const char *names[] = {" gw=", " dns0=", " dns1="};
  unsigned int addrs[] = {c.kind == IP_STATIC ? c.gw : 0, c.dns[0], c.dns[1]};
  for (int i = 0; i < 3; i++) {
    put(&l, names[i]);
    if (addrs[i]) put_ipv4(&l, addrs[i]);
  }
  put(&l, " host=");
  put(&l, c.host ? c.host : "");
  put(&l, " domain=");
  put(&l, c.domain ? c.domain : "");
  put(&l, " device=");
  put(&l, c.dev ? c.dev : "");
  emit(1, &l);
  return 0;
}

static int helper(long argc, char **argv, char **envp) {
  if (argc == 3 && streq(argv[1], "ip")) return describe_ip(argv[2]);
  if (argc < 2) return usage();
  int setup = streq(argv[1], "setup");
  if (!setup && !streq(argv[1], "exec")) return usage();
  struct program p;
  memset(&p, 0, sizeof p);
  const char *net = 0;
  unsigned long nmodules = 0, wait_ms = NET_WAIT_MS, n;
  for (; *envp && p.envc < MAX_FIELDS; envp++) envp_[p.envc++] = *envp;
  envp_[p.envc] = 0;
  long i = 2;
  for (; i < argc && !streq(argv[i], "--"); i++) {
    const char *o = argv[i];
    char *v = i + 1 < argc ? argv[i + 1] : 0;
    if (streq(o, "-H") && !setup) {
      p.home_from_user = 1;
      continue;
    }
    if (!v || o[0] != '-' || !o[1] || o[2]) return usage();
    i++;
    if (setup && o[1] == 'm' && nmodules < MAX_MODULES) modules_[nmodules++] = v;
    else if (setup && o[1] == 'n') net = v;
    else if (setup && o[1] == 'w' && parse_u32(v, &wait_ms)) continue;
    else if (!setup && o[1] == 'e' && env_name_len(v) > 0 && v[env_name_len(v)] && env_set(&p, v) == 0) continue;
    else if (!setup && (o[1] == 'u' || o[1] == 'g' || o[1] == 'E' || o[1] == 'G') && parse_u32(v, &n)) {
      if (o[1] == 'u') p.uid = n;
      else if (o[1] == 'g') p.gid = n;
      else if (o[1] == 'E') p.entry_n = n;
      else if (p.ngroups < MAX_GROUPS) groups_[p.ngroups++] = (unsigned int)n;
    } else return usage();
  }
  if (setup) {
    /* The job files' modules and network join the script's; a file that cannot be applied is
     * left to `exec`, which reports it and does not run the program. */
    struct job_extras x = {modules_, nmodules, MAX_MODULES, net};
    struct program scratch;
    memset(&scratch, 0, sizeof scratch);
    jobs_quiet = 1;
    if (apply_jobs(&scratch, &x, 0) < 0) {
      x.nmodules = nmodules;
      x.net = net;
    }
    load_modules(modules_, x.nmodules);
    loopback_up();
    net_setup(x.net, wait_ms);
    return 0;
  }
  for (i++; i < argc && p.argc < MAX_FIELDS; i++) argv_[p.argc++] = argv[i];
  argv_[p.argc] = 0;
  if (p.argc == 0) return usage();
  if (p.entry_n > p.argc) p.entry_n = p.argc;
  struct job_extras x = {modules_, 0, MAX_MODULES, 0};
  if (apply_jobs(&p, &x, 1) < 0) return 126;
  if (p.workdir && !enter_workdir(p.workdir)) return 126;
  run_program(&p);
}

/* ---- PID 1 */

void irb_main(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  if (sys_getpid() != 1) sys_exit_group(helper(argc, argv, argv + argc + 1));
  unsigned long start = boottime_us();
  ensure_console();
  /* Mounted first, as the shell init does: the marker's clock needs /dev/kmsg, and a config
   * error still finds /proc for the sysrq fallback. */
  setup_mounts();
  marker("init", boottime_us() - start);
  struct init_config c;
  memset(&c, 0, sizeof c);
  c.prog.workdir = "/";
  c.hostname = "irb";
  c.net_wait_ms = NET_WAIT_MS;
  if (read_config(&c) < 0) finish();
  /* The job files first: an appended member may bring modules and a network of its own. A job
   * that cannot be applied does not run half-configured. */
  struct job_extras x = {modules_, c.nmodules, MAX_MODULES, c.net};
  if (apply_jobs(&c.prog, &x, 1) < 0) finish_with_status(126);
  /* Modules before anything else: the network and the program may need them. */
  load_modules(modules_, x.nmodules);
  sys_sethostname(c.hostname, slen(c.hostname));
  loopback_up();
  net_setup(x.net, c.net_wait_ms);
  if (!enter_workdir(c.prog.workdir)) finish_with_status(126);

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
  if (pid == 0) {
    /* Stamped before the user switch, which takes /dev/kmsg (root only) and its clock away. */
    marker("exec", 0);
    irb_sigset_t none = 0;
    sys_rt_sigprocmask(IRB_SIG_SETMASK, &none, 0);
    run_program(&c.prog);
  }
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
