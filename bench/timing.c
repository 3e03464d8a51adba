/*
 * bench/timing: do credential failures cost the same?  Calls the
 * password method in-process, at the default argon2id cost, for a wrong
 * password, an unknown user, an unknown organisation and an empty
 * password, N times each (interleaved, so that noise on this shared
 * machine falls on all four alike), and prints each median and how far
 * the medians are apart.  A benchmark: it prints, it does not judge.
 *
 *	make bench-timing [TRIES=200]
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

static int64_t
now_real(void)
{
	return (int64_t)time(NULL);
}

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char *argv[])
{
	static const struct {
		const char *name, *body;
	} cases[] = {
		{ "wrong password", "{\"username\":\"alice\",\"password\":"
		    "\"wrong\",\"organisation\":\"ACME\"}" },
		{ "unknown user", "{\"username\":\"nobody\",\"password\":"
		    "\"wrong\",\"organisation\":\"ACME\"}" },
		{ "unknown organisation", "{\"username\":\"alice\",\"password\":"
		    "\"wrong\",\"organisation\":\"NOORG\"}" },
		{ "empty password", "{\"username\":\"alice\",\"password\":"
		    "\"\",\"organisation\":\"ACME\"}" },
	};
	enum { NCASES = sizeof(cases) / sizeof(cases[0]) };
	char		 dir[] = "/tmp/crmauth-bench.XXXXXX", err[CRM_ERR_MAX];
	int		 tries = argc > 1 ? atoi(argv[1]) : 200;
	double		*t[NCASES], med[NCASES], lo, hi, mean = 0;
	struct app	 app;
	struct user_rec	 u;

	if (tries < 1 || tries > 100000 || sec_init() == -1 ||
	    mkdtemp(dir) == NULL)
		return 1;
	memset(&app, 0, sizeof(app));
	config_defaults(&app.cfg);	/* the default argon2id cost */
	snprintf(app.cfg.db_path, sizeof(app.cfg.db_path), "%s/db", dir);
	app.cfg.lockout_threshold = app.cfg.lockout_account_threshold =
	    1000000000;
	app.conf_ok = 1;
	app.now = now_real;
	sec_dummy_hash(app.dummy_hash, &app.cfg);
	if (store_open(&app.store, &app.cfg, STORE_CREATE, err,
	    sizeof(err)) != STORE_OK) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	memset(&u, 0, sizeof(u));
	strcpy(u.units[0], "HQ");
	u.nunits = 1;
	if (sec_pwhash(u.pwhash, "right", 5, &app.cfg) != 0 ||
	    store_user_add(app.store, "ACME", "alice", &u) != STORE_OK)
		return 1;
	printf("argon2id m=%u KiB t=%u p=%u; %d tries each, interleaved\n",
	    app.cfg.argon2_memory_kib, app.cfg.argon2_iterations,
	    app.cfg.argon2_parallelism, tries);
	for (int c = 0; c < NCASES; c++)
		t[c] = calloc((size_t)tries, sizeof(double));
	for (int i = 0; i < tries; i++)
		for (int c = 0; c < NCASES; c++) {
			struct request	 req;
			struct result	 res;
			double		 t0;

			memset(&req, 0, sizeof(req));
			result_init(&res);
			req.remote_addr = "127.0.0.1";
			t0 = seconds();
			req.body = http_parse_json(cases[c].body,
			    strlen(cases[c].body), &res);
			m_token(&app, &req, &res);
			t[c][i] = seconds() - t0;
			if (res.status != API_INVALID_CREDENTIALS) {
				fprintf(stderr, "%s: unexpected status %d\n",
				    cases[c].name, res.status);
				return 1;
			}
			json_object_put(req.body);
			result_free(&res);
		}
	for (int c = 0; c < NCASES; c++) {
		qsort(t[c], (size_t)tries, sizeof(double), cmp);
		med[c] = t[c][tries / 2];
		mean += med[c] / NCASES;
		printf("  %-22s median %7.3f ms  (p10 %7.3f, p90 %7.3f)\n",
		    cases[c].name, med[c] * 1e3, t[c][tries / 10] * 1e3,
		    t[c][tries * 9 / 10] * 1e3);
	}
	lo = hi = med[0];
	for (int c = 1; c < NCASES; c++) {
		lo = med[c] < lo ? med[c] : lo;
		hi = med[c] > hi ? med[c] : hi;
	}
	printf("  medians within %.2f%% of each other (max/min - 1)\n",
	    (hi / lo - 1) * 100);
	store_close(app.store);
	for (int c = 0; c < NCASES; c++)
		free(t[c]);
	unlink(app.cfg.db_path);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return 0;
}
