/*
 * The LMDB store (store.h): one environment on one machine, shared by
 * every responder process and crmauthctl.  Named databases (all keys
 * binary unless noted):
 *
 *   meta             "schema" -> "1"; "current_kid" -> kid
 *   users            SHA-256("U" org NUL user) -> record
 *   apikeys          SHA-256(key) -> record
 *   consumer_keys    SHA-256(key) -> record
 *   access_tokens    SHA-256("C" org NUL SHA-256(code)) or
 *                    SHA-256("I" org NUL identifier) -> record
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

#define RC_CORRUPT	(-1)	/* a record we cannot decode */
#define RC_VERSION	(-2)	/* schema newer than us */
#define RC_NOTINIT	(-3)	/* a database or the schema is missing */
#define RC_NOTEMPTY	(-4)	/* import: the store holds records */
#define RC_STOP		(-5)	/* import: the source stopped */
#define RC_SKIP		(-6)	/* export: a record not to give */

struct lstore {
	struct store	 base;		/* first: what store.c knows */
	struct lmdb	*db;		/* shared by this process's handles */
	MDB_dbi		 meta, users, apikeys, consumers, access, sigkeys;
	MDB_dbi		 released, released_exp, cutoffs;
	MDB_txn		*rtxn;		/* the last read, reset: renewed next */
	struct attdb	*att;		/* the counters, once used */
	int		 att_rdonly;	/* ... opened read-only */
};

typedef int (*txn_fn)(struct lstore *, MDB_txn *, void *);

static void
set_detail(struct lstore *st, const char *what, int rc)
{
	snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s", what,
	    mdb_strerror(rc));
}

static enum store_err
map_rc(struct lstore *st, const char *what, int rc)
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
static enum store_err
txn_run(struct lstore *st, int write, const char *what, txn_fn fn,
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
	return map_rc(st, what, rc);
}

/* ---- keys and records ---------------------------------------------------- */





/*
 * Records: a format byte, then the fields in a fixed order.  A string is
 * a 2-byte big-endian length and its bytes (no NUL), an integer 8 bytes
 * big-endian, a boolean one byte 0 or 1, a unit list a count byte (1 to
 * CRM_UNITS_MAX) and that many strings.  Reading checks every length
 * against the field and the record, and that nothing is left over.
 */
#define REC_V1		0x01
#define REC_V2		0x02	/* access tokens that say whose they are */
#define REC_MAX		(1 + 2 * (2 + CRM_NAME_MAX) + 2 + CRM_PWHASH_MAX + \
			    1 + CRM_UNITS_MAX * (2 + CRM_NAME_MAX) + 1 + 8)

struct rec_out {
	struct fbuf	 b;		/* over buf */
	char		 buf[REC_MAX];
};

struct rec_in {
	const unsigned char	*p;
	size_t			 left;
	int			 bad;
};

static void
w_str(struct rec_out *w, const char *s)
{
	size_t		 n = strlen(s);
	unsigned char	 len[2] = { (unsigned char)(n >> 8), (unsigned char)n };

	if (n > UINT16_MAX)
		w->b.full = 1;
	fbuf_add(&w->b, len, 2);
	fbuf_add(&w->b, s, n);
}

static void
w_i64(struct rec_out *w, int64_t v)
{
	unsigned char b[8];

	put_be64(b, (uint64_t)v);
	fbuf_add(&w->b, b, 8);
}

static void
w_bool(struct rec_out *w, int v)
{
	unsigned char b = v ? 1 : 0;

	fbuf_add(&w->b, &b, 1);
}

static void
w_units(struct rec_out *w, const char units[][CRM_NAME_MAX + 1], size_t n)
{
	unsigned char b = (unsigned char)n;

	if (n == 0 || n > CRM_UNITS_MAX)
		w->b.full = 1;
	fbuf_add(&w->b, &b, 1);
	for (size_t i = 0; i < n; i++)
		w_str(w, units[i]);
}

static void
rec_start_v(struct rec_out *w, unsigned char format)
{
	w->b = (struct fbuf){ w->buf, 0, sizeof(w->buf), 0 };
	fbuf_add(&w->b, &format, 1);
}

static void
rec_start(struct rec_out *w)
{
	rec_start_v(w, REC_V1);
}

static int
put_rec(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen,
    const struct rec_out *w, unsigned flags)
{
	MDB_val key = { klen, (void *)k }, val = { w->b.len, (void *)w->buf };

	if (w->b.full)
		return RC_CORRUPT;	/* not a record we could read back */
	return mdb_put(txn, dbi, &key, &val, flags);
}

