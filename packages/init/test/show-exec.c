/* Prints what it was started with, one line each, values in hex: the fuzz test of the init's job
 * files compares it with what applyJobConfigs says the init runs. Built static by the test. */
#include <stdio.h>
#include <unistd.h>

extern char **environ;

static void hex(const char *tag, const char *s) {
  printf("%s ", tag);
  for (; *s; s++) printf("%02x", (unsigned char)*s);
  printf("\n");
}

int main(int argc, char **argv) {
  for (int i = 0; i < argc; i++) hex("a", argv[i]);
  for (char **e = environ; *e; e++) hex("e", *e);
  char cwd[4096];
  if (getcwd(cwd, sizeof cwd)) hex("w", cwd);
  gid_t groups[64];
  int n = getgroups(64, groups);
  printf("u %u %u", (unsigned)getuid(), (unsigned)getgid());
  for (int i = 0; i < n; i++) printf(" %u", (unsigned)groups[i]);
  printf("\n");
  return 0;
}
