/*
 * The LMDB store (store.h): one environment on one machine, shared by
 * every responder process and crmauthctl.  Named databases (all keys
 * binary unless noted):
 *
 *   meta             "schema" -> "1"; "current_kid" -> kid
 *   users            SHA-256("U" org NUL user) -> record
 *   apikeys          SHA-256(key) -> record
 *   consumer_keys    SHA-256(key) -> record
 *   access_tokens    SHA-256("C" org NUL SHA-256(code)), or with a
 *                    wrap.key SHA-256("C" org NUL store_code_keyed()),
 *                    or SHA-256("I" org NUL identifier) -> record
 *                    (store_access_id; the record names its owner too)
 *   signing_keys     kid (16 hex chars) -> created (8, BE) + secret (32)
 *                    + expires (8, BE; 0 while current)
 *   released         jti (16) -> exp (8, BE)
 *   released_by_exp  exp (8, BE) + jti (16) -> ""
 *   cutoffs          SHA-256("A" org NUL app) -> time (8, BE): the
 *                    application's tokens issued up to then are refused
 *
 * Records are binary (see "records" below): reading one is a few copies,
 * where a JSON record cost a parse and a tree, a third of a token
 * request.  A record of any other format is refused as corrupt.
 *
 * Composite keys are hashed because org and user may each be 256 bytes,
 * past LMDB's 511-byte key limit; the names are kept in the record.
 * Every write is one transaction that commits durably (fsync) or not at
 * all; a full map is grown and the write retried, up to db_map_max_mb.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "extern.h"
#include "lmdb_env.h"
#include "lmdb_store.h"

static void
set_detail(struct lstore *st, const char *what, int rc)
{
	snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s", what,
	    mdb_strerror(rc));
}

enum store_err
lm_map_rc(struct lstore *st, const char *what, int rc)
{
	switch (rc) {
	case 0:
		return STORE_OK;
	case MDB_NOTFOUND:
		return STORE_NOTFOUND;
	case MDB_KEYEXIST:
		return STORE_EXISTS;
	case RC_CORRUPT:
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: bad record",
		    what);
		return STORE_CORRUPT;
	case RC_VERSION:
		return STORE_VERSION;
	case RC_NOTINIT:
		return STORE_NOTINIT;
	case RC_NOTEMPTY:
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: the "
		    "store is not empty (import loads an empty store only)",
		    what);
		return STORE_EXISTS;
	case RC_STOP:
	case RC_REFUSED:	/* detail says why */
		return STORE_ERROR;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
	case ENOSPC:
	case EDQUOT:
		set_detail(st, what, rc);
		return STORE_FULL;
	case EIO:
		/* LMDB reports a short write, as a full disk gives, as EIO. */
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s (a short "
		    "write: is the disk full?)", what, mdb_strerror(rc));
		return STORE_FULL;
	default:
		set_detail(st, what, rc);
		return STORE_ERROR;
	}
}

static int	prune_sigkeys(struct lstore *, MDB_txn *, int64_t now);
static int	prune(struct lstore *, MDB_txn *, int64_t now, size_t limit,
		    size_t *n);

struct run {
	struct lstore	*st;
	txn_fn		 fn;
	void		*arg;
	int		 write;
};

/* fn, and for a write the pruning that rides along with every write. */
static int
run_fn(MDB_txn *txn, void *p)
{
	struct run	*r = p;
	int64_t		 now = (int64_t)time(NULL);
	size_t		 pruned;
	int		 rc;

	if ((rc = r->fn(r->st, txn, r->arg)) != 0 || !r->write)
		return rc;
	if ((rc = prune(r->st, txn, now, STORE_PRUNE_BATCH, &pruned)) == 0)
		rc = prune_sigkeys(r->st, txn, now);
	return rc;
}

/*
 * Run fn in a transaction (lmdb_run: map growth, resizes by other
 * processes, dead readers).  Reads renew the handle's kept transaction;
 * writes prune a few released ids and expired keys, and commit
 * durably.
 */
enum store_err
lm_txn_run(struct lstore *st, int write, const char *what, txn_fn fn,
    void *arg)
{
	struct run	 r = { st, fn, arg, write };
	int		 rc;

	rc = lmdb_run(st->db, write, run_fn, &r, write ? NULL : &st->rtxn);
	if (rc == EAGAIN) {
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: too many "
		    "retries", what);
		return STORE_ERROR;
	}
	return lm_map_rc(st, what, rc);
}






/* ---- users ------------------------------------------------------------- */

struct user_arg {
	const char		*org, *user;
	struct user_rec		*rec;
	const struct user_rec	*in;
	user_change_fn		 change;
	void			*change_arg;
};

static int
user_get_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct user_arg *a = p;

	return lm_user_read(st, txn, a->org, a->user, a->rec);
}

static enum store_err
l_user_get(struct store *s, const char *org, const char *user,
    struct user_rec *rec)
{
	struct lstore *st = (struct lstore *)s;
	struct user_arg a = { .org = org, .user = user, .rec = rec };

	return lm_txn_run(st, 0, "user get", user_get_fn, &a);
}

static int
user_put_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct user_arg *a = p;

	return lm_user_write(st, txn, a->org, a->user, a->in, MDB_NOOVERWRITE);
}

static enum store_err
l_user_add(struct store *s, const char *org, const char *user,
    const struct user_rec *rec)
{
	struct lstore *st = (struct lstore *)s;
	struct user_arg a = { .org = org, .user = user, .in = rec };

	return lm_txn_run(st, 1, "user add", user_put_fn, &a);
}

/* Read, change and write back in one transaction (a change that
 * returns non-zero writes nothing). */
static int
user_change_txn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct user_arg	*a = p;
	struct user_rec	 r;
	int		 rc;

	if ((rc = lm_user_read(st, txn, a->org, a->user, &r)) != 0)
		return rc;
	if (a->change(&r, a->change_arg) == 0)
		rc = lm_user_write(st, txn, a->org, a->user, &r, 0);
	else if (a->rec != NULL)
		rc = lm_user_read(st, txn, a->org, a->user, &r);
	if (rc == 0 && a->rec != NULL)
		*a->rec = r;
	explicit_bzero(&r, sizeof(r));
	return rc;
}

static enum store_err
l_user_change(struct store *s, const char *org, const char *user,
    user_change_fn change, void *arg, struct user_rec *after)
{
	struct lstore *st = (struct lstore *)s;
	struct user_arg a = { .org = org, .user = user, .change = change,
	    .change_arg = arg, .rec = after };

	return lm_txn_run(st, 1, "user change", user_change_txn, &a);
}