static const unsigned char *
r_take(struct rec_in *r, size_t n)
{
	const unsigned char *p = r->p;

	if (r->bad || n > r->left) {
		r->bad = 1;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static void
r_str(struct rec_in *r, char *buf, size_t size)
{
	const unsigned char	*p;
	size_t			 n;

	buf[0] = '\0';
	if ((p = r_take(r, 2)) == NULL)
		return;
	n = (size_t)p[0] << 8 | p[1];
	if (n >= size || (p = r_take(r, n)) == NULL ||
	    memchr(p, '\0', n) != NULL) {
		r->bad = 1;
		return;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
}

static int64_t
r_i64(struct rec_in *r)
{
	const unsigned char *p = r_take(r, 8);

	return p == NULL ? 0 : (int64_t)get_be64(p);
}

static int
r_bool(struct rec_in *r)
{
	const unsigned char *p = r_take(r, 1);

	if (p != NULL && *p > 1)
		r->bad = 1;
	return p != NULL && *p == 1;
}

static size_t
r_units(struct rec_in *r, char units[][CRM_NAME_MAX + 1])
{
	const unsigned char	*p = r_take(r, 1);
	size_t			 n = p == NULL ? 0 : *p;

	if (n == 0 || n > CRM_UNITS_MAX)
		r->bad = 1;
	for (size_t i = 0; i < n && !r->bad; i++)
		r_str(r, units[i], CRM_NAME_MAX + 1);
	return r->bad ? 0 : n;
}

/* A record's reader, past its format byte: the format (REC_V1 up to
 * max), or -1 when it is not one we know. */
static int
rec_begin_v(const MDB_val *v, struct rec_in *r, int max)
{
	const unsigned char *p = v->mv_data;

	r->bad = v->mv_size == 0 || p[0] < REC_V1 || p[0] > max;
	r->p = p + 1;
	r->left = r->bad ? 0 : v->mv_size - 1;
	return r->bad ? -1 : p[0];
}

static int
rec_begin(const MDB_val *v, struct rec_in *r)
{
	return rec_begin_v(v, r, REC_V1) == -1 ? -1 : 0;
}

static int
rec_end(const struct rec_in *r)
{
	return r->bad || r->left != 0 ? RC_CORRUPT : 0;
}

/* ---- users ------------------------------------------------------------- */

struct user_arg {
	const char		*org, *user;
	struct user_rec		*rec;
	const struct user_rec	*in;
	user_change_fn		 change;
	void			*change_arg;
};

static void
user_key(unsigned char k[CRM_DIGEST_BYTES], const char *org, const char *user)
{
	sec_tagged_hash(k, 'U', org, user, strlen(user));
}

static int
user_decode(const MDB_val *v, struct user_rec *r, char *org, char *user)
{
	struct rec_in	 in;
	char		 obuf[CRM_NAME_MAX + 1], ubuf[CRM_NAME_MAX + 1];

	if (rec_begin(v, &in) != 0)
		return RC_CORRUPT;
	r_str(&in, org ? org : obuf, CRM_NAME_MAX + 1);
	r_str(&in, user ? user : ubuf, CRM_NAME_MAX + 1);
	r_str(&in, r->pwhash, sizeof(r->pwhash));
	r->nunits = r_units(&in, r->units);
	r->disabled = r_bool(&in);
	r->created = r_i64(&in);
	r->not_before = r_i64(&in);
	return rec_end(&in);
}

/* The user record of org/user in txn: 0, MDB_NOTFOUND or an error. */
static int
user_read(struct lstore *st, MDB_txn *txn, const char *org, const char *user,
    struct user_rec *r)
{
	unsigned char	 k[CRM_DIGEST_BYTES];
	MDB_val		 key = { sizeof(k), k }, val;
	int		 rc;

	user_key(k, org, user);
	if ((rc = mdb_get(txn, st->users, &key, &val)) != 0)
		return rc;
	return user_decode(&val, r, NULL, NULL);
}

static int
user_write(struct lstore *st, MDB_txn *txn, const char *org, const char *user,
    const struct user_rec *r, unsigned flags)
{
	unsigned char	 k[CRM_DIGEST_BYTES];
	struct rec_out	 w;

	user_key(k, org, user);
	rec_start(&w);
	w_str(&w, org);
	w_str(&w, user);
	w_str(&w, r->pwhash);
	w_units(&w, r->units, r->nunits);
	w_bool(&w, r->disabled);
	w_i64(&w, r->created);
	w_i64(&w, r->not_before);
	return put_rec(txn, st->users, k, sizeof(k), &w, flags);
}

static int
user_get_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct user_arg *a = p;

	return user_read(st, txn, a->org, a->user, a->rec);
}

static enum store_err
l_user_get(struct store *s, const char *org, const char *user,
    struct user_rec *rec)
{
	struct lstore *st = (struct lstore *)s;
	struct user_arg a = { .org = org, .user = user, .rec = rec };

	return txn_run(st, 0, "user get", user_get_fn, &a);
}

static int
user_put_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct user_arg *a = p;

	return user_write(st, txn, a->org, a->user, a->in, MDB_NOOVERWRITE);
}

static enum store_err
l_user_add(struct store *s, const char *org, const char *user,
    const struct user_rec *rec)
{
	struct lstore *st = (struct lstore *)s;
	struct user_arg a = { .org = org, .user = user, .in = rec };

	return txn_run(st, 1, "user add", user_put_fn, &a);
}

/* Read, change and write back in one transaction (a change that
 * returns non-zero writes nothing). */
static int
user_change_txn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct user_arg	*a = p;
	struct user_rec	 r;
	int		 rc;

	if ((rc = user_read(st, txn, a->org, a->user, &r)) != 0)
		return rc;
	if (a->change(&r, a->change_arg) == 0)
		rc = user_write(st, txn, a->org, a->user, &r, 0);
	else if (a->rec != NULL)
		rc = user_read(st, txn, a->org, a->user, &r);
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

	return txn_run(st, 1, "user change", user_change_txn, &a);
}

static int	apikey_decode(const MDB_val *, struct apikey_rec *);

