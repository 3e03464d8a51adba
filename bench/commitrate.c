/*
 * bench/commitrate: durable LMDB commits per second on one filesystem, in
 * N processes at once: the ceiling of releases, each of which is one
 * such commit (default LMDB flags: the data synced, then the meta page).
 *	commitrate DIRECTORY SECONDS PROCESSES
 * Each commit puts one 16-byte key and its 8-byte value, as a release
 * does in its first table.  DIRECTORY is made and left for the caller.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <lmdb.h>
#include <stdint.h>
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

static MDB_env *
open_env(const char *dir)
{
	MDB_env	*env;

	if (mdb_env_create(&env) != 0 ||
	    mdb_env_set_mapsize(env, (size_t)256 << 20) != 0 ||
	    mdb_env_open(env, dir, 0, 0600) != 0)
		return NULL;
	return env;
}

int
main(int argc, char *argv[])
{
	long	 secs, procs;
	double	 total = 0;
	int	 fds[64][2];
	MDB_env	*env;

	if (argc != 4)
		return 2;
	secs = atol(argv[2]);
	procs = atol(argv[3]);
	if (procs < 1 || procs > 64 || (mkdir(argv[1], 0700) == -1 &&
	    access(argv[1], W_OK) == -1))
		return 2;
	/* Made once here, so that no child races to create the files. */
	if ((env = open_env(argv[1])) == NULL)
		return 1;
	mdb_env_close(env);
	for (long p = 0; p < procs; p++) {
		if (pipe(fds[p]) == -1)
			return 1;
		if (fork() == 0) {
			double		 start, rate;
			long		 n = 0;
			uint64_t	 k[2] = { (uint64_t)getpid(), 0 };
			MDB_txn		*txn;
			MDB_dbi		 dbi;
			MDB_val		 key = { sizeof(k), k }, val;

			if ((env = open_env(argv[1])) == NULL)
				_exit(1);
			val.mv_size = 8;
			val.mv_data = k;
			start = now();
			while (now() - start < (double)secs) {
				k[1]++;
				if (mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
				    mdb_dbi_open(txn, NULL, 0, &dbi) != 0 ||
				    mdb_put(txn, dbi, &key, &val, 0) != 0 ||
				    mdb_txn_commit(txn) != 0)
					_exit(1);
				n++;
			}
			rate = (double)n / (now() - start);
			mdb_env_close(env);
			if (write(fds[p][1], &rate, sizeof(rate)) != sizeof(rate))
				_exit(1);
			_exit(0);
		}
	}
	for (long p = 0; p < procs; p++) {
		double	 rate = 0;
		int	 status;

		if (read(fds[p][0], &rate, sizeof(rate)) == sizeof(rate))
			total += rate;
		if (wait(&status) == -1 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			return 1;
	}
	printf("%.1f\n", total);
	return 0;
}