static int
user_del_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct user_arg	*a = p;
	unsigned char	 k[CRM_DIGEST_BYTES];
	MDB_val		 key = { sizeof(k), k }, val;
	MDB_cursor	*c;
	int		 rc;
	struct apikey_rec ak;

	lm_user_key(k, a->org, a->user);
	if ((rc = mdb_del(txn, st->users, &key, NULL)) != 0)
		return rc;
	/* The user's Web API keys go with the user. */
	if ((rc = mdb_cursor_open(txn, st->apikeys, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if ((rc = lm_apikey_decode(&val, &ak)) != 0)
			break;
		if (strcmp(ak.org, a->org) == 0 &&
		    strcmp(ak.user, a->user) == 0 &&
		    (rc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static enum store_err
l_user_del(struct store *s, const char *org, const char *user)
{
	struct lstore *st = (struct lstore *)s;
	struct user_arg a = { .org = org, .user = user };

	return lm_txn_run(st, 1, "user del", user_del_fn, &a);
}

struct list_arg {
	const char	*org;
	void		*cb;
	void		*cbarg;
};

static int
user_list_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct list_arg	*a = p;
	store_user_cb	 cb = (store_user_cb)a->cb;
	MDB_cursor	*c;
	MDB_val		 key, val;
	struct user_rec	 r;
	char		 org[CRM_NAME_MAX + 1], user[CRM_NAME_MAX + 1];
	int		 rc;

	if ((rc = mdb_cursor_open(txn, st->users, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if ((rc = lm_user_decode(&val, &r, org, user)) != 0)
			break;
		if (a->org != NULL && strcmp(a->org, org) != 0)
			continue;
		if (cb(a->cbarg, org, user, &r) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static enum store_err
l_user_list(struct store *s, const char *org, store_user_cb cb,
    void *arg)
{
	struct lstore *st = (struct lstore *)s;
	struct list_arg a = { org, (void *)cb, arg };

	return lm_txn_run(st, 0, "user list", user_list_fn, &a);
}

/* ---- Web API keys and consumer application keys --------------------------- */

int
lm_key_decode(const MDB_val *v, struct key_arg *a)
{
	if (a->consumer)
		return lm_consumer_decode(v, a->ck);
	return lm_apikey_decode(v, a->ak);
}

int
lm_key_put(struct lstore *st, MDB_txn *txn, const struct key_arg *a,
    unsigned flags)
{
	struct rec_out w;

	if (a->consumer)
		lm_consumer_encode(&w, a->ck);
	else
		lm_apikey_encode(&w, a->ak);
	return lm_put_rec(txn, a->consumer ? st->consumers : st->apikeys,
	    a->digest, CRM_DIGEST_BYTES, &w, flags);
}

static int
key_get_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct key_arg	*a = p;
	MDB_val		 key = { CRM_DIGEST_BYTES, (void *)a->digest }, val;
	int		 rc;

	if ((rc = mdb_get(txn, a->consumer ? st->consumers : st->apikeys,
	    &key, &val)) != 0)
		return rc;
	return lm_key_decode(&val, a);
}

/* A Web API key is written only while its user is there, checked in
 * the same transaction: a user del that ran first leaves nothing to
 * write it for (MDB_NOTFOUND). */
static int
key_put_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct key_arg	*a = p;
	struct user_rec	 u;
	int		 rc;

	if (!a->consumer) {
		rc = lm_user_read(st, txn, a->ak->org, a->ak->user, &u);
		explicit_bzero(&u, sizeof(u));
		if (rc != 0)
			return rc;
	}
	return lm_key_put(st, txn, a, a->must_be_new ? MDB_NOOVERWRITE : 0);
}

/*
 * Mark a key revoked and, in the same transaction, cut off every token
 * its principal was issued so far: a Web API key's user (the token does
 * not say which key it came from), a consumer key's application.
 */
static int
revoke_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct key_arg	*a = p;
	struct user_rec	 u;
	int64_t		 cut;
	int		 rc;

	if ((rc = key_get_fn(st, txn, a)) != 0)
		return rc;
	if (a->consumer)
		a->ck->revoked = 1;
	else
		a->ak->revoked = 1;
	if ((rc = lm_key_put(st, txn, a, 0)) != 0)
		return rc;
	if (a->consumer) {
		if ((rc = lm_app_cutoff_get(st, txn, a->ck->org, a->ck->app,
		    &cut)) != 0)
			return rc;
		return lm_app_cutoff_put(st, txn, a->ck->org, a->ck->app,
		    cutoff_next(cut, a->now, a->step));
	}
	rc = lm_user_read(st, txn, a->ak->org, a->ak->user, &u);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0 && (cut = cutoff_next(u.not_before, a->now, a->step)) !=
	    u.not_before) {
		u.not_before = cut;
		rc = lm_user_write(st, txn, a->ak->org, a->ak->user, &u, 0);
	}
	explicit_bzero(&u, sizeof(u));
	return rc;
}

static enum store_err
l_apikey_get(struct store *s,
    const unsigned char digest[CRM_DIGEST_BYTES], struct apikey_rec *r)
{
	struct lstore *st = (struct lstore *)s;
	struct key_arg a = { .digest = digest, .ak = r };

	return lm_txn_run(st, 0, "apikey get", key_get_fn, &a);
}

static enum store_err
l_consumer_get(struct store *s,
    const unsigned char digest[CRM_DIGEST_BYTES], struct consumer_rec *r)
{
	struct lstore *st = (struct lstore *)s;
	struct key_arg a = { .digest = digest, .consumer = 1, .ck = r };

	return lm_txn_run(st, 0, "consumer key get", key_get_fn, &a);
}

static enum store_err
l_apikey_put(struct store *s,
    const unsigned char digest[CRM_DIGEST_BYTES],
    const struct apikey_rec *r, int must_be_new)
{
	struct lstore *st = (struct lstore *)s;
	struct apikey_rec	copy = *r;
	struct key_arg		a = { .digest = digest, .ak = &copy,
	    .must_be_new = must_be_new };

	return lm_txn_run(st, 1, "apikey put", key_put_fn, &a);
}

static enum store_err
l_consumer_put(struct store *s,
    const unsigned char digest[CRM_DIGEST_BYTES],
    const struct consumer_rec *r, int must_be_new)
{
	struct lstore *st = (struct lstore *)s;
	struct consumer_rec	copy = *r;
	struct key_arg		a = { .digest = digest, .consumer = 1,
	    .ck = &copy, .must_be_new = must_be_new };

	return lm_txn_run(st, 1, "consumer key put", key_put_fn, &a);
}

static enum store_err
l_key_revoke(struct store *s, int consumer,
    const unsigned char digest[CRM_DIGEST_BYTES], int64_t now, int step)
{
	struct lstore *st = (struct lstore *)s;
	struct apikey_rec	ak;
	struct consumer_rec	ck;
	struct key_arg		a = { .digest = digest, .consumer = consumer,
	    .ak = &ak, .ck = &ck, .now = now, .step = step };

	return lm_txn_run(st, 1, "key revoke", revoke_fn, &a);
}

static int
key_list_fn(struct lstore *st, MDB_txn *txn, MDB_dbi dbi, void *p,
    int consumer)
{
	struct list_arg		*a = p;
	MDB_cursor		*c;
	MDB_val			 key, val;
	struct apikey_rec	 ak;
	struct consumer_rec	 ck;
	int			 rc;

	if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != CRM_DIGEST_BYTES) {
			rc = RC_CORRUPT;
			break;
		}
		if (consumer) {
			if ((rc = lm_consumer_decode(&val, &ck)) != 0)
				break;
			if (((store_consumer_cb)a->cb)(a->cbarg, key.mv_data,
			    &ck) != 0)
				break;
		} else {
			if ((rc = lm_apikey_decode(&val, &ak)) != 0)
				break;
			if (((store_apikey_cb)a->cb)(a->cbarg, key.mv_data,
			    &ak) != 0)
				break;
		}
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
apikey_list_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	return key_list_fn(st, txn, st->apikeys, p, 0);
}

static int
consumer_list_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	return key_list_fn(st, txn, st->consumers, p, 1);
}

static enum store_err
l_apikey_list(struct store *s, store_apikey_cb cb, void *arg)
{
	struct lstore *st = (struct lstore *)s;
	struct list_arg a = { NULL, (void *)cb, arg };

	return lm_txn_run(st, 0, "apikey list", apikey_list_fn, &a);
}

static enum store_err
l_consumer_list(struct store *s, store_consumer_cb cb, void *arg)
{
	struct lstore *st = (struct lstore *)s;
	struct list_arg a = { NULL, (void *)cb, arg };

	return lm_txn_run(st, 0, "consumer key list", consumer_list_fn, &a);
}

/* ---- access tokens ------------------------------------------------------ */

struct access_arg {
	unsigned char		 k[CRM_DIGEST_BYTES];
	unsigned char		 plain[CRM_DIGEST_BYTES];	/* keyed: */
	int			 keyed;		/* the code's plain id */
	struct access_owner	 owner;
	struct access_rec	*out;
	const struct access_rec	*in;
	const char		*old, *new;	/* rehash */
};

/*
 * The access token's key and owner.  A code is kept keyed when the store
 * has a wrap.key (keyed 1: store_code_keyed(), its owner kind 'K'), else
 * by its SHA-256 (keyed 0, and any code added before there was one).
 */
static void
access_arg_init(struct lstore *st, struct access_arg *a, const char *org,
    const unsigned char *code, const char *ident, int keyed)
{
	unsigned char kd[CRM_DIGEST_BYTES];

	a->keyed = 0;
	if (code != NULL && keyed && st->have_wrap) {
		store_code_keyed(kd, st->wrap, code);
		store_access_id(a->k, org, kd, NULL);
		store_access_id(a->plain, org, code, NULL);
		lm_access_owner(&a->owner, org, kd, NULL);
		a->owner.kind = 'K';
		a->keyed = 1;
		return;
	}
	store_access_id(a->k, org, code, ident);
	lm_access_owner(&a->owner, org, code, ident);
}

/*
 * db_path/wrap.key, optional for LMDB: read at open, and again when the
 * file there is another (copied in, replaced or removed since), looked
 * at once a second at most, so that every process, long-running or new,
 * keys codes with the same file.  One that cannot be read is logged and
 * taken as none: codes kept keyed are not found meanwhile, and
 * everything else is served.
 */
void
lm_wrap(struct lstore *st, int now)
{
	char		 path[sizeof(st->base.cfg.db_path) + 16];
	struct stat	 sb;
	time_t		 t = time(NULL);

	if (!now && t == st->wrap_looked)
		return;
	st->wrap_looked = t;
	snprintf(path, sizeof(path), "%s/wrap.key", st->base.cfg.db_path);
	if (stat(path, &sb) == -1)
		memset(&sb, 0, sizeof(sb));
	if (!now && sb.st_ino == st->wrap_sb.st_ino &&
	    sb.st_dev == st->wrap_sb.st_dev &&
	    sb.st_size == st->wrap_sb.st_size &&
	    sb.st_mtim.tv_sec == st->wrap_sb.st_mtim.tv_sec &&
	    sb.st_mtim.tv_nsec == st->wrap_sb.st_mtim.tv_nsec)
		return;
	st->wrap_sb = sb;
	st->wrap_bad = 0;
	if (sb.st_ino == 0) {
		st->have_wrap = 0;
		return;
	}
	if (store_wrap_load(&st->base.cfg, st->wrap, &st->have_wrap, 0,
	    st->wrap_why, sizeof(st->wrap_why)) == -1) {
		st->have_wrap = 0;
		st->wrap_bad = 1;
		log_err("store: %s; authentication codes kept keyed with it "
		    "cannot be found until it can", st->wrap_why);
	}
}

/* What writes or copies codes must not do without the wrap.key that is
 * there: add one kept plain, or export without naming the key. */
static int
wrap_unusable(struct lstore *st, const char *what)
{
	lm_wrap(st, 0);
	if (!st->wrap_bad)
		return 0;
	snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s", what,
	    st->wrap_why);
	return 1;
}

/*
 * crmauthctl init with a wrap.key: codes kept by their plain SHA-256
 * (added before there was one) keyed from the digest their records hold,
 * in this transaction; a code there both ways keeps its keyed record.
 */
struct plain_code {
	unsigned char		 k[CRM_DIGEST_BYTES];
	struct access_rec	 r;
	struct access_owner	 o;
};

static int
key_plain_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct plain_code	*v = NULL, *nv;
	struct access_rec	 r;
	struct access_owner	 o;
	unsigned char		 code[CRM_DIGEST_BYTES], kd[CRM_DIGEST_BYTES];
	unsigned char		 id[CRM_DIGEST_BYTES];
	MDB_cursor		*c;
	MDB_val			 key, val;
	size_t			 n = 0, cap = 0;
	int			 rc;

	if ((rc = mdb_cursor_open(txn, st->access, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != CRM_DIGEST_BYTES ||
		    lm_access_decode(&val, &r, &o) != 0 || o.kind != 'C')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				rc = ENOMEM;
				break;
			}
			v = nv;
		}
		memcpy(v[n].k, key.mv_data, CRM_DIGEST_BYTES);
		v[n].r = r;
		v[n++].o = o;
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (sec_unhex(code, sizeof(code), v[i].o.lookup,
		    strlen(v[i].o.lookup)) != 0)
			continue;
		store_code_keyed(kd, st->wrap, code);
		store_access_id(id, v[i].o.org, kd, NULL);
		lm_access_owner(&o, v[i].o.org, kd, NULL);
		o.kind = 'K';
		rc = lm_access_write(st, txn, id, &v[i].r, &o, MDB_NOOVERWRITE);
		if (rc == 0 || rc == MDB_KEYEXIST) {
			key = (MDB_val){ CRM_DIGEST_BYTES, v[i].k };
			rc = mdb_del(txn, st->access, &key, NULL);
		}
	}
	if (v != NULL)
		explicit_bzero(v, n * sizeof(*v));
	free(v);
	return rc;
}

