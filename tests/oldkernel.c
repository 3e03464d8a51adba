/*
 * oldkernel PROGRAM [ARG...]: run PROGRAM as if on Linux 3.10 (CloudLinux
 * 7's kernel), as far as system calls go: every x86_64 system call added
 * after 3.10 (numbers from 314, sched_setattr in 3.14, on: getrandom,
 * statx, rseq, clone3, faccessat2, close_range...) fails with ENOSYS, as
 * on that kernel.  A seccomp filter, kept across execve.  The bundle test
 * runs the static programs under it.
 */
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define FIRST_AFTER_3_10 314	/* __NR_sched_setattr */

int
main(int argc, char *argv[])
{
	struct sock_filter filter[] = {
		/* Another architecture (32-bit calls): kill. */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, nr)),
		/* x32 calls have bit 30 set: as unknown as the new ones. */
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, FIRST_AFTER_3_10, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(filter) / sizeof(filter[0]),
		.filter = filter,
	};

	if (argc < 2) {
		fprintf(stderr, "usage: oldkernel PROGRAM [ARG...]\n");
		return 2;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1) {
		perror("oldkernel: seccomp");
		return 2;
	}
	execv(argv[1], argv + 1);
	perror(argv[1]);
	return 127;
}
