/*
 * linux310: run a program as if on Linux 3.10 (CentOS/RHEL 7), inside a chroot.
 *
 *   linux310 [--allow-getrandom] [--chroot DIR] -- PROGRAM ARGS...
 *   linux310 [--allow-getrandom] --probe     prints what a few system calls return under the filter
 *
 * Every x86-64 system call added after Linux 3.10 returns ENOSYS, through a seccomp filter built with libseccomp.
 * On x86-64, system call numbers are handed out in order: 313 (finit_module, 3.8) is the last one 3.10 has, so the
 * filter is "nr >= 314 -> ENOSYS" (sched_setattr, renameat2, seccomp, getrandom, memfd_create, bpf, execveat,
 * userfaultfd, membarrier, mlock2, copy_file_range, preadv2, pkey_*, statx, io_pgetevents, rseq, and from 424 on
 * pidfd_*, io_uring_*, open_tree/fsopen/..., clone3, close_range, openat2, faccessat2, epoll_pwait2, landlock_*,
 * futex_waitv, ...). Only the native x86-64 ABI is filtered (a 32-bit or x32 system call kills the process).
 * --allow-getrandom lets getrandom (318) through: RHEL 7.4 (3.10.0-693) and later backported it.
 * Also refused as 3.10 does: madvise advice values added later (MADV_FREE 8, MADV_WIPEONFORK 18, MADV_KEEPONFORK 19,
 * MADV_COLD 20, MADV_PAGEOUT 21, ... up to 127) return EINVAL.
 *
 * The chroot happens before the filter is loaded (chroot itself is old), then the program is exec'd; the filter
 * carries over exec (libseccomp sets no_new_privs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FIRST_AFTER_310 314
#define LAST_NR 1023
#define NR_GETRANDOM 318
#define NR_MADVISE 28

static void die(const char *what, int rc) {
  fprintf(stderr, "linux310: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
  exit(125);
}

int main(int argc, char **argv) {
  int allow_getrandom = 0, probe = 0;
  const char *root = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--allow-getrandom")) allow_getrandom = 1;
    else if (!strcmp(argv[i], "--chroot") && i + 1 < argc) root = argv[++i];
    else if (!strcmp(argv[i], "--probe")) probe = 1;
    else if (!strcmp(argv[i], "--")) { i++; break; }
    else break;
  }
  if (i >= argc && !probe) {
    fprintf(stderr, "usage: linux310 [--allow-getrandom] [--chroot DIR] -- PROGRAM ARGS...\n");
    return 125;
  }
  if (root) {
    if (chroot(root) != 0) die("chroot", errno);
    if (chdir("/") != 0) die("chdir /", errno);
  }

  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) die("seccomp_init", ENOMEM);
  int rc;
  for (int nr = FIRST_AFTER_310; nr <= LAST_NR; nr++) {
    if (nr == NR_GETRANDOM && allow_getrandom) continue;
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    /* numbers libseccomp cannot express on this arch are skipped; the known ones must succeed */
    if (rc < 0 && nr < 470) die("seccomp_rule_add", rc);
  }
  /* madvise(addr, len, advice >= 8) except the 3.10-era values 9..17 (REMOVE, DONTFORK, DOFORK, HWPOISON, MERGEABLE,
   * UNMERGEABLE, HUGEPAGE, NOHUGEPAGE, DONTDUMP, DODUMP): EINVAL */
  int later[] = {8, 18, 19, 20, 21, 22, 23, 24, 25, 26};
  for (unsigned k = 0; k < sizeof later / sizeof later[0]; k++) {
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EINVAL), NR_MADVISE, 1, SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)later[k]));
    if (rc < 0) die("seccomp_rule_add madvise", rc);
  }
  rc = seccomp_load(ctx);
  if (rc < 0) die("seccomp_load", rc);
  seccomp_release(ctx);

  if (probe) {
    /* each call with arguments that a kernel having it would accept or reject with another errno than ENOSYS */
    struct { const char *name; long nr; } calls[] = {
      {"getpid", SYS_getpid}, {"statx", 332}, {"getrandom", 318}, {"memfd_create", 319}, {"copy_file_range", 326},
      {"clone3", 435}, {"io_uring_setup", 425}, {"openat2", 437}, {"close_range", 436}, {"rseq", 334},
      {"pidfd_open", 434}, {"faccessat2", 439},
    };
    for (unsigned k = 0; k < sizeof calls / sizeof calls[0]; k++) {
      errno = 0;
      /* close_range(1000, 999, 0): first > last, EINVAL where it exists (never closes anything) */
      long r = calls[k].nr == 436 ? syscall(436, 1000, 999, 0) : syscall(calls[k].nr, 0, 0, 0, 0, 0, 0);
      printf("%s %s\n", calls[k].name, r >= 0 ? "ok" : errno == ENOSYS ? "ENOSYS" : "other");
    }
    errno = 0;
    long m = syscall(SYS_madvise, 0, 0, 8 /* MADV_FREE */);
    printf("madvise(MADV_FREE) %s\n", m == 0 ? "ok" : errno == EINVAL ? "EINVAL" : "other");
    return 0;
  }
  execv(argv[i], argv + i);
  fprintf(stderr, "linux310: exec %s: %s\n", argv[i], strerror(errno));
  return 127;
}