static int
l_code_key(struct store *s, char *id)
{
	struct lstore *st = (struct lstore *)s;

	id[0] = '\0';
	if (wrap_unusable(st, "wrap.key"))
		return -1;
	if (st->have_wrap)
		store_code_key_id(id, st->wrap);
	return 0;
}

/* An access token by code (keyed first) or identifier. */
static int
access_find(struct lstore *st, MDB_txn *txn, const char *org,
    const unsigned char *code, const char *ident, struct access_rec *r)
{
	struct access_arg	 a;
	int			 rc = MDB_NOTFOUND;

	if (code != NULL)
		lm_wrap(st, 0);
	if (code != NULL && st->have_wrap) {
		access_arg_init(st, &a, org, code, NULL, 1);
		rc = lm_access_read(st, txn, a.k, r, NULL);
	}
	if (rc == MDB_NOTFOUND) {
		access_arg_init(st, &a, org, code, ident, 0);
		rc = lm_access_read(st, txn, a.k, r, NULL);
	}
	return rc;
}


struct access_get {
	const char		*org;
	const unsigned char	*code;
	const char		*ident;
	struct access_rec	*r;
};

static int
access_get_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct access_get *a = p;

	return access_find(st, txn, a->org, a->code, a->ident, a->r);
}

static int
access_put_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct access_arg	*a = p;
	struct access_rec	 r;
	int			 rc;

	/* A code there already by its plain SHA-256 is there. */
	if (a->keyed && (rc = lm_access_read(st, txn, a->plain, &r, NULL)) !=
	    MDB_NOTFOUND)
		return rc == 0 ? MDB_KEYEXIST : rc;
	return lm_access_write(st, txn, a->k, a->in, &a->owner, MDB_NOOVERWRITE);
}