static int
user_del_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct user_arg	*a = p;
	unsigned char	 k[CRM_DIGEST_BYTES];
	MDB_val		 key = { sizeof(k), k }, val;
	MDB_cursor	*c;
	int		 rc;
	struct apikey_rec ak;

	user_key(k, a->org, a->user);
	if ((rc = mdb_del(txn, st->users, &key, NULL)) != 0)
		return rc;
	/* The user's Web API keys go with the user. */
	if ((rc = mdb_cursor_open(txn, st->apikeys, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if ((rc = apikey_decode(&val, &ak)) != 0)
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

	return txn_run(st, 1, "user del", user_del_fn, &a);
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
		if ((rc = user_decode(&val, &r, org, user)) != 0)
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

	return txn_run(st, 0, "user list", user_list_fn, &a);
}

/* ---- Web API keys and consumer application keys --------------------------- */

/* A key record of either kind: ak or ck, as consumer says. */
struct key_arg {
	const unsigned char	*digest;
	int			 consumer;
	struct apikey_rec	*ak;
	struct consumer_rec	*ck;
	int			 must_be_new;
	int64_t			 now;		/* revoke */
};

static int
apikey_decode(const MDB_val *v, struct apikey_rec *r)
{
	struct rec_in in;

	if (rec_begin(v, &in) != 0)
		return RC_CORRUPT;
	r_str(&in, r->org, sizeof(r->org));
	r_str(&in, r->user, sizeof(r->user));
	r->revoked = r_bool(&in);
	r->created = r_i64(&in);
	return rec_end(&in);
}

static int
consumer_decode(const MDB_val *v, struct consumer_rec *r)
{
	struct rec_in in;

	if (rec_begin(v, &in) != 0)
		return RC_CORRUPT;
	r_str(&in, r->org, sizeof(r->org));
	r_str(&in, r->app, sizeof(r->app));
	r->nunits = r_units(&in, r->units);
	r->revoked = r_bool(&in);
	r->created = r_i64(&in);
	return rec_end(&in);
}

static void
apikey_encode(struct rec_out *w, const struct apikey_rec *r)
{
	rec_start(w);
	w_str(w, r->org);
	w_str(w, r->user);
	w_bool(w, r->revoked);
	w_i64(w, r->created);
}

static void
consumer_encode(struct rec_out *w, const struct consumer_rec *r)
{
	rec_start(w);
	w_str(w, r->org);
	w_str(w, r->app);
	w_units(w, r->units, r->nunits);
	w_bool(w, r->revoked);
	w_i64(w, r->created);
}

static int
key_decode(const MDB_val *v, struct key_arg *a)
{
	if (a->consumer)
		return consumer_decode(v, a->ck);
	return apikey_decode(v, a->ak);
}

static int
key_put(struct lstore *st, MDB_txn *txn, const struct key_arg *a,
    unsigned flags)
{
	struct rec_out w;

	if (a->consumer)
		consumer_encode(&w, a->ck);
	else
		apikey_encode(&w, a->ak);
	return put_rec(txn, a->consumer ? st->consumers : st->apikeys,
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
	return key_decode(&val, a);
}

static int
key_put_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct key_arg *a = p;

	return key_put(st, txn, a, a->must_be_new ? MDB_NOOVERWRITE : 0);
}

/* Cut off what a consumer application was issued up to now. */
static int
app_cutoff_put(struct lstore *st, MDB_txn *txn, const char *org,
    const char *app, int64_t now)
{
	unsigned char	 k[CRM_DIGEST_BYTES], v[8];
	MDB_val		 key = { sizeof(k), k }, val = { sizeof(v), v };

	sec_tagged_hash(k, 'A', org, app, strlen(app));
	put_be64(v, (uint64_t)now);
	return mdb_put(txn, st->cutoffs, &key, &val, 0);
}

/* The time up to which an application's tokens are cut off, 0 if none. */
static int
app_cutoff_get(struct lstore *st, MDB_txn *txn, const char *org,
    const char *app, int64_t *cutoff)
{
	unsigned char	 k[CRM_DIGEST_BYTES];
	MDB_val		 key = { sizeof(k), k }, val;
	int		 rc;

	*cutoff = 0;
	sec_tagged_hash(k, 'A', org, app, strlen(app));
	if ((rc = mdb_get(txn, st->cutoffs, &key, &val)) == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (val.mv_size != 8)
		return RC_CORRUPT;
	*cutoff = (int64_t)get_be64(val.mv_data);
	return 0;
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
	int		 rc;

	if ((rc = key_get_fn(st, txn, a)) != 0)
		return rc;
	if (a->consumer)
		a->ck->revoked = 1;
	else
		a->ak->revoked = 1;
	if ((rc = key_put(st, txn, a, 0)) != 0)
		return rc;
	if (a->consumer)
		return app_cutoff_put(st, txn, a->ck->org, a->ck->app, a->now);
	rc = user_read(st, txn, a->ak->org, a->ak->user, &u);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0 && u.not_before < a->now) {
		u.not_before = a->now;
		rc = user_write(st, txn, a->ak->org, a->ak->user, &u, 0);
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

	return txn_run(st, 0, "apikey get", key_get_fn, &a);
}

static enum store_err
l_consumer_get(struct store *s,
    const unsigned char digest[CRM_DIGEST_BYTES], struct consumer_rec *r)
{
	struct lstore *st = (struct lstore *)s;
	struct key_arg a = { .digest = digest, .consumer = 1, .ck = r };

	return txn_run(st, 0, "consumer key get", key_get_fn, &a);
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

	return txn_run(st, 1, "apikey put", key_put_fn, &a);
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

	return txn_run(st, 1, "consumer key put", key_put_fn, &a);
}

static enum store_err
l_key_revoke(struct store *s, int consumer,
    const unsigned char digest[CRM_DIGEST_BYTES], int64_t now)
{
	struct lstore *st = (struct lstore *)s;
	struct apikey_rec	ak;
	struct consumer_rec	ck;
	struct key_arg		a = { .digest = digest, .consumer = consumer,
	    .ak = &ak, .ck = &ck, .now = now };

	return txn_run(st, 1, "key revoke", revoke_fn, &a);
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
			if ((rc = consumer_decode(&val, &ck)) != 0)
				break;
			if (((store_consumer_cb)a->cb)(a->cbarg, key.mv_data,
			    &ck) != 0)
				break;
		} else {
			if ((rc = apikey_decode(&val, &ak)) != 0)
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

	return txn_run(st, 0, "apikey list", apikey_list_fn, &a);
}

static enum store_err
l_consumer_list(struct store *s, store_consumer_cb cb, void *arg)
{
	struct lstore *st = (struct lstore *)s;
	struct list_arg a = { NULL, (void *)cb, arg };

	return txn_run(st, 0, "consumer key list", consumer_list_fn, &a);
}

/* ---- access tokens ------------------------------------------------------ */

/*
 * Whose an access token is, kept in its record since crmauth 0.2 (format
 * REC_V2) so that an export can name it: the organisation, the kind ('C'
 * or 'I') and the identifier or, for a code, its SHA-256 in hex.  A
 * REC_V1 record has only its key (kind 0 here).
 */
struct access_owner {
	char	 kind;
	char	 org[CRM_NAME_MAX + 1];
	char	 lookup[CRM_NAME_MAX + 1];
};

static void
access_owner(struct access_owner *o, const char *org,
    const unsigned char *code, const char *ident)
{
	o->kind = code != NULL ? 'C' : 'I';
	snprintf(o->org, sizeof(o->org), "%s", org);
	if (code != NULL)
		sec_hex(o->lookup, code, CRM_DIGEST_BYTES);
	else
		snprintf(o->lookup, sizeof(o->lookup), "%s", ident);
}

/* The access record: contact, accounts receivable id ("" for none), the
 * pass code's hash ("" for the code kind), created; then, in REC_V2,
 * its owner (o may be NULL). */
static int
access_decode(const MDB_val *val, struct access_rec *r,
    struct access_owner *o)
{
	struct rec_in	 in;
	char		 kind[2];
	int		 v;

	if ((v = rec_begin_v(val, &in, REC_V2)) == -1)
		return RC_CORRUPT;
	r_str(&in, r->contact, sizeof(r->contact));
	r_str(&in, r->ari, sizeof(r->ari));
	r_str(&in, r->passhash, sizeof(r->passhash));
	r->created = r_i64(&in);
	if (o != NULL)
		o->kind = 0;
	if (v == REC_V2) {
		struct access_owner ob, *w = o != NULL ? o : &ob;

		r_str(&in, kind, sizeof(kind));
		r_str(&in, w->org, sizeof(w->org));
		r_str(&in, w->lookup, sizeof(w->lookup));
		if (kind[0] != 'C' && kind[0] != 'I')
			in.bad = 1;
		w->kind = kind[0];
	}
	return rec_end(&in);
}

static int
access_read(struct lstore *st, MDB_txn *txn, const unsigned char *k,
    struct access_rec *r, struct access_owner *o)
{
	MDB_val		 key = { CRM_DIGEST_BYTES, (void *)k }, val;
	int		 rc;

	if ((rc = mdb_get(txn, st->access, &key, &val)) != 0)
		return rc;
	return access_decode(&val, r, o);
}

/* o->kind 0: a REC_V1 record (an imported one that never said). */
static int
access_write(struct lstore *st, MDB_txn *txn, const unsigned char *k,
    const struct access_rec *r, const struct access_owner *o,
    unsigned flags)
{
	struct rec_out w;

	rec_start_v(&w, o->kind != 0 ? REC_V2 : REC_V1);
	w_str(&w, r->contact);
	w_str(&w, r->ari);
	w_str(&w, r->passhash);
	w_i64(&w, r->created);
	if (o->kind != 0) {
		w_str(&w, o->kind == 'C' ? "C" : "I");
		w_str(&w, o->org);
		w_str(&w, o->lookup);
	}
	return put_rec(txn, st->access, k, CRM_DIGEST_BYTES, &w, flags);
}

struct access_arg {
	unsigned char		 k[CRM_DIGEST_BYTES];
	struct access_owner	 owner;
	struct access_rec	*out;
	const struct access_rec	*in;
	const char		*old, *new;	/* rehash */
};

static void
access_arg_init(struct access_arg *a, const char *org,
    const unsigned char *code, const char *ident)
{
	store_access_id(a->k, org, code, ident);
	access_owner(&a->owner, org, code, ident);
}

static int
access_get_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct access_arg *a = p;

	return access_read(st, txn, a->k, a->out, NULL);
}

static int
access_put_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct access_arg *a = p;

	return access_write(st, txn, a->k, a->in, &a->owner, MDB_NOOVERWRITE);
}

static enum store_err
l_access_get(struct store *s, const char *org,
    const unsigned char *code, const char *ident, struct access_rec *r)
{
	struct lstore *st = (struct lstore *)s;
	struct access_arg a = { .out = r };

	access_arg_init(&a, org, code, ident);
	return txn_run(st, 0, "access token get", access_get_fn, &a);
}

static enum store_err
l_access_add(struct store *s, const char *org,
    const unsigned char *code, const char *ident,
    const struct access_rec *r)
{
	struct lstore *st = (struct lstore *)s;
	struct access_arg a = { .in = r };

	access_arg_init(&a, org, code, ident);
	return txn_run(st, 1, "access token add", access_put_fn, &a);
}

/* The pass code's hash, replaced only if it is still the one verified
 * (a REC_V1 record is written as REC_V2, now that its owner is known). */
static int
access_rehash_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct access_arg	*a = p;
	struct access_rec	 r;
	int			 rc;

	if ((rc = access_read(st, txn, a->k, &r, NULL)) != 0)
		return rc;
	if (strcmp(r.passhash, a->old) != 0)
		return MDB_NOTFOUND;	/* changed meanwhile: leave it */
	snprintf(r.passhash, sizeof(r.passhash), "%s", a->new);
	return access_write(st, txn, a->k, &r, &a->owner, 0);
}

