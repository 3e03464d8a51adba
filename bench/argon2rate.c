/*
 * bench/argon2rate: bare argon2id verifies per second at a given cost, in
 * N processes at once (one per core): the ceiling of password logins.
 *	argon2rate MEMORY_KIB ITERATIONS SECONDS PROCESSES
 */
#include <sys/wait.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	char	 hash[crypto_pwhash_STRBYTES];
	long	 kib, t, secs, procs, total = 0;
	int	 fds[64][2];

	(void)argv;
	if (argc != 5 || sodium_init() < 0)
		return 2;
	kib = atol(argv[1]);
	t = atol(argv[2]);
	secs = atol(argv[3]);
	procs = atol(argv[4]);
	if (procs < 1 || procs > 64 ||
	    crypto_pwhash_str_alg(hash, "right", 5, (unsigned long long)t,
	    (size_t)kib * 1024, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return 2;
	for (long p = 0; p < procs; p++) {
		if (pipe(fds[p]) == -1)
			return 1;
		if (fork() == 0) {
			time_t	 end = time(NULL) + secs;
			long	 n = 0;

			while (time(NULL) < end) {
				/* A wrong password: the work of a failed login. */
				if (crypto_pwhash_str_verify(hash, "wrong", 5) == 0)
					_exit(1);
				n++;
			}
			if (write(fds[p][1], &n, sizeof(n)) != sizeof(n))
				_exit(1);
			_exit(0);
		}
	}
	for (long p = 0; p < procs; p++) {
		long n = 0;

		if (read(fds[p][0], &n, sizeof(n)) == sizeof(n))
			total += n;
		wait(NULL);
	}
	printf("%.1f\n", (double)total / (double)secs);
	return 0;
}