static enum store_err
l_access_get(struct store *s, const char *org,
    const unsigned char *code, const char *ident, struct access_rec *r)
{
	struct lstore		*st = (struct lstore *)s;
	struct access_get	 a = { org, code, ident, r };

	return lm_txn_run(st, 0, "access token get", access_get_fn, &a);
}

static enum store_err
l_access_add(struct store *s, const char *org,
    const unsigned char *code, const char *ident,
    const struct access_rec *r)
{
	struct lstore *st = (struct lstore *)s;
	struct access_arg a = { .in = r };

	if (code != NULL && wrap_unusable(st, "access token add"))
		return STORE_ERROR;
	access_arg_init(st, &a, org, code, ident, 1);
	return lm_txn_run(st, 1, "access token add", access_put_fn, &a);
}

/* The pass code's hash, replaced only if it is still the one verified
 * (a REC_V1 record is written as REC_V2, now that its owner is known). */
static int
access_rehash_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct access_arg	*a = p;
	struct access_rec	 r;
	int			 rc;

	if ((rc = lm_access_read(st, txn, a->k, &r, NULL)) != 0)
		return rc;
	if (strcmp(r.passhash, a->old) != 0)
		return MDB_NOTFOUND;	/* changed meanwhile: leave it */
	snprintf(r.passhash, sizeof(r.passhash), "%s", a->new);
	return lm_access_write(st, txn, a->k, &r, &a->owner, 0);
}

static enum store_err
l_access_rehash(struct store *s, const char *org, const char *ident,
    const char *old, const char *new)
{
	struct lstore *st = (struct lstore *)s;
	struct access_arg a = { .old = old, .new = new };

	access_arg_init(st, &a, org, NULL, ident, 0);
	return lm_txn_run(st, 1, "access token rehash", access_rehash_fn, &a);
}

/* ---- signing keys -------------------------------------------------------- */

struct sigkey_arg {
	const char	*kid;
	struct sigkey	*out;
	struct list_arg	 list;
};

/* The signing key kid, or the current one (kid NULL). */
static int
sigkey_read(struct lstore *st, MDB_txn *txn, const char *kid,
    struct sigkey *out)
{
	char	 cur[CRM_KID_HEX + 1];
	MDB_val	 key, val;
	int	 rc;

	if ((rc = lm_current_kid(st, txn, cur)) != 0)
		return rc;
	key.mv_data = (void *)(kid != NULL ? kid : cur);
	key.mv_size = strlen(key.mv_data);
	if (key.mv_size != CRM_KID_HEX)
		return MDB_NOTFOUND;
	if ((rc = mdb_get(txn, st->sigkeys, &key, &val)) != 0)
		return rc;
	if ((rc = lm_sigkey_decode(&key, &val, out)) != 0)
		return rc;
	out->current = strcmp(out->kid, cur) == 0;
	return 0;
}

static int
sigkey_get_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct sigkey_arg *a = p;

	return sigkey_read(st, txn, a->kid, a->out);
}

static enum store_err
l_sigkey_get(struct store *s, const char *kid, struct sigkey *out)
{
	struct lstore		*st = (struct lstore *)s;
	struct sigkey_arg	 a = { .kid = kid, .out = out };

	if (kid != NULL && strlen(kid) != CRM_KID_HEX)
		return STORE_NOTFOUND;
	return lm_txn_run(st, 0, "signing key get", sigkey_get_fn, &a);
}