static enum store_err
l_access_rehash(struct store *s, const char *org, const char *ident,
    const char *old, const char *new)
{
	struct lstore *st = (struct lstore *)s;
	struct access_arg a = { .old = old, .new = new };

	access_arg_init(&a, org, NULL, ident);
	return txn_run(st, 1, "access token rehash", access_rehash_fn, &a);
}

/* ---- signing keys -------------------------------------------------------- */

#define SIGKEY_VAL (8 + CRM_SIGKEY_BYTES + 8)

static int
sigkey_decode(const MDB_val *k, const MDB_val *v, struct sigkey *out)
{
	const unsigned char *p = v->mv_data;

	if (k->mv_size != CRM_KID_HEX || v->mv_size != SIGKEY_VAL)
		return RC_CORRUPT;
	memcpy(out->kid, k->mv_data, CRM_KID_HEX);
	out->kid[CRM_KID_HEX] = '\0';
	out->created = (int64_t)get_be64(p);
	memcpy(out->secret, p + 8, CRM_SIGKEY_BYTES);
	out->expires = (int64_t)get_be64(p + 8 + CRM_SIGKEY_BYTES);
	return 0;
}

static int
sigkey_put(struct lstore *st, MDB_txn *txn, const struct sigkey *k,
    unsigned flags)
{
	unsigned char	 v[SIGKEY_VAL];
	MDB_val		 key = { CRM_KID_HEX, (void *)k->kid };
	MDB_val		 val = { sizeof(v), v };
	int		 rc;

	put_be64(v, (uint64_t)k->created);
	memcpy(v + 8, k->secret, CRM_SIGKEY_BYTES);
	put_be64(v + 8 + CRM_SIGKEY_BYTES, (uint64_t)k->expires);
	rc = mdb_put(txn, st->sigkeys, &key, &val, flags);
	memset(v, 0, sizeof(v));
	return rc;
}

