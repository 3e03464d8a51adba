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

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char *argv[])
{
	char	 hash[crypto_pwhash_STRBYTES];
	long	 kib, t, secs, procs;
	double	 total = 0;
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
			double	 start = now(), rate;
			long	 n = 0;

			while (now() - start < (double)secs) {
				/* A wrong password: the work of a failed login. */
				if (crypto_pwhash_str_verify(hash, "wrong", 5) == 0)
					_exit(1);
				n++;
			}
			/* Over the time really taken, the last verify and all. */
			rate = (double)n / (now() - start);
			if (write(fds[p][1], &rate, sizeof(rate)) != sizeof(rate))
				_exit(1);
			_exit(0);
		}
	}
	for (long p = 0; p < procs; p++) {
		double rate = 0;

		if (read(fds[p][0], &rate, sizeof(rate)) == sizeof(rate))
			total += rate;
		wait(NULL);
	}
	printf("%.1f\n", total);
	return 0;
}