static int
sigkey_list_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct sigkey_arg	*a = p;
	char			 cur[CRM_KID_HEX + 1];
	struct sigkey		 k;
	MDB_cursor		*c;
	MDB_val			 key, val;
	int			 rc, stop;

	if ((rc = lm_current_kid(st, txn, cur)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, st->sigkeys, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if ((rc = lm_sigkey_decode(&key, &val, &k)) != 0)
			break;
		k.current = strcmp(k.kid, cur) == 0;
		stop = ((store_sigkey_cb)a->list.cb)(a->list.cbarg, &k);
		memset(&k, 0, sizeof(k));
		if (stop)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static enum store_err
l_sigkey_list(struct store *s, store_sigkey_cb cb, void *arg)
{
	struct lstore *st = (struct lstore *)s;
	struct sigkey_arg a = { .list = { NULL, (void *)cb, arg } };

	return lm_txn_run(st, 0, "signing key list", sigkey_list_fn, &a);
}

/* Make a new signing key and make it current. */
static int
sigkey_new(struct lstore *st, MDB_txn *txn, struct sigkey *k)
{
	MDB_val	 mk = { 11, "current_kid" }, kv = { CRM_KID_HEX, k->kid };
	int	 rc;

	sec_random_hex(k->kid, CRM_KID_BYTES);
	sec_random(k->secret, CRM_SIGKEY_BYTES);
	k->created = (int64_t)time(NULL);
	k->expires = 0;
	k->current = 1;
	if ((rc = lm_sigkey_put(st, txn, k, MDB_NOOVERWRITE)) != 0)
		return rc;
	return mdb_put(txn, st->meta, &mk, &kv, 0);
}

struct rotate_arg {
	int64_t		 now, ttl;
	struct sigkey	 old, new;
};

static int
rotate_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct rotate_arg	*a = p;
	MDB_val			 key = { CRM_KID_HEX, a->old.kid }, val;
	int			 rc;

	if ((rc = lm_current_kid(st, txn, a->old.kid)) != 0 ||
	    (rc = mdb_get(txn, st->sigkeys, &key, &val)) != 0 ||
	    (rc = lm_sigkey_decode(&key, &val, &a->old)) != 0)
		return rc;
	/* Every token it signed expires by now + ttl; so does the key. */
	a->old.expires = a->now + a->ttl;
	a->old.current = 0;
	if ((rc = lm_sigkey_put(st, txn, &a->old, 0)) != 0)
		return rc;
	return sigkey_new(st, txn, &a->new);
}

static enum store_err
l_sigkey_rotate(struct store *s, int64_t now, int64_t ttl,
    struct sigkey *old, struct sigkey *new)
{
	struct lstore *st = (struct lstore *)s;
	struct rotate_arg	 a = { .now = now, .ttl = ttl };
	enum store_err		 e;

	e = lm_txn_run(st, 1, "key rotate", rotate_fn, &a);
	if (e == STORE_OK) {
		*old = a.old;
		*new = a.new;
	}
	memset(&a, 0, sizeof(a));
	return e;
}

struct retire_arg {
	char		 kid[CRM_KID_HEX + 1];
	struct sigkey	 new;
	int		 made_new;
};

/* Delete a signing key at once; if it is the current one, a new current
 * key is made first, in the same transaction. */
static int
retire_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct retire_arg	*a = p;
	char			 cur[CRM_KID_HEX + 1];
	MDB_val			 key = { CRM_KID_HEX, a->kid }, val;
	int			 rc;

	if ((rc = lm_current_kid(st, txn, cur)) != 0 ||
	    (rc = mdb_get(txn, st->sigkeys, &key, &val)) != 0)
		return rc;
	if (strcmp(a->kid, cur) == 0) {
		if ((rc = sigkey_new(st, txn, &a->new)) != 0)
			return rc;
		a->made_new = 1;
	}
	return mdb_del(txn, st->sigkeys, &key, NULL);
}

static enum store_err
l_sigkey_retire(struct store *s, const char *kid, struct sigkey *new,
    int *made_new)
{
	struct lstore *st = (struct lstore *)s;
	struct retire_arg	 a;
	enum store_err		 e;

	memset(&a, 0, sizeof(a));
	if (strlen(kid) != CRM_KID_HEX)
		return STORE_NOTFOUND;
	memcpy(a.kid, kid, CRM_KID_HEX);
	e = lm_txn_run(st, 1, "key retire", retire_fn, &a);
	*made_new = e == STORE_OK && a.made_new;
	if (*made_new)
		*new = a.new;
	explicit_bzero(&a, sizeof(a));
	return e;
}