static int
current_kid(struct lstore *st, MDB_txn *txn, char kid[CRM_KID_HEX + 1])
{
	MDB_val	 key = { 11, "current_kid" }, val;
	int	 rc;

	if ((rc = mdb_get(txn, st->meta, &key, &val)) != 0)
		return rc == MDB_NOTFOUND ? RC_NOTINIT : rc;
	if (val.mv_size != CRM_KID_HEX)
		return RC_CORRUPT;
	memcpy(kid, val.mv_data, CRM_KID_HEX);
	kid[CRM_KID_HEX] = '\0';
	return 0;
}

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

	if ((rc = current_kid(st, txn, cur)) != 0)
		return rc;
	key.mv_data = (void *)(kid != NULL ? kid : cur);
	key.mv_size = strlen(key.mv_data);
	if (key.mv_size != CRM_KID_HEX)
		return MDB_NOTFOUND;
	if ((rc = mdb_get(txn, st->sigkeys, &key, &val)) != 0)
		return rc;
	if ((rc = sigkey_decode(&key, &val, out)) != 0)
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
	return txn_run(st, 0, "signing key get", sigkey_get_fn, &a);
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

	if ((rc = current_kid(st, txn, cur)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, st->sigkeys, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if ((rc = sigkey_decode(&key, &val, &k)) != 0)
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

	return txn_run(st, 0, "signing key list", sigkey_list_fn, &a);
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
	if ((rc = sigkey_put(st, txn, k, MDB_NOOVERWRITE)) != 0)
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

	if ((rc = current_kid(st, txn, a->old.kid)) != 0 ||
	    (rc = mdb_get(txn, st->sigkeys, &key, &val)) != 0 ||
	    (rc = sigkey_decode(&key, &val, &a->old)) != 0)
		return rc;
	/* Every token it signed expires by now + ttl; so does the key. */
	a->old.expires = a->now + a->ttl;
	a->old.current = 0;
	if ((rc = sigkey_put(st, txn, &a->old, 0)) != 0)
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

	e = txn_run(st, 1, "key rotate", rotate_fn, &a);
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

	if ((rc = current_kid(st, txn, cur)) != 0 ||
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
	e = txn_run(st, 1, "key retire", retire_fn, &a);
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
		if ((rc = sigkey_decode(&key, &val, &k)) != 0)
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

struct rel_arg {
	const unsigned char	*jti;
	int64_t			 exp, now;
	size_t			 n;
};

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

	e = txn_run(st, 0, "released get", released_get_fn, &a);
	if (e == STORE_OK)
		*exp = a.exp;
	return e;
}

static int
release_fn(struct lstore *st, MDB_txn *txn, void *p)
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
	return txn_run(st, 1, "release", release_fn, &a);
}

/*
 * Delete released ids whose exp <= now, oldest first, at most limit
 * (0: no limit).  The index is ordered by big-endian exp, so the walk
 * stops at the first live entry.
 */
static int
prune(struct lstore *st, MDB_txn *txn, int64_t now, size_t limit, size_t *n)
{
	MDB_cursor	*c;
	MDB_val		 key, val, jk;
	int		 rc;

	*n = 0;
	if ((rc = mdb_cursor_open(txn, st->released_exp, &c)) != 0)
		return rc;
	while ((rc = mdb_cursor_get(c, &key, &val, MDB_FIRST)) == 0) {
		if (key.mv_size != 8 + CRM_JTI_BYTES) {
			rc = RC_CORRUPT;
			break;
		}
		if ((int64_t)get_be64(key.mv_data) > now ||
		    (limit != 0 && *n >= limit))
			break;
		jk.mv_size = CRM_JTI_BYTES;
		jk.mv_data = (unsigned char *)key.mv_data + 8;
		rc = mdb_del(txn, st->released, &jk, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		(*n)++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
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

	e = txn_run(st, 1, "released prune", prune_fn, &a);
	*n = e == STORE_OK ? a.n : 0;
	return e;
}

/*
 * What a restore keeps of the store it replaces: it rolls users, keys
 * and access tokens back to the backup, but never brings back what was
 * revoked since, and never breaks what was issued since.  Read from the
 * store being replaced (src), written into the restored copy.
 */
struct carry_arg {
	MDB_txn		*src;		/* a read of the store being replaced */
	MDB_dbi		 s_released, s_users, s_apikeys, s_consumers;
	MDB_dbi		 s_sigkeys, s_meta, s_cutoffs;
	int64_t		 now;
	size_t		 n;		/* releases carried */
};

/* Every unexpired released id stays released. */
static int
carry_released(struct lstore *st, MDB_txn *txn, struct carry_arg *a)
{
	struct rel_arg	 r = { .now = a->now };
	MDB_cursor	*c;
	MDB_val		 key, val;
	int		 rc;

	if ((rc = mdb_cursor_open(a->src, a->s_released, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != CRM_JTI_BYTES || val.mv_size != 8) {
			rc = RC_CORRUPT;
			break;
		}
		r.jti = key.mv_data;
		r.exp = (int64_t)get_be64(val.mv_data);
		if (r.exp <= a->now)
			continue;
		if ((rc = release_fn(st, txn, &r)) != 0)
			break;
		a->n++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The signing keys are those of the store replaced: a key retired since
 * the backup stays retired, and tokens signed since keep verifying. */
static int
carry_sigkeys(struct lstore *st, MDB_txn *txn, struct carry_arg *a)
{
	MDB_val	 mk = { 11, "current_kid" }, key, val;
	MDB_cursor *c;
	int	 rc;

	if ((rc = mdb_drop(txn, st->sigkeys, 0)) != 0 ||
	    (rc = mdb_cursor_open(a->src, a->s_sigkeys, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT))
		if ((rc = mdb_put(txn, st->sigkeys, &key, &val, 0)) != 0)
			break;
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_get(a->src, a->s_meta, &mk, &val)) != 0)
		return rc == MDB_NOTFOUND ? RC_CORRUPT : rc;
	return mdb_put(txn, st->meta, &mk, &val, 0);
}

/* A user is disabled if either store says so, and refuses tokens up to
 * the later cutoff of the two; one deleted since the backup comes back,
 * but none of the tokens it had does. */
static int
carry_users(struct lstore *st, MDB_txn *txn, struct carry_arg *a)
{
	MDB_cursor	*c;
	MDB_val		 key, val, sv;
	struct user_rec	 u, s;
	char		 org[CRM_NAME_MAX + 1], user[CRM_NAME_MAX + 1];
	int		 rc, rc2;

	if ((rc = mdb_cursor_open(txn, st->users, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if ((rc = user_decode(&val, &u, org, user)) != 0)
			break;
		if ((rc2 = mdb_get(a->src, a->s_users, &key, &sv)) == 0) {
			if ((rc = user_decode(&sv, &s, NULL, NULL)) != 0)
				break;
			u.disabled |= s.disabled;
			if (s.not_before > u.not_before)
				u.not_before = s.not_before;
		} else if (rc2 == MDB_NOTFOUND)
			u.not_before = a->now;
		else {
			rc = rc2;
			break;
		}
		if ((rc = user_write(st, txn, org, user, &u, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	explicit_bzero(&u, sizeof(u));
	explicit_bzero(&s, sizeof(s));
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* A key revoked since the backup, or gone (its user deleted), stays
 * revoked. */
static int
carry_keys(struct lstore *st, MDB_txn *txn, struct carry_arg *a, int consumer)
{
	struct apikey_rec	 ak;
	struct consumer_rec	 ck;
	struct key_arg		 k = { .consumer = consumer, .ak = &ak,
				    .ck = &ck };
	MDB_cursor		*c;
	MDB_val			 key, val, sv;
	int			 rc, rc2, revoked;

	if ((rc = mdb_cursor_open(txn, consumer ? st->consumers : st->apikeys,
	    &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != CRM_DIGEST_BYTES ||
		    (rc = key_decode(&val, &k)) != 0) {
			rc = RC_CORRUPT;
			break;
		}
		rc2 = mdb_get(a->src, consumer ? a->s_consumers : a->s_apikeys,
		    &key, &sv);
		if (rc2 == MDB_NOTFOUND)
			revoked = 1;
		else if (rc2 != 0) {
			rc = rc2;
			break;
		} else {
			struct apikey_rec	 sak;
			struct consumer_rec	 sck;
			struct key_arg		 sk = { .consumer = consumer,
						    .ak = &sak, .ck = &sck };

			if ((rc = key_decode(&sv, &sk)) != 0)
				break;
			revoked = consumer ? sck.revoked : sak.revoked;
		}
		if (!revoked || (consumer ? ck.revoked : ak.revoked))
			continue;
		if (consumer)
			ck.revoked = 1;
		else
			ak.revoked = 1;
		k.digest = key.mv_data;
		if ((rc = key_put(st, txn, &k, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* An application's cutoff: the later of the two. */
static int
carry_cutoffs(struct lstore *st, MDB_txn *txn, struct carry_arg *a)
{
	MDB_cursor	*c;
	MDB_val		 key, val, cur;
	int		 rc;

	if ((rc = mdb_cursor_open(a->src, a->s_cutoffs, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (val.mv_size != 8) {
			rc = RC_CORRUPT;
			break;
		}
		if (mdb_get(txn, st->cutoffs, &key, &cur) == 0 &&
		    cur.mv_size == 8 && get_be64(cur.mv_data) >=
		    get_be64(val.mv_data))
			continue;
		if ((rc = mdb_put(txn, st->cutoffs, &key, &val, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
carry_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct carry_arg	*a = p;
	int			 rc;

	if ((rc = carry_released(st, txn, a)) != 0 ||
	    (rc = carry_sigkeys(st, txn, a)) != 0 ||
	    (rc = carry_users(st, txn, a)) != 0 ||
	    (rc = carry_keys(st, txn, a, 0)) != 0 ||
	    (rc = carry_keys(st, txn, a, 1)) != 0)
		return rc;
	return carry_cutoffs(st, txn, a);
}

static int
count_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	MDB_stat	 s;
	int		 rc;

	if ((rc = mdb_stat(txn, st->released, &s)) != 0)
		return rc;
	*(size_t *)p = s.ms_entries;
	return 0;
}

static enum store_err
l_released_count(struct store *s, size_t *n)
{
	struct lstore *st = (struct lstore *)s;
	return txn_run(st, 0, "released count", count_fn, n);
}

static int
ping_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	char kid[CRM_KID_HEX + 1];

	return current_kid(st, txn, kid);
}

static enum store_err
l_ping(struct store *s)
{
	struct lstore *st = (struct lstore *)s;
	return txn_run(st, 0, "ping", ping_fn, NULL);
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
	return map_rc(st, what, rc);
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

	if ((rc = found(user_read(st, txn, a->org, a->user, &l->user),
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

	memset(out, 0, sizeof(*out));
	return txn_run(st, 0, "user lookup", lookup_user_fn, &a);
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
	if (l->apikey_found && (rc = found(user_read(st, txn, l->apikey.org,
	    l->apikey.user, &l->user), &l->user_found)) != 0)
		return rc;
	return sigkey_read(st, txn, NULL, &l->key);
}

static enum store_err
l_lookup_apikey(struct store *s,
    const unsigned char digest[CRM_DIGEST_BYTES], struct lookup *out)
{
	struct lstore *st = (struct lstore *)s;
	struct lookup_arg a = { .digest = digest, .out = out };

	memset(out, 0, sizeof(*out));
	return txn_run(st, 0, "apikey lookup", lookup_apikey_fn, &a);
}

static int
lookup_consumer_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct lookup_arg	*a = p;
	struct lookup		*l = a->out;
	struct key_arg		 k = { .digest = a->digest, .consumer = 1,
				    .ck = &l->consumer };
	unsigned char		 ak[CRM_DIGEST_BYTES];
	int			 rc;

	if ((rc = found(key_get_fn(st, txn, &k), &l->consumer_found)) != 0)
		return rc;
	if (l->consumer_found) {
		store_access_id(ak, l->consumer.org, a->code, a->ident);
		if ((rc = found(access_read(st, txn, ak, &l->access, NULL),
		    &l->access_found)) != 0 ||
		    (rc = app_cutoff_get(st, txn, l->consumer.org,
		    l->consumer.app, &l->app_cutoff)) != 0)
			return rc;
	}
	return sigkey_read(st, txn, NULL, &l->key);
}

static enum store_err
l_lookup_consumer(struct store *s,
    const unsigned char digest[CRM_DIGEST_BYTES], const unsigned char *code,
    const char *ident, struct lookup *out)
{
	struct lstore *st = (struct lstore *)s;
	struct lookup_arg a = { .digest = digest, .code = code,
	    .ident = ident, .out = out };

	memset(out, 0, sizeof(*out));
	return txn_run(st, 0, "consumer lookup", lookup_consumer_fn, &a);
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
		return app_cutoff_get(st, txn, a->who->org, a->who->name,
		    &s->cutoff);
	}
	rc = found(user_read(st, txn, a->who->org, a->who->name, &u),
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
	return txn_run(st, 0, "token state", token_state_fn, &a);
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
	if ((rc = current_kid(st, txn, kid)) == RC_NOTINIT) {
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
	e = txn_run(st, create, "schema", schema_fn, &create);
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
static void	l_close(struct store *);

/* Open the LMDB store at cfg->db_path (store_open's contract). */
static enum store_err
open_lmdb(struct lstore **out, const struct config *cfg, int flags,
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
		e = map_rc(st, cfg->db_path, rc);
		if (e == STORE_NOTINIT || e == STORE_VERSION)
			snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s",
			    cfg->db_path, store_strerror(e));
		goto fail;
	}
	*out = st;
	return STORE_OK;
fail:
	snprintf(err, errlen, "%s", st->base.detail[0] != '\0' ?
	    st->base.detail : store_strerror(e));
	l_close(&st->base);
	return e;
}

enum store_err
lmdb_store_open(struct store **out, const struct config *cfg, int flags,
    char *err, size_t errlen)
{
	struct lstore	*st;
	enum store_err	 e;

	e = open_lmdb(&st, cfg, flags, err, errlen);
	*out = e == STORE_OK ? &st->base : NULL;
	return e;
}

/* ---- backup and restore ---------------------------------------------------- */

/* a followed by b into buf; -1 if it does not fit. */
static int
path_join(char *buf, size_t size, const char *a, const char *b)
{
	int n = snprintf(buf, size, "%s%s", a, b);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static enum store_err
l_backup(struct store *s, const char *file)
{
	struct lstore *st = (struct lstore *)s;
	char	 tmp[1100];
	int	 fd, rc = 0;

	/* A new file of our own beside the target (mode 0600, O_EXCL:
	 * nothing planted there is reused), then renamed over it: never a
	 * half-written backup, never a symlink followed. */
	if (path_join(tmp, sizeof(tmp), file, ".XXXXXX") == -1)
		return map_rc(st, file, ENAMETOOLONG);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
		return map_rc(st, file, errno);
	if (fchmod(fd, 0600) == -1)
		rc = errno;
	/* A consistent snapshot (one read transaction), compacted. */
	if (rc == 0)
		rc = mdb_env_copyfd2(lmdb_env(st->db), fd, MDB_CP_COMPACT);
	if (rc == 0 && fsync(fd) == -1)
		rc = errno;
	if (close(fd) == -1 && rc == 0)
		rc = errno;
	if (rc == 0 && rename(tmp, file) == -1)
		rc = errno;
	if (rc != 0) {
		unlink(tmp);
		return map_rc(st, file, rc);
	}
	return STORE_OK;
}

/* Copy src to dst (created 0600), synced.  0 or an errno. */
static int
copy_file(const char *src, const char *dst)
{
	char	 buf[65536];
	ssize_t	 n;
	int	 in, out, rc = 0;

	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1)
		return errno;
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		rc = errno;
		close(in);
		return rc;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = errno != 0 ? errno : EIO;
			break;
		}
	if (n < 0 && rc == 0)
		rc = errno;
	if (rc == 0 && fsync(out) == -1)
		rc = errno;
	if (close(out) == -1 && rc == 0)
		rc = errno;
	close(in);
	return rc;
}

/*
 * LMDB's own lock: every process with the environment open holds a
 * shared fcntl lock on byte 0 of lock.mdb, and one that opens it takes
 * an exclusive lock if it can (then it resets the lock file) or waits
 * for a shared one.  So holding the exclusive lock ourselves proves that
 * no process has the store open (dead ones hold no lock), and makes
 * every process that opens it meanwhile wait until we let go.
 * The descriptor, or -1 with errno (EAGAIN: in use).
 */
static int
lock_exclusive(const char *lock, mode_t mode)
{
	struct flock	 fl;
	int		 fd, saved;

	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, mode)) == -1)
		return -1;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 1;
	if (fcntl(fd, F_SETLK, &fl) == -1) {
		saved = errno == EACCES ? EAGAIN : errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Carry what must survive the restore (carry_fn) from the store at dir
 * (opened without its lock file: we hold the lock) into st.  0 or an
 * LMDB error. */
static int
carry_over(struct lstore *st, const char *dir)
{
	struct carry_arg	 a = { .now = (int64_t)time(NULL) };
	MDB_env			*env;
	int			 rc;

	if ((rc = lmdb_open_raw(&env, dir, MDB_RDONLY | MDB_NOLOCK,
	    0600)) != 0)
		return rc;
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &a.src)) == 0) {
		if ((rc = mdb_dbi_open(a.src, "released", 0,
		    &a.s_released)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "users", 0, &a.s_users)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "apikeys", 0,
		    &a.s_apikeys)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "consumer_keys", 0,
		    &a.s_consumers)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "signing_keys", 0,
		    &a.s_sigkeys)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "meta", 0, &a.s_meta)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "cutoffs", 0,
		    &a.s_cutoffs)) == 0)
			rc = txn_run(st, 1, "restore", carry_fn, &a) ==
			    STORE_OK ? 0 : EIO;
		mdb_txn_abort(a.src);
	}
	mdb_env_close(env);
	return rc;
}

enum store_err
lmdb_store_restore(const struct config *cfg, const char *file, char *err,
    size_t errlen)
{
	struct config	 bcfg = *cfg;
	struct lstore	*st = NULL;
	struct stat	 sb;
	MDB_env		*env;
	char		 dir[1100], tmp[1100], data[1100], lock[1100];
	mode_t		 mode = 0600;
	enum store_err	 e = STORE_ERROR;
	int		 rc, lfd = -1;

	/* The copy is made inside the store's directory, which is ours
	 * (its parent may not be), and renamed into place from there. */
	if (path_join(dir, sizeof(dir), cfg->db_path, "/restore.tmp") == -1 ||
	    path_join(tmp, sizeof(tmp), dir, "/data.mdb") == -1 ||
	    path_join(data, sizeof(data), cfg->db_path, "/data.mdb") == -1 ||
	    path_join(lock, sizeof(lock), cfg->db_path, "/lock.mdb") == -1 ||
	    strlen(dir) >= sizeof(bcfg.db_path)) {
		snprintf(err, errlen, "%s: path too long", cfg->db_path);
		return STORE_ERROR;
	}
	if (mkdir(cfg->db_path, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", cfg->db_path,
		    strerror(errno));
		return STORE_ERROR;
	}
	/* The backup must be a store of ours: open a copy of it. */
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return STORE_ERROR;
	}
	unlink(tmp);	/* left by an interrupted restore */
	if ((rc = copy_file(file, tmp)) != 0) {
		snprintf(err, errlen, "%s: %s", file, strerror(rc));
		goto out;
	}
	memcpy(bcfg.db_path, dir, strlen(dir) + 1);
	if ((e = open_lmdb(&st, &bcfg, 0, err, errlen)) != STORE_OK) {
		snprintf(err, errlen, "%s is not a crmauth store backup (%s)",
		    file, store_strerror(e));
		e = STORE_ERROR;
		goto out;
	}
	e = STORE_ERROR;
	if (stat(cfg->db_path, &sb) == 0 && (sb.st_mode & 070) != 0)
		mode = 0660;
	/* From here until the end, nobody else has the store open, and
	 * whoever tries waits. */
	if ((lfd = lock_exclusive(lock, mode)) == -1) {
		if (errno == EAGAIN)
			snprintf(err, errlen, "%s is in use: stop the service "
			    "(and every program using it) first",
			    cfg->db_path);
		else
			snprintf(err, errlen, "%s: %s", lock, strerror(errno));
		goto out;
	}
	/* What was released or revoked since the backup stays so; the
	 * signing keys stay the current ones.  A store too damaged to read
	 * is replaced all the same (that may be why it is restored). */
	if (stat(data, &sb) == 0 && (rc = carry_over(st, cfg->db_path)) != 0)
		log_err("warning: %s cannot be read (%s): releases, revocations "
		    "and signing keys since the backup are not kept",
		    cfg->db_path, rc == RC_CORRUPT ? "a damaged record" :
		    mdb_strerror(rc));
	l_close(&st->base);
	st = NULL;
	/* Keep the replaced file's owner and mode (as root; else ours). */
	if (stat(data, &sb) == 0 && chown(tmp, sb.st_uid, sb.st_gid) == 0)
		chmod(tmp, sb.st_mode & 0777);
	if (rename(tmp, data) == -1) {
		snprintf(err, errlen, "%s: %s", data, strerror(errno));
		goto out;
	}
	if ((rc = open(cfg->db_path, O_RDONLY | O_DIRECTORY)) != -1) {
		fsync(rc);
		close(rc);
	}
	/*
	 * The lock file still describes the old data file.  Opened here,
	 * in the process that holds the exclusive lock, LMDB resets it
	 * from the new one; closing it lets the waiting processes in.
	 */
	if ((rc = lmdb_open_raw(&env, cfg->db_path, MDB_RDONLY, mode)) != 0) {
		snprintf(err, errlen, "%s: %s", cfg->db_path,
		    mdb_strerror(rc));
		goto out;
	}
	mdb_env_close(env);
	e = STORE_OK;
out:
	if (st != NULL)
		l_close(&st->base);
	if (lfd != -1)
		close(lfd);
	unlink(tmp);
	if (path_join(tmp, sizeof(tmp), dir, "/lock.mdb") == 0)
		unlink(tmp);
	rmdir(dir);
	return e;
}

/* ---- whole-store copies: export and import ------------------------------- */

struct dump_arg {
	store_xrec_cb	 cb;
	void		*cbarg;
	struct xrec	*x;
	int64_t		 now;
	int		 stopped;
	char		 cur[CRM_KID_HEX + 1];	/* the current kid */
	unsigned char	(*cut)[CRM_DIGEST_BYTES];	/* cutoffs given */
	size_t		 ncut;
};

/* Each record of dbi through decode(), then the callback. */
static int
dump_db(struct lstore *st, MDB_txn *txn, MDB_dbi dbi, struct dump_arg *a,
    int (*decode)(struct lstore *, MDB_txn *, const MDB_val *,
    const MDB_val *, struct dump_arg *))
{
	MDB_cursor	*c;
	MDB_val		 key, val;
	int		 rc;

	if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0 &&
	    !a->stopped; rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		memset(a->x, 0, sizeof(*a->x));
		if ((rc = decode(st, txn, &key, &val, a)) == RC_SKIP)
			continue;
		if (rc != 0)
			break;
		a->stopped = a->cb(a->cbarg, a->x) != 0;
	}
	explicit_bzero(a->x, sizeof(*a->x));
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == RC_SKIP ? 0 : rc;
}

static int
dump_user(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	a->x->kind = XR_USER;
	return user_decode(v, &a->x->u.user, a->x->org, a->x->name);
}

static int
dump_apikey(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	if (k->mv_size != CRM_DIGEST_BYTES)
		return RC_CORRUPT;
	a->x->kind = XR_APIKEY;
	memcpy(a->x->digest, k->mv_data, CRM_DIGEST_BYTES);
	return apikey_decode(v, &a->x->u.apikey);
}

static int
dump_consumer(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	if (k->mv_size != CRM_DIGEST_BYTES)
		return RC_CORRUPT;
	a->x->kind = XR_CONSUMER;
	memcpy(a->x->digest, k->mv_data, CRM_DIGEST_BYTES);
	return consumer_decode(v, &a->x->u.consumer);
}

static int
dump_access(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	struct access_owner	 o;
	int			 rc;

	if (k->mv_size != CRM_DIGEST_BYTES)
		return RC_CORRUPT;
	a->x->kind = XR_ACCESS;
	memcpy(a->x->id, k->mv_data, CRM_DIGEST_BYTES);
	if ((rc = access_decode(v, &a->x->u.access, &o)) != 0)
		return rc;
	if ((a->x->access_kind = o.kind) == 0)
		return 0;
	memcpy(a->x->org, o.org, sizeof(o.org));
	if (o.kind == 'I')
		memcpy(a->x->name, o.lookup, sizeof(o.lookup));
	else if (sec_unhex(a->x->digest, CRM_DIGEST_BYTES, o.lookup,
	    strlen(o.lookup)) != 0)
		return RC_CORRUPT;
	return 0;
}

static int
dump_sigkey(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	struct sigkey	*key = &a->x->u.key;
	int		 rc;

	a->x->kind = XR_SIGKEY;
	if ((rc = sigkey_decode(k, v, key)) != 0)
		return rc;
	key->current = strcmp(key->kid, a->cur) == 0;
	return !key->current && key->expires <= a->now ? RC_SKIP : 0;
}

static int
dump_released(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	if (k->mv_size != CRM_JTI_BYTES || v->mv_size != 8)
		return RC_CORRUPT;
	a->x->kind = XR_RELEASED;
	memcpy(a->x->u.rel.jti, k->mv_data, CRM_JTI_BYTES);
	a->x->u.rel.exp = (int64_t)get_be64(v->mv_data);
	return a->x->u.rel.exp <= a->now ? RC_SKIP : 0;	/* past */
}

/*
 * Cutoffs are keyed by a hash of (org, application): their names come
 * from the consumer keys, which are never deleted, so every cutoff has
 * one.  One that has not is reported, not left out.
 */
static int
dump_cutoff(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	struct consumer_rec	*ck = &a->x->u.consumer;
	unsigned char		 h[CRM_DIGEST_BYTES], (*more)[CRM_DIGEST_BYTES];
	int64_t			 cutoff;
	int			 rc;

	if ((rc = consumer_decode(v, ck)) != 0)
		return rc;
	sec_tagged_hash(h, 'A', ck->org, ck->app, strlen(ck->app));
	for (size_t i = 0; i < a->ncut; i++)
		if (memcmp(a->cut[i], h, sizeof(h)) == 0)
			return RC_SKIP;		/* given already */
	if ((rc = app_cutoff_get(st, txn, ck->org, ck->app, &cutoff)) != 0)
		return rc;
	if (cutoff == 0)
		return RC_SKIP;
	if ((more = reallocarray(a->cut, a->ncut + 1, sizeof(*a->cut))) ==
	    NULL)
		return ENOMEM;
	a->cut = more;
	memcpy(a->cut[a->ncut++], h, sizeof(h));
	a->x->kind = XR_CUTOFF;
	memcpy(a->x->org, ck->org, sizeof(ck->org));
	memcpy(a->x->name, ck->app, sizeof(ck->app));
	a->x->u.cutoff = cutoff;
	return 0;
}

static int
dump_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct dump_arg	*a = p;
	MDB_stat	 ms;
	int		 rc;

	if ((rc = current_kid(st, txn, a->cur)) != 0 ||
	    (rc = dump_db(st, txn, st->users, a, dump_user)) != 0 ||
	    (rc = dump_db(st, txn, st->apikeys, a, dump_apikey)) != 0 ||
	    (rc = dump_db(st, txn, st->consumers, a, dump_consumer)) != 0 ||
	    (rc = dump_db(st, txn, st->access, a, dump_access)) != 0 ||
	    (rc = dump_db(st, txn, st->sigkeys, a, dump_sigkey)) != 0 ||
	    (rc = dump_db(st, txn, st->released, a, dump_released)) != 0 ||
	    (rc = dump_db(st, txn, st->consumers, a, dump_cutoff)) != 0)
		return rc;
	if (a->stopped)
		return 0;
	if ((rc = mdb_stat(txn, st->cutoffs, &ms)) != 0)
		return rc;
	if (ms.ms_entries != a->ncut) {
		snprintf(st->base.detail, sizeof(st->base.detail), "export: "
		    "%zu cutoff(s) belong to no consumer key's application",
		    (size_t)ms.ms_entries - a->ncut);
		return RC_STOP;
	}
	return 0;
}

static enum store_err
l_dump(struct store *s, store_xrec_cb cb, void *arg)
{
	struct lstore	*st = (struct lstore *)s;
	struct dump_arg	 a = { .cb = cb, .cbarg = arg,
			    .now = (int64_t)time(NULL) };
	enum store_err	 e;

	if ((a.x = calloc(1, sizeof(*a.x))) == NULL)
		return map_rc(st, "export", ENOMEM);
	e = txn_run(st, 0, "export", dump_fn, &a);
	free(a.x);
	free(a.cut);
	return e;
}

/* Import: what the store holds must be nothing but init's signing key. */
static int
load_empty(struct lstore *st, MDB_txn *txn)
{
	const MDB_dbi	 dbis[] = { st->users, st->apikeys, st->consumers,
			    st->access, st->released, st->cutoffs };
	MDB_val		 mk = { 11, "current_kid" };
	MDB_stat	 ms;
	int		 rc;

	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		if ((rc = mdb_stat(txn, dbis[i], &ms)) != 0)
			return rc;
		if (ms.ms_entries != 0)
			return RC_NOTEMPTY;
	}
	if ((rc = mdb_drop(txn, st->sigkeys, 0)) != 0)
		return rc;
	rc = mdb_del(txn, st->meta, &mk, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
load_one(struct lstore *st, MDB_txn *txn, const struct xrec *x)
{
	struct rec_out		 w;
	struct access_owner	 o;
	unsigned char		 v[8], ik[8 + CRM_JTI_BYTES];
	MDB_val			 key, val, empty = { 0, "" };
	MDB_val			 mk = { 11, "current_kid" };
	int64_t			 t;
	int			 rc;

	switch (x->kind) {
	case XR_USER:
		return user_write(st, txn, x->org, x->name, &x->u.user,
		    MDB_NOOVERWRITE);
	case XR_APIKEY:
		apikey_encode(&w, &x->u.apikey);
		return put_rec(txn, st->apikeys, x->digest, CRM_DIGEST_BYTES,
		    &w, MDB_NOOVERWRITE);
	case XR_CONSUMER:
		consumer_encode(&w, &x->u.consumer);
		return put_rec(txn, st->consumers, x->digest,
		    CRM_DIGEST_BYTES, &w, MDB_NOOVERWRITE);
	case XR_ACCESS:
		memset(&o, 0, sizeof(o));
		if (x->access_kind != 0)
			access_owner(&o, x->org, x->access_kind == 'C' ?
			    x->digest : NULL, x->name);
		return access_write(st, txn, x->id, &x->u.access, &o,
		    MDB_NOOVERWRITE);
	case XR_SIGKEY:
		if ((rc = sigkey_put(st, txn, &x->u.key, MDB_NOOVERWRITE)) != 0 ||
		    !x->u.key.current)
			return rc;
		val = (MDB_val){ CRM_KID_HEX, (void *)x->u.key.kid };
		return mdb_put(txn, st->meta, &mk, &val, MDB_NOOVERWRITE);
	case XR_RELEASED:
		put_be64(v, (uint64_t)x->u.rel.exp);
		key = (MDB_val){ CRM_JTI_BYTES, (void *)x->u.rel.jti };
		val = (MDB_val){ 8, v };
		if ((rc = mdb_put(txn, st->released, &key, &val,
		    MDB_NOOVERWRITE)) != 0)
			return rc;
		memcpy(ik, v, 8);
		memcpy(ik + 8, x->u.rel.jti, CRM_JTI_BYTES);
		key = (MDB_val){ sizeof(ik), ik };
		return mdb_put(txn, st->released_exp, &key, &empty, 0);
	case XR_CUTOFF:
		if ((rc = app_cutoff_get(st, txn, x->org, x->name, &t)) != 0)
			return rc;
		if (t != 0)
			return MDB_KEYEXIST;
		return app_cutoff_put(st, txn, x->org, x->name, x->u.cutoff);
	}
	return RC_CORRUPT;
}

static int
load_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct xsource	*src = p;
	struct xrec	*x;
	int		 rc, more;

	/* From the first record on every try (a full map is grown and the
	 * whole transaction run again). */
	src->rewind(src);
	if ((rc = load_empty(st, txn)) != 0)
		return rc;
	if ((x = malloc(sizeof(*x))) == NULL)
		return ENOMEM;
	while ((more = src->next(src, x)) == 1)
		if ((rc = load_one(st, txn, x)) != 0)
			break;
	if (rc == MDB_KEYEXIST)
		snprintf(st->base.detail, sizeof(st->base.detail),
		    "line %ld: a record that is there already (the same "
		    "record twice)", x->line);
	explicit_bzero(x, sizeof(*x));
	free(x);
	return rc != 0 ? rc : more == -1 ? RC_STOP : 0;
}

static enum store_err
l_load(struct store *s, struct xsource *src)
{
	struct lstore *st = (struct lstore *)s;

	return txn_run(st, 1, "import", load_fn, src);
}

static void
l_close(struct store *s)
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
	.close = l_close,
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
	.released_count = l_released_count,
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
	.lock_list = l_lock_list,
	.lock_clear = l_lock_clear,
	.attempts_prune = l_attempts_prune,
	.attempts_usage = l_attempts_usage,
	.user_list = l_user_list,
	.apikey_list = l_apikey_list,
	.consumer_list = l_consumer_list,
	.sigkey_list = l_sigkey_list,
	.backup = l_backup,
	.dump = l_dump,
	.load = l_load,
};
