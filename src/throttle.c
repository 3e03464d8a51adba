/*
 * Throttling failed attempts (API.md "Throttling failed attempts").
 *
 * The account is a hash of what the client claimed: organisation and
 * user, a key, a key and an identifier.  Whether it exists plays no
 * part, so guessing costs the same for unknown accounts and a locked
 * answer looks the same.  Before credentials are checked, a pair
 * (account, REMOTE_ADDR) at lockout_threshold or an account at
 * lockout_account_threshold within lockout_window answers 429 with
 * Retry-After.  A failure counts for both; a success clears its pair.
 */
#include <string.h>

#include "extern.h"

void
throttle_account(unsigned char out[CRM_DIGEST_BYTES], char kind,
    const char *a, const char *b)
{
	sec_tagged_hash(out, kind, a, b, b != NULL ? strlen(b) : 0);
}

int
throttle_check(struct app *app, struct throttle *t, struct result *res)
{
	struct attempts	 a;
	enum store_err	 e;
	int64_t		 now = app->now(), until = 0;

	if ((e = store_attempts_get(app->store, t->account, t->addr, now,
	    &a)) != STORE_OK) {
		/* Fail closed: no counting, no guessing. */
		result_store_error(res, app, e);
		return -1;
	}
	t->pair_exists = a.pair_exists;
	if (a.pair_count >= app->cfg.lockout_threshold)
		until = a.pair_end;
	if (a.account_count >= app->cfg.lockout_account_threshold &&
	    a.account_end > until)
		until = a.account_end;
	if (until <= now)
		return 0;
	result_error(res, API_TOO_MANY_ATTEMPTS, NULL);
	res->retry_after = (unsigned)(until - now);
	return -1;
}

int
throttle_failed(struct app *app, struct throttle *t, struct result *res)
{
	enum store_err e;

	e = store_attempts_fail(app->store, t->account, t->addr, app->now(),
	    app->cfg.lockout_window);
	if (e != STORE_OK) {
		/* An uncounted failure would let guessing go on. */
		result_store_error(res, app, e);
		return -1;
	}
	return 0;
}

void
throttle_succeeded(struct app *app, struct throttle *t)
{
	enum store_err e;

	if (!t->pair_exists)
		return;		/* nothing to clear: no write */
	if ((e = store_attempts_clear(app->store, t->account, t->addr)) !=
	    STORE_OK)
		log_err("throttle: clearing a counter: %s: %s",
		    store_strerror(e), store_detail(app->store));
}