/* Delete signing keys past their expiry: no token they signed is valid. */
static int
prune_sigkeys(struct lstore *st, MDB_txn *txn, int64_t now)
{
	MDB_cursor	*c;
	MDB_val		 key, val;
	struct sigkey	 k;
	int		 rc;

	if ((rc = mdb_cursor_open(txn, st->sigkeys, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if ((rc = lm_sigkey_decode(&key, &val, &k)) != 0)
			break;
		if (k.expires != 0 && k.expires <= now &&
		    (rc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	memset(&k, 0, sizeof(k));
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- released tokens ---------------------------------------------------- */

static int
released_get_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct rel_arg	*a = p;
	MDB_val		 key = { CRM_JTI_BYTES, (void *)a->jti }, val;
	int		 rc;

	if ((rc = mdb_get(txn, st->released, &key, &val)) != 0)
		return rc;
	if (val.mv_size != 8)
		return RC_CORRUPT;
	a->exp = (int64_t)get_be64(val.mv_data);
	return 0;
}

static enum store_err
l_released_get(struct store *s, const unsigned char jti[CRM_JTI_BYTES],
    int64_t *exp)
{
	struct lstore *st = (struct lstore *)s;
	struct rel_arg	 a = { .jti = jti };
	enum store_err	 e;

	e = lm_txn_run(st, 0, "released get", released_get_fn, &a);
	if (e == STORE_OK)
		*exp = a.exp;
	return e;
}

int
lm_release_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct rel_arg	*a = p;
	unsigned char	 e[8], ik[8 + CRM_JTI_BYTES];
	MDB_val		 key = { CRM_JTI_BYTES, (void *)a->jti };
	MDB_val		 val = { 8, e }, ikey = { sizeof(ik), ik };
	MDB_val		 empty = { 0, "" };
	int		 rc;

	put_be64(e, (uint64_t)a->exp);
	rc = mdb_put(txn, st->released, &key, &val, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return 0;	/* already released: nothing to do */
	if (rc != 0)
		return rc;
	memcpy(ik, e, 8);
	memcpy(ik + 8, a->jti, CRM_JTI_BYTES);
	return mdb_put(txn, st->released_exp, &ikey, &empty, 0);
}

static enum store_err
l_release(struct store *s, const unsigned char jti[CRM_JTI_BYTES],
    int64_t exp, int64_t now)
{
	struct lstore *st = (struct lstore *)s;
	struct rel_arg a = { .jti = jti, .exp = exp, .now = now };

	/* Past its exp the token is refused anyway; nothing to keep. */
	if (exp <= now)
		return STORE_OK;
	return lm_txn_run(st, 1, "release", lm_release_fn, &a);
}

/*
 * Delete released ids whose exp <= now, oldest first, at most limit
 * (0: no limit).  The index is ordered by big-endian exp, so the walk
 * stops at the first live entry.
 */
static int
prune(struct lstore *st, MDB_txn *txn, int64_t now, size_t limit, size_t *n)
{
	int rc = lmdb_prune_index(txn, st->released_exp, st->released, now,
	    CRM_JTI_BYTES, CRM_JTI_BYTES, limit, n);

	return rc == MDB_CORRUPTED ? RC_CORRUPT : rc;
}

static int
prune_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct rel_arg *a = p;

	return prune(st, txn, a->now, 0, &a->n);
}

static enum store_err
l_released_prune(struct store *s, int64_t now, size_t *n)
{
	struct lstore *st = (struct lstore *)s;
	struct rel_arg	 a = { .now = now };
	enum store_err	 e;

	e = lm_txn_run(st, 1, "released prune", prune_fn, &a);
	*n = e == STORE_OK ? a.n : 0;
	return e;
}

static int
stats_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct store_stats	*out = p;
	char			 kid[CRM_KID_HEX + 1];
	MDB_val			 key = { CRM_KID_HEX, kid }, val;
	MDB_stat		 s;
	int			 rc;

	if ((rc = mdb_stat(txn, st->released, &s)) != 0)
		return rc;
	out->released = s.ms_entries;
	/* The current key's time alone (its first 8 bytes), never its
	 * secret. */
	if ((rc = lm_current_kid(st, txn, kid)) != 0 ||
	    (rc = mdb_get(txn, st->sigkeys, &key, &val)) != 0)
		return rc;
	if (val.mv_size != SIGKEY_VAL)
		return RC_CORRUPT;
	out->key_created = (int64_t)get_be64(val.mv_data);
	return 0;
}

static enum store_err
l_stats(struct store *s, struct store_stats *out)
{
	struct lstore *st = (struct lstore *)s;

	memset(out, 0, sizeof(*out));
	return lm_txn_run(st, 0, "stats", stats_fn, out);
}

static int
ping_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	char kid[CRM_KID_HEX + 1];

	return lm_current_kid(st, txn, kid);
}

static enum store_err
l_ping(struct store *s)
{
	struct lstore *st = (struct lstore *)s;
	return lm_txn_run(st, 0, "ping", ping_fn, NULL);
}

/* ---- failed attempts: attempts.c, opened on first use ---------------------- */

static enum store_err
att_rc(struct lstore *st, const char *what, int rc)
{
	if (rc == MDB_CORRUPTED) {
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: damaged "
		    "counters (delete the attempts-*.mdb files to reset "
		    "them)", what);
		return STORE_CORRUPT;
	}
	return lm_map_rc(st, what, rc);
}

/* The counters, opened now if need be: 0, or an errno/LMDB code with
 * st->base.detail set (ENOENT: rdonly, and none yet in this boot). */
static int
att(struct lstore *st, int rdonly)
{
	char	 err[CRM_ERR_MAX];
	int	 rc;

	if (st->att != NULL && (rdonly || !st->att_rdonly))
		return 0;
	attdb_close(st->att);		/* read-only, and now to write */
	st->att = NULL;
	if ((rc = attdb_open(&st->att, &st->base.cfg, rdonly, err,
	    sizeof(err))) != 0)
		snprintf(st->base.detail, sizeof(st->base.detail), "%s", err);
	st->att_rdonly = rdonly;
	return rc;
}

static enum store_err
l_attempt_reserve(struct store *s, struct att_reserve *r)
{
	struct lstore *st = (struct lstore *)s;
	if (att(st, 0) != 0)
		return STORE_ERROR;
	return att_rc(st, "attempts", attdb_reserve(st->att, r));
}

static enum store_err
l_attempt_giveback(struct store *s, struct att_reserve *r, int success,
    int64_t trust_until)
{
	struct lstore *st = (struct lstore *)s;
	if (att(st, 0) != 0)
		return STORE_ERROR;
	return att_rc(st, "attempts", attdb_giveback(st->att, r, success,
	    trust_until));
}

static enum store_err
l_attempt_decide(struct store *s, struct att_reserve *r, int ok)
{
	struct lstore *st = (struct lstore *)s;
	if (att(st, 0) != 0)
		return STORE_ERROR;
	return att_rc(st, "attempts", attdb_decide(st->att, r, ok));
}

static enum store_err
l_lock_list(struct store *s, store_lock_cb cb, void *arg)
{
	struct lstore *st = (struct lstore *)s;
	int rc;

	if ((rc = att(st, 1)) != 0)
		return rc == ENOENT ? STORE_OK : STORE_ERROR;
	return att_rc(st, "lock list", attdb_locks(st->att, cb, arg));
}

static enum store_err
l_lock_clear(struct store *s, const unsigned char *key, size_t keylen,
    int prefix, size_t *n)
{
	struct lstore *st = (struct lstore *)s;
	*n = 0;
	if (att(st, 0) != 0)
		return STORE_ERROR;
	return att_rc(st, "lock clear", attdb_clear(st->att, key, keylen,
	    prefix, n));
}

static enum store_err
l_attempts_prune(struct store *s, int64_t now, size_t *n)
{
	struct lstore *st = (struct lstore *)s;
	*n = 0;
	if (att(st, 0) != 0)
		return STORE_ERROR;
	return att_rc(st, "attempts prune", attdb_prune(st->att, now, n));
}

static enum store_err
l_attempts_usage(struct store *s, size_t *bytes, size_t *records)
{
	struct lstore *st = (struct lstore *)s;
	int rc;

	*bytes = *records = 0;
	if ((rc = att(st, 1)) != 0)
		return rc == ENOENT ? STORE_OK : STORE_ERROR;
	return att_rc(st, "attempts usage", attdb_usage(st->att, bytes,
	    records));
}

/* ---- what a method reads, in one read transaction -------------------------- */

struct lookup_arg {
	const char		*org, *user;		/* user */
	const unsigned char	*digest;		/* key */
	const unsigned char	*code;			/* access token */
	const char		*ident;
	struct lookup		*out;
};

/* Read one record into *found: 0 when read or absent, else an error. */
static int
found(int rc, int *found)
{
	*found = rc == 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
lookup_user_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct lookup_arg	*a = p;
	struct lookup		*l = a->out;
	int			 rc;

	if ((rc = found(lm_user_read(st, txn, a->org, a->user, &l->user),
	    &l->user_found)) != 0)
		return rc;
	return sigkey_read(st, txn, NULL, &l->key);
}

static enum store_err
l_lookup_user(struct store *s, const char *org, const char *user,
    struct lookup *out)
{
	struct lstore *st = (struct lstore *)s;
	struct lookup_arg a = { .org = org, .user = user, .out = out };

	lookup_reset(out);
	return lm_txn_run(st, 0, "user lookup", lookup_user_fn, &a);
}

static int
lookup_apikey_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct lookup_arg	*a = p;
	struct lookup		*l = a->out;
	struct key_arg		 k = { .digest = a->digest, .ak = &l->apikey };
	int			 rc;

	if ((rc = found(key_get_fn(st, txn, &k), &l->apikey_found)) != 0)
		return rc;
	if (l->apikey_found && (rc = found(lm_user_read(st, txn, l->apikey.org,
	    l->apikey.user, &l->user), &l->user_found)) != 0)
		return rc;
	return sigkey_read(st, txn, NULL, &l->key);
}

static enum store_err
l_lookup_apikey(struct store *s,
    const unsigned char digest[CRM_DIGEST_BYTES], struct att_reserve *r,
    struct lookup *out)
{
	struct lstore *st = (struct lstore *)s;
	struct lookup_arg a = { .digest = digest, .out = out };
	enum store_err e;

	lookup_reset(out);
	if (r != NULL) {
		if (att(st, 0) != 0)
			return STORE_ERROR;
		if ((e = att_rc(st, "attempts", attdb_peek(st->att, r))) !=
		    STORE_OK || r->locked_until > r->now)
			return e;
	}
	return lm_txn_run(st, 0, "apikey lookup", lookup_apikey_fn, &a);
}

static int
lookup_consumer_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct lookup_arg	*a = p;
	struct lookup		*l = a->out;
	struct key_arg		 k = { .digest = a->digest, .consumer = 1,
				    .ck = &l->consumer };
	int			 rc;

	if ((rc = found(key_get_fn(st, txn, &k), &l->consumer_found)) != 0)
		return rc;
	if (l->consumer_found) {
		if ((rc = found(access_find(st, txn, l->consumer.org, a->code,
		    a->ident, &l->access), &l->access_found)) != 0 ||
		    (rc = lm_app_cutoff_get(st, txn, l->consumer.org,
		    l->consumer.app, &l->app_cutoff)) != 0)
			return rc;
	}
	return sigkey_read(st, txn, NULL, &l->key);
}

/* With r: the code decided after the read, in the counters' write
 * transaction (store_attempt_decide). */
static enum store_err
l_lookup_consumer(struct store *s,
    const unsigned char digest[CRM_DIGEST_BYTES], const unsigned char *code,
    const char *ident, struct att_reserve *r, struct lookup *out)
{
	struct lstore *st = (struct lstore *)s;
	struct lookup_arg a = { .digest = digest, .code = code,
	    .ident = ident, .out = out };
	enum store_err e;

	lookup_reset(out);
	if ((e = lm_txn_run(st, 0, "consumer lookup", lookup_consumer_fn,
	    &a)) != STORE_OK || r == NULL || code == NULL ||
	    !out->consumer_found || out->consumer.revoked)
		return e;
	return l_attempt_decide(s, r, out->access_found);
}

struct state_arg {
	const char		*kid;
	const unsigned char	*jti;
	const struct principal	*who;
	struct tok_state	*out;
};

static int
token_state_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct state_arg	*a = p;
	struct tok_state	*s = a->out;
	struct rel_arg		 r = { .jti = a->jti };
	struct user_rec		 u;
	int			 rc;

	if ((rc = found(sigkey_read(st, txn, a->kid, &s->key),
	    &s->key_found)) != 0)
		return rc;
	if (a->jti != NULL && (rc = found(released_get_fn(st, txn, &r),
	    &s->released)) != 0)
		return rc;
	if (a->who == NULL)
		return 0;
	if (a->who->consumer) {
		s->principal_found = 1;
		return lm_app_cutoff_get(st, txn, a->who->org, a->who->name,
		    &s->cutoff);
	}
	rc = found(lm_user_read(st, txn, a->who->org, a->who->name, &u),
	    &s->principal_found);
	if (rc == 0 && s->principal_found) {
		s->disabled = u.disabled;
		s->created = u.created;
		s->cutoff = u.not_before;
	}
	explicit_bzero(&u, sizeof(u));
	return rc;
}

static enum store_err
l_token_state(struct store *s, const char *kid,
    const unsigned char *jti, const struct principal *who,
    struct tok_state *out)
{
	struct lstore *st = (struct lstore *)s;
	struct state_arg	 a = { kid, jti, who, out };

	memset(out, 0, sizeof(*out));
	return lm_txn_run(st, 0, "token state", token_state_fn, &a);
}

/* ---- opening ------------------------------------------------------------- */

static const struct {
	const char	*name;
	size_t		 off;
} dbs[] = {
	{ "meta", offsetof(struct lstore, meta) },
	{ "users", offsetof(struct lstore, users) },
	{ "apikeys", offsetof(struct lstore, apikeys) },
	{ "consumer_keys", offsetof(struct lstore, consumers) },
	{ "access_tokens", offsetof(struct lstore, access) },
	{ "signing_keys", offsetof(struct lstore, sigkeys) },
	{ "released", offsetof(struct lstore, released) },
	{ "released_by_exp", offsetof(struct lstore, released_exp) },
	{ "cutoffs", offsetof(struct lstore, cutoffs) },
};

/* The schema version (made with create), and a first signing key. */
static int
schema_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	int		 create = *(int *)p;
	MDB_val		 key = { 6, "schema" }, val;
	char		 ver[16], kid[CRM_KID_HEX + 1];
	struct sigkey	 k;
	int		 rc;

	rc = mdb_get(txn, st->meta, &key, &val);
	if (rc == MDB_NOTFOUND && create) {
		snprintf(ver, sizeof(ver), "%d", STORE_SCHEMA_VERSION);
		val.mv_size = strlen(ver);
		val.mv_data = ver;
		rc = mdb_put(txn, st->meta, &key, &val, 0);
	} else if (rc == MDB_NOTFOUND)
		return RC_NOTINIT;
	else if (rc == 0) {
		switch (store_schema_check(val.mv_data, val.mv_size)) {
		case STORE_OK:
			break;
		case STORE_VERSION:
			return RC_VERSION;
		default:
			return RC_CORRUPT;
		}
	}
	if (rc != 0 || !create)
		return rc;
	if ((rc = lm_current_kid(st, txn, kid)) == RC_NOTINIT) {
		rc = sigkey_new(st, txn, &k);
		explicit_bzero(&k, sizeof(k));
	}
	return rc;
}

/* Open (or create) the named databases and check the schema version. */
static int
open_dbs(struct lstore *st, int create)
{
	const char	*names[sizeof(dbs) / sizeof(dbs[0])];
	MDB_dbi		 dbis[sizeof(dbs) / sizeof(dbs[0])];
	size_t		 n = sizeof(dbs) / sizeof(dbs[0]);
	enum store_err	 e;
	int		 rc;

	for (size_t i = 0; i < n; i++)
		names[i] = dbs[i].name;
	if ((rc = lmdb_dbis(st->db, names, dbis, n, create)) != 0)
		return rc == MDB_NOTFOUND ? RC_NOTINIT : rc;
	for (size_t i = 0; i < n; i++)
		*(MDB_dbi *)((char *)st + dbs[i].off) = dbis[i];
	/* A write only when creating: serving never writes here. */
	e = lm_txn_run(st, create, "schema", schema_fn, &create);
	switch (e) {
	case STORE_OK:
		return 0;
	case STORE_NOTINIT:
		return RC_NOTINIT;
	case STORE_VERSION:
		return RC_VERSION;
	case STORE_CORRUPT:
		return RC_CORRUPT;
	default:
		return EIO;
	}
}

static const struct store_ops lmdb_ops;

/* Open the LMDB store at cfg->db_path (store_open's contract). */
enum store_err
lm_open(struct lstore **out, const struct config *cfg, int flags,
    char *err, size_t errlen)
{
	int		 create = (flags & STORE_CREATE) != 0;
	mode_t		 mode = 0600;
	struct lstore	*st;
	struct stat	 sb;
	char		 data[sizeof(cfg->db_path) + 16];
	enum store_err	 e = STORE_ERROR;
	int		 rc;

	*out = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return STORE_ERROR;
	st->base.ops = &lmdb_ops;
	st->base.cfg = *cfg;
	st->base.where = st->base.cfg.db_path;
	if (create && store_make_dir(cfg, st->base.detail,
	    sizeof(st->base.detail)) == -1)
		goto fail;
	/* Group-writable files in a group directory: readers write the
	 * lock file too. */
	if (stat(cfg->db_path, &sb) == 0 && (sb.st_mode & 070) != 0)
		mode = 0660;
	/* Never create a store as a side effect of serving. */
	snprintf(data, sizeof(data), "%s/data.mdb", cfg->db_path);
	if (!create && stat(data, &sb) == -1) {
		e = errno == ENOENT ? STORE_NOTINIT : STORE_ERROR;
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s", e ==
		    STORE_NOTINIT ? cfg->db_path : data, e == STORE_NOTINIT ?
		    store_strerror(e) : strerror(errno));
		goto fail;
	}
	rc = lmdb_open(&st->db, cfg->db_path,
	    (flags & STORE_RDONLY) ? MDB_RDONLY : 0, mode,
	    (size_t)cfg->db_map_size_mb << 20,
	    (size_t)cfg->db_map_max_mb << 20);
	if (rc != 0) {
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s",
		    cfg->db_path, rc == EBUSY ? "already open read-only in "
		    "this process" : mdb_strerror(rc));
		e = rc == ENOENT ? STORE_NOTINIT : STORE_ERROR;
		goto fail;
	}
	if ((rc = open_dbs(st, create)) != 0) {
		e = lm_map_rc(st, cfg->db_path, rc);
		if (e == STORE_NOTINIT || e == STORE_VERSION)
			snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s",
			    cfg->db_path, store_strerror(e));
		goto fail;
	}
	lm_wrap(st, 1);
	if (create && st->wrap_bad) {
		snprintf(st->base.detail, sizeof(st->base.detail),
		    "crmauthctl init: %s", st->wrap_why);
		e = STORE_ERROR;
		goto fail;
	}
	if (create && st->have_wrap &&
	    (e = lm_txn_run(st, 1, "crmauthctl init", key_plain_fn, NULL)) !=
	    STORE_OK)
		goto fail;
	*out = st;
	return STORE_OK;
fail:
	snprintf(err, errlen, "%s", st->base.detail[0] != '\0' ?
	    st->base.detail : store_strerror(e));
	lm_close(&st->base);
	return e;
}

enum store_err
lmdb_store_open(struct store **out, const struct config *cfg, int flags,
    char *err, size_t errlen)
{
	struct lstore	*st;
	enum store_err	 e;

	e = lm_open(&st, cfg, flags, err, errlen);
	*out = e == STORE_OK ? &st->base : NULL;
	return e;
}

void
lm_close(struct store *s)
{
	struct lstore *st = (struct lstore *)s;

	if (st->rtxn != NULL)
		mdb_txn_abort(st->rtxn);
	attdb_close(st->att);
	lmdb_close(st->db);
	free(st);
}

static const struct store_ops lmdb_ops = {
	.name = "lmdb",
	.close = lm_close,
	.ping = l_ping,
	.user_get = l_user_get,
	.apikey_get = l_apikey_get,
	.consumer_get = l_consumer_get,
	.access_get = l_access_get,
	.sigkey_get = l_sigkey_get,
	.lookup_user = l_lookup_user,
	.lookup_apikey = l_lookup_apikey,
	.lookup_consumer = l_lookup_consumer,
	.token_state = l_token_state,
	.released_get = l_released_get,
	.stats = l_stats,
	.user_add = l_user_add,
	.user_change = l_user_change,
	.user_del = l_user_del,
	.apikey_put = l_apikey_put,
	.consumer_put = l_consumer_put,
	.access_add = l_access_add,
	.access_rehash = l_access_rehash,
	.key_revoke = l_key_revoke,
	.sigkey_rotate = l_sigkey_rotate,
	.sigkey_retire = l_sigkey_retire,
	.release = l_release,
	.released_prune = l_released_prune,
	.attempt_reserve = l_attempt_reserve,
	.attempt_giveback = l_attempt_giveback,
	.attempt_decide = l_attempt_decide,
	.lock_list = l_lock_list,
	.lock_clear = l_lock_clear,
	.attempts_prune = l_attempts_prune,
	.attempts_usage = l_attempts_usage,
	.user_list = l_user_list,
	.apikey_list = l_apikey_list,
	.consumer_list = l_consumer_list,
	.sigkey_list = l_sigkey_list,
	.backup = lmdb_backup,
	.dump = lmdb_dump,
	.code_key = l_code_key,
	.load = lmdb_load,
};
