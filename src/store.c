/*
 * The store: one LMDB environment shared by every responder process and
 * crmauthctl.  Named databases (all keys binary unless noted):
 *
 *   meta             "schema" -> "1"; "current_kid" -> kid
 *   users            SHA-256("U" org NUL user) -> record
 *   apikeys          SHA-256(key) -> record
 *   consumer_keys    SHA-256(key) -> record
 *   access_tokens    SHA-256("C" org NUL SHA-256(code)) or
 *                    SHA-256("I" org NUL identifier) -> record
 *   signing_keys     kid (16 hex chars) -> created (8, BE) + secret (32)
 *                    + expires (8, BE; 0 while current)
 *   released         jti (16) -> exp (8, BE)
 *   released_by_exp  exp (8, BE) + jti (16) -> ""
 *   attempts         'A' account (32) -> window end (8, BE) + count (4, BE)
 *                    'P' account (32) address -> the same, per address
 *   attempts_by_exp  window end (8, BE) + attempts key -> ""
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

#define MAXREADERS	256	/* the same in every process (lock file) */
#define PRUNE_PER_WRITE	64	/* released ids pruned by each write */
#define RC_CORRUPT	(-1)	/* a record we cannot decode */
#define RC_VERSION	(-2)	/* schema newer than us */
#define RC_NOTINIT	(-3)	/* a database or the schema is missing */

struct store {
	MDB_env		*env;
	MDB_dbi		 meta, users, apikeys, consumers, access, sigkeys;
	MDB_dbi		 released, released_exp, attempts, attempts_exp;
	size_t		 map_max;	/* bytes */
	MDB_txn		*rtxn;		/* the last read, reset: renewed next */
	char		 detail[CRM_ERR_MAX];
};

typedef int (*txn_fn)(struct store *, MDB_txn *, void *);

const char *
store_strerror(enum store_err e)
{
	switch (e) {
	case STORE_OK:
		return "success";
	case STORE_NOTFOUND:
		return "not found";
	case STORE_EXISTS:
		return "already exists";
	case STORE_NOTINIT:
		return "store not initialised (run crmauthctl init)";
	case STORE_VERSION:
		return "store was made by a newer crmauth (schema version)";
	case STORE_FULL:
		return "store is full";
	case STORE_CORRUPT:
		return "store holds a record that cannot be read";
	case STORE_ERROR:
		break;
	}
	return "store error";
}

const char *
store_detail(const struct store *st)
{
	return st->detail;
}

static void
set_detail(struct store *st, const char *what, int rc)
{
	snprintf(st->detail, sizeof(st->detail), "%s: %s", what,
	    mdb_strerror(rc));
}

static enum store_err
map_rc(struct store *st, const char *what, int rc)
{
	switch (rc) {
	case 0:
		return STORE_OK;
	case MDB_NOTFOUND:
		return STORE_NOTFOUND;
	case MDB_KEYEXIST:
		return STORE_EXISTS;
	case RC_CORRUPT:
		snprintf(st->detail, sizeof(st->detail), "%s: bad record",
		    what);
		return STORE_CORRUPT;
	case RC_VERSION:
		return STORE_VERSION;
	case RC_NOTINIT:
		return STORE_NOTINIT;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
	case ENOSPC:
	case EDQUOT:
		set_detail(st, what, rc);
		return STORE_FULL;
	case EIO:
		/* LMDB reports a short write, as a full disk gives, as EIO. */
		snprintf(st->detail, sizeof(st->detail), "%s: %s (a short "
		    "write: is the disk full?)", what, mdb_strerror(rc));
		return STORE_FULL;
	default:
		set_detail(st, what, rc);
		return STORE_ERROR;
	}
}

static size_t
env_mapsize(MDB_env *env)
{
	MDB_envinfo info;

	mdb_env_info(env, &info);
	return info.me_mapsize;
}

/*
 * Double the map, up to map_max.  Only called with no transaction open
 * in this process.  0 when grown, -1 when already at the maximum.
 */
static int
grow_map(struct store *st)
{
	size_t cur = env_mapsize(st->env), next;

	if (cur >= st->map_max)
		return -1;
	next = cur > st->map_max / 2 ? st->map_max : cur * 2;
	if (mdb_env_set_mapsize(st->env, next) != 0)
		return -1;
	log_err("store: map grown from %zu to %zu MiB", cur >> 20,
	    next >> 20);
	return 0;
}

static int	prune_sigkeys(struct store *, MDB_txn *, int64_t now);
static int	prune_attempts(struct store *, MDB_txn *, int64_t now,
		    size_t limit);
static int	prune(struct store *, MDB_txn *, int64_t now, size_t limit,
		    size_t *n);

/*
 * Run fn in a transaction.  Reads are reset after fn and the handle kept
 * for the next read; writes prune a few released ids and commit.
 * Handles another process having grown the map (MDB_MAP_RESIZED), our
 * own map filling up (grow and retry), and a reader table full of dead
 * processes' slots.
 */
static enum store_err
txn_run(struct store *st, int write, const char *what, txn_fn fn,
    void *arg)
{
	MDB_txn	*txn;
	int	 rc, tries, dead;
	size_t	 pruned;

	for (tries = 0; tries < 32; tries++) {
		/* A read renews the handle (and reader slot) the last read
		 * left; if that fails, it is dropped and a new one begun. */
		rc = -1;
		if (!write && (txn = st->rtxn) != NULL) {
			st->rtxn = NULL;
			if ((rc = mdb_txn_renew(txn)) != 0)
				mdb_txn_abort(txn);
		}
		if (rc != 0)
			rc = mdb_txn_begin(st->env, NULL,
			    write ? 0 : MDB_RDONLY, &txn);
		if (rc == MDB_MAP_RESIZED) {
			mdb_env_set_mapsize(st->env, 0);
			continue;
		}
		if (rc == MDB_READERS_FULL && tries == 0) {
			mdb_reader_check(st->env, &dead);
			continue;
		}
		if (rc != 0)
			return map_rc(st, what, rc);
		rc = fn(st, txn, arg);
		if (!write) {
			mdb_txn_reset(txn);
			st->rtxn = txn;
			return map_rc(st, what, rc);
		}
		if (rc == 0)
			rc = prune(st, txn, (int64_t)time(NULL),
			    PRUNE_PER_WRITE, &pruned);
		if (rc == 0)
			rc = prune_sigkeys(st, txn, (int64_t)time(NULL));
		if (rc == 0)
			rc = prune_attempts(st, txn, (int64_t)time(NULL),
			    PRUNE_PER_WRITE);
		if (rc != 0) {
			mdb_txn_abort(txn);
			if (rc == MDB_MAP_FULL && grow_map(st) == 0)
				continue;
			return map_rc(st, what, rc);
		}
		rc = mdb_txn_commit(txn);
		if (rc == MDB_MAP_FULL && grow_map(st) == 0)
			continue;
		return map_rc(st, what, rc);
	}
	snprintf(st->detail, sizeof(st->detail), "%s: too many retries",
	    what);
	return STORE_ERROR;
}

/* ---- keys and records ---------------------------------------------------- */

static void
put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * Records: a format byte, then the fields in a fixed order.  A string is
 * a 2-byte big-endian length and its bytes (no NUL), an integer 8 bytes
 * big-endian, a boolean one byte 0 or 1, a unit list a count byte (1 to
 * CRM_UNITS_MAX) and that many strings.  Reading checks every length
 * against the field and the record, and that nothing is left over.
 */
#define REC_V1		0x01
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
rec_start(struct rec_out *w)
{
	w->b = (struct fbuf){ w->buf, 0, sizeof(w->buf), 0 };
	fbuf_add(&w->b, (unsigned char[]){ REC_V1 }, 1);
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

/* A record's reader, past its format byte; -1 when the format is not
 * one we know. */
static int
rec_begin(const MDB_val *v, struct rec_in *r)
{
	const unsigned char *p = v->mv_data;

	r->bad = v->mv_size == 0 || p[0] != REC_V1;
	r->p = p + 1;
	r->left = r->bad ? 0 : v->mv_size - 1;
	return r->bad ? -1 : 0;
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
	int			 must_be_new;
	char			*org_out, *user_out;	/* for listing */
};

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
	return rec_end(&in);
}

static int
user_get_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct user_arg	*a = p;
	unsigned char	 k[CRM_DIGEST_BYTES];
	MDB_val		 key = { sizeof(k), k }, val;
	int		 rc;

	sec_tagged_hash(k, 'U', a->org, a->user, strlen(a->user));
	if ((rc = mdb_get(txn, st->users, &key, &val)) != 0)
		return rc;
	return user_decode(&val, a->rec, NULL, NULL);
}

enum store_err
store_user_get(struct store *st, const char *org, const char *user,
    struct user_rec *rec)
{
	struct user_arg a = { .org = org, .user = user, .rec = rec };

	return txn_run(st, 0, "user get", user_get_fn, &a);
}

static int
user_put_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct user_arg		*a = p;
	unsigned char		 k[CRM_DIGEST_BYTES];
	struct rec_out		 w;
	MDB_val			 key = { sizeof(k), k }, val;
	int			 rc;

	sec_tagged_hash(k, 'U', a->org, a->user, strlen(a->user));
	if (!a->must_be_new &&
	    (rc = mdb_get(txn, st->users, &key, &val)) != 0)
		return rc;
	rec_start(&w);
	w_str(&w, a->org);
	w_str(&w, a->user);
	w_str(&w, a->in->pwhash);
	w_units(&w, a->in->units, a->in->nunits);
	w_bool(&w, a->in->disabled);
	w_i64(&w, a->in->created);
	return put_rec(txn, st->users, k, sizeof(k), &w,
	    a->must_be_new ? MDB_NOOVERWRITE : 0);
}

enum store_err
store_user_put(struct store *st, const char *org, const char *user,
    const struct user_rec *rec, int must_be_new)
{
	struct user_arg a = { .org = org, .user = user, .in = rec,
	    .must_be_new = must_be_new };

	return txn_run(st, 1, "user put", user_put_fn, &a);
}

static int	apikey_decode(const MDB_val *, struct apikey_rec *);

static int
user_del_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct user_arg	*a = p;
	unsigned char	 k[CRM_DIGEST_BYTES];
	MDB_val		 key = { sizeof(k), k }, val;
	MDB_cursor	*c;
	int		 rc;
	struct apikey_rec ak;

	sec_tagged_hash(k, 'U', a->org, a->user, strlen(a->user));
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

enum store_err
store_user_del(struct store *st, const char *org, const char *user)
{
	struct user_arg a = { .org = org, .user = user };

	return txn_run(st, 1, "user del", user_del_fn, &a);
}

struct list_arg {
	const char	*org;
	void		*cb;
	void		*cbarg;
};

static int
user_list_fn(struct store *st, MDB_txn *txn, void *p)
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

enum store_err
store_user_list(struct store *st, const char *org, store_user_cb cb,
    void *arg)
{
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
key_put(struct store *st, MDB_txn *txn, const struct key_arg *a,
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
key_get_fn(struct store *st, MDB_txn *txn, void *p)
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
key_put_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct key_arg *a = p;

	return key_put(st, txn, a, a->must_be_new ? MDB_NOOVERWRITE : 0);
}

/* Read, mark revoked and write back in one transaction. */
static int
revoke_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct key_arg	*a = p;
	int		 rc;

	if ((rc = key_get_fn(st, txn, a)) != 0)
		return rc;
	if (a->consumer)
		a->ck->revoked = 1;
	else
		a->ak->revoked = 1;
	return key_put(st, txn, a, 0);
}

enum store_err
store_apikey_get(struct store *st,
    const unsigned char digest[CRM_DIGEST_BYTES], struct apikey_rec *r)
{
	struct key_arg a = { .digest = digest, .ak = r };

	return txn_run(st, 0, "apikey get", key_get_fn, &a);
}

enum store_err
store_consumer_get(struct store *st,
    const unsigned char digest[CRM_DIGEST_BYTES], struct consumer_rec *r)
{
	struct key_arg a = { .digest = digest, .consumer = 1, .ck = r };

	return txn_run(st, 0, "consumer key get", key_get_fn, &a);
}

enum store_err
store_apikey_put(struct store *st,
    const unsigned char digest[CRM_DIGEST_BYTES],
    const struct apikey_rec *r, int must_be_new)
{
	struct apikey_rec	copy = *r;
	struct key_arg		a = { .digest = digest, .ak = &copy,
	    .must_be_new = must_be_new };

	return txn_run(st, 1, "apikey put", key_put_fn, &a);
}

enum store_err
store_consumer_put(struct store *st,
    const unsigned char digest[CRM_DIGEST_BYTES],
    const struct consumer_rec *r, int must_be_new)
{
	struct consumer_rec	copy = *r;
	struct key_arg		a = { .digest = digest, .consumer = 1,
	    .ck = &copy, .must_be_new = must_be_new };

	return txn_run(st, 1, "consumer key put", key_put_fn, &a);
}

enum store_err
store_key_revoke(struct store *st, int consumer,
    const unsigned char digest[CRM_DIGEST_BYTES])
{
	struct apikey_rec	ak;
	struct consumer_rec	ck;
	struct key_arg		a = { .digest = digest, .consumer = consumer,
	    .ak = &ak, .ck = &ck };

	return txn_run(st, 1, "key revoke", revoke_fn, &a);
}

static int
key_list_fn(struct store *st, MDB_txn *txn, MDB_dbi dbi, void *p,
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
apikey_list_fn(struct store *st, MDB_txn *txn, void *p)
{
	return key_list_fn(st, txn, st->apikeys, p, 0);
}

static int
consumer_list_fn(struct store *st, MDB_txn *txn, void *p)
{
	return key_list_fn(st, txn, st->consumers, p, 1);
}

enum store_err
store_apikey_list(struct store *st, store_apikey_cb cb, void *arg)
{
	struct list_arg a = { NULL, (void *)cb, arg };

	return txn_run(st, 0, "apikey list", apikey_list_fn, &a);
}

enum store_err
store_consumer_list(struct store *st, store_consumer_cb cb, void *arg)
{
	struct list_arg a = { NULL, (void *)cb, arg };

	return txn_run(st, 0, "consumer key list", consumer_list_fn, &a);
}

/* ---- access tokens ------------------------------------------------------ */

struct access_arg {
	unsigned char		 k[CRM_DIGEST_BYTES];
	struct access_rec	*out;
	const struct access_rec	*in;
};

/* The access record: contact, authentication result ("" for none), the
 * pass code's hash ("" for the code kind), created. */
static int
access_get_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct access_arg	*a = p;
	MDB_val			 key = { sizeof(a->k), a->k }, val;
	struct access_rec	*r = a->out;
	struct rec_in		 in;
	int			 rc;

	if ((rc = mdb_get(txn, st->access, &key, &val)) != 0)
		return rc;
	if (rec_begin(&val, &in) != 0)
		return RC_CORRUPT;
	r_str(&in, r->contact, sizeof(r->contact));
	r_str(&in, r->ari, sizeof(r->ari));
	r_str(&in, r->passhash, sizeof(r->passhash));
	r->created = r_i64(&in);
	return rec_end(&in);
}

static int
access_put_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct access_arg	*a = p;
	struct rec_out		 w;

	rec_start(&w);
	w_str(&w, a->in->contact);
	w_str(&w, a->in->ari);
	w_str(&w, a->in->passhash);
	w_i64(&w, a->in->created);
	return put_rec(txn, st->access, a->k, sizeof(a->k), &w,
	    MDB_NOOVERWRITE);
}

enum store_err
store_access_get_code(struct store *st, const char *org,
    const unsigned char digest[CRM_DIGEST_BYTES], struct access_rec *r)
{
	struct access_arg a = { .out = r };

	sec_tagged_hash(a.k, 'C', org, digest, CRM_DIGEST_BYTES);
	return txn_run(st, 0, "access token get", access_get_fn, &a);
}

enum store_err
store_access_get_ident(struct store *st, const char *org,
    const char *ident, struct access_rec *r)
{
	struct access_arg a = { .out = r };

	sec_tagged_hash(a.k, 'I', org, ident, strlen(ident));
	return txn_run(st, 0, "access token get", access_get_fn, &a);
}

enum store_err
store_access_put_code(struct store *st, const char *org,
    const unsigned char digest[CRM_DIGEST_BYTES], const struct access_rec *r)
{
	struct access_arg a = { .in = r };

	sec_tagged_hash(a.k, 'C', org, digest, CRM_DIGEST_BYTES);
	return txn_run(st, 1, "access token put", access_put_fn, &a);
}

enum store_err
store_access_put_ident(struct store *st, const char *org,
    const char *ident, const struct access_rec *r)
{
	struct access_arg a = { .in = r };

	sec_tagged_hash(a.k, 'I', org, ident, strlen(ident));
	return txn_run(st, 1, "access token put", access_put_fn, &a);
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
sigkey_put(struct store *st, MDB_txn *txn, const struct sigkey *k,
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
current_kid(struct store *st, MDB_txn *txn, char kid[CRM_KID_HEX + 1])
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

static int
sigkey_get_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct sigkey_arg	*a = p;
	char			 cur[CRM_KID_HEX + 1];
	MDB_val			 key, val;
	int			 rc;

	if ((rc = current_kid(st, txn, cur)) != 0)
		return rc;
	key.mv_data = (void *)(a->kid != NULL ? a->kid : cur);
	key.mv_size = strlen(key.mv_data);
	if ((rc = mdb_get(txn, st->sigkeys, &key, &val)) != 0)
		return rc;
	if ((rc = sigkey_decode(&key, &val, a->out)) != 0)
		return rc;
	a->out->current = strcmp(a->out->kid, cur) == 0;
	return 0;
}

enum store_err
store_sigkey_get(struct store *st, const char *kid, struct sigkey *out)
{
	struct sigkey_arg a = { .kid = kid, .out = out };

	if (strlen(kid) != CRM_KID_HEX)
		return STORE_NOTFOUND;
	return txn_run(st, 0, "signing key get", sigkey_get_fn, &a);
}

enum store_err
store_sigkey_current(struct store *st, struct sigkey *out)
{
	struct sigkey_arg a = { .kid = NULL, .out = out };

	return txn_run(st, 0, "signing key get", sigkey_get_fn, &a);
}

static int
sigkey_list_fn(struct store *st, MDB_txn *txn, void *p)
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

enum store_err
store_sigkey_list(struct store *st, store_sigkey_cb cb, void *arg)
{
	struct sigkey_arg a = { .list = { NULL, (void *)cb, arg } };

	return txn_run(st, 0, "signing key list", sigkey_list_fn, &a);
}

/* Make a new signing key and make it current. */
static int
sigkey_new(struct store *st, MDB_txn *txn, struct sigkey *k)
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
rotate_fn(struct store *st, MDB_txn *txn, void *p)
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

enum store_err
store_sigkey_rotate(struct store *st, int64_t now, int64_t ttl,
    struct sigkey *old, struct sigkey *new)
{
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

/* Delete signing keys past their expiry: no token they signed is valid. */
static int
prune_sigkeys(struct store *st, MDB_txn *txn, int64_t now)
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
released_get_fn(struct store *st, MDB_txn *txn, void *p)
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

enum store_err
store_released_get(struct store *st, const unsigned char jti[CRM_JTI_BYTES],
    int64_t *exp)
{
	struct rel_arg	 a = { .jti = jti };
	enum store_err	 e;

	e = txn_run(st, 0, "released get", released_get_fn, &a);
	if (e == STORE_OK)
		*exp = a.exp;
	return e;
}

static int
release_fn(struct store *st, MDB_txn *txn, void *p)
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

enum store_err
store_release(struct store *st, const unsigned char jti[CRM_JTI_BYTES],
    int64_t exp, int64_t now)
{
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
prune(struct store *st, MDB_txn *txn, int64_t now, size_t limit, size_t *n)
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
prune_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct rel_arg *a = p;

	return prune(st, txn, a->now, 0, &a->n);
}

enum store_err
store_released_prune(struct store *st, int64_t now, size_t *n)
{
	struct rel_arg	 a = { .now = now };
	enum store_err	 e;

	e = txn_run(st, 1, "released prune", prune_fn, &a);
	*n = e == STORE_OK ? a.n : 0;
	return e;
}

struct carry_arg {
	struct store	*to;
	int64_t		 now;
	size_t		 n;
	enum store_err	 e;
};

/* Release in another store every unexpired id released in this one. */
static int
carry_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct carry_arg	*a = p;
	MDB_cursor		*c;
	MDB_val			 key, val;
	int			 rc;

	if ((rc = mdb_cursor_open(txn, st->released, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != CRM_JTI_BYTES || val.mv_size != 8) {
			rc = RC_CORRUPT;
			break;
		}
		a->e = store_release(a->to, key.mv_data,
		    (int64_t)get_be64(val.mv_data), a->now);
		if (a->e != STORE_OK)
			break;
		a->n++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
count_fn(struct store *st, MDB_txn *txn, void *p)
{
	MDB_stat	 s;
	int		 rc;

	if ((rc = mdb_stat(txn, st->released, &s)) != 0)
		return rc;
	*(size_t *)p = s.ms_entries;
	return 0;
}

enum store_err
store_released_count(struct store *st, size_t *n)
{
	return txn_run(st, 0, "released count", count_fn, n);
}

static int
ping_fn(struct store *st, MDB_txn *txn, void *p)
{
	char kid[CRM_KID_HEX + 1];

	return current_kid(st, txn, kid);
}

enum store_err
store_ping(struct store *st)
{
	return txn_run(st, 0, "ping", ping_fn, NULL);
}

/* ---- failed-attempt counters ---------------------------------------------- */

#define ATT_KEY_MAX	(1 + CRM_DIGEST_BYTES + CRM_ADDR_MAX)
#define ATT_VAL		(8 + 4)

struct att_arg {
	const unsigned char	*account;
	const char		*addr;
	int64_t			 now, window;
	struct attempts		*out;
};

/* The key of the account counter (addr NULL) or of a pair. */
static size_t
att_key(unsigned char *k, const unsigned char *account, const char *addr)
{
	size_t alen = addr != NULL ? strlen(addr) : 0;

	if (alen > CRM_ADDR_MAX)
		alen = CRM_ADDR_MAX;
	k[0] = addr != NULL ? 'P' : 'A';
	memcpy(k + 1, account, CRM_DIGEST_BYTES);
	if (alen > 0)
		memcpy(k + 1 + CRM_DIGEST_BYTES, addr, alen);
	return 1 + CRM_DIGEST_BYTES + alen;
}

/* A counter: 0 found (*end of its window, *count), MDB_NOTFOUND, or an
 * error. */
static int
att_get(struct store *st, MDB_txn *txn, const unsigned char *k, size_t klen,
    int64_t *end, uint32_t *count)
{
	MDB_val	 key = { klen, (void *)k }, val;
	int	 rc;

	if ((rc = mdb_get(txn, st->attempts, &key, &val)) != 0)
		return rc;
	if (val.mv_size != ATT_VAL)
		return RC_CORRUPT;
	*end = (int64_t)get_be64(val.mv_data);
	*count = get_be32((unsigned char *)val.mv_data + 8);
	return 0;
}

/* Delete a counter and its index entry. */
static int
att_del(struct store *st, MDB_txn *txn, const unsigned char *k, size_t klen,
    int64_t end)
{
	unsigned char	 ik[8 + ATT_KEY_MAX];
	MDB_val		 key = { klen, (void *)k }, ikey = { 8 + klen, ik };
	int		 rc;

	put_be64(ik, (uint64_t)end);
	memcpy(ik + 8, k, klen);
	rc = mdb_del(txn, st->attempts_exp, &ikey, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	rc = mdb_del(txn, st->attempts, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* One more failure in a counter's window, or the first of a new one. */
static int
att_bump(struct store *st, MDB_txn *txn, const unsigned char *k, size_t klen,
    int64_t now, int64_t window)
{
	unsigned char	 v[ATT_VAL], ik[8 + ATT_KEY_MAX];
	MDB_val		 key = { klen, (void *)k }, val = { sizeof(v), v };
	MDB_val		 ikey = { 8 + klen, ik }, empty = { 0, "" };
	int64_t		 end;
	uint32_t	 count;
	int		 rc;

	rc = att_get(st, txn, k, klen, &end, &count);
	if (rc == 0 && now >= end) {
		if ((rc = att_del(st, txn, k, klen, end)) != 0)
			return rc;
		rc = MDB_NOTFOUND;
	}
	if (rc == MDB_NOTFOUND) {
		end = now + window;
		count = 0;
		put_be64(ik, (uint64_t)end);
		memcpy(ik + 8, k, klen);
		if ((rc = mdb_put(txn, st->attempts_exp, &ikey, &empty, 0)) != 0)
			return rc;
	} else if (rc != 0)
		return rc;
	if (count < UINT32_MAX)
		count++;
	put_be64(v, (uint64_t)end);
	put_be32(v + 8, count);
	return mdb_put(txn, st->attempts, &key, &val, 0);
}

static int
att_read_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct att_arg	*a = p;
	unsigned char	 k[ATT_KEY_MAX];
	size_t		 klen;
	int		 rc;

	memset(a->out, 0, sizeof(*a->out));
	klen = att_key(k, a->account, a->addr);
	rc = att_get(st, txn, k, klen, &a->out->pair_end, &a->out->pair_count);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	a->out->pair_exists = rc == 0;
	if (rc == 0 && a->now >= a->out->pair_end)
		a->out->pair_count = 0;		/* window over */
	klen = att_key(k, a->account, NULL);
	rc = att_get(st, txn, k, klen, &a->out->account_end,
	    &a->out->account_count);
	if (rc == 0 && a->now >= a->out->account_end)
		a->out->account_count = 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

enum store_err
store_attempts_get(struct store *st,
    const unsigned char account[CRM_DIGEST_BYTES], const char *addr,
    int64_t now, struct attempts *out)
{
	struct att_arg a = { account, addr, now, 0, out };

	return txn_run(st, 0, "attempts get", att_read_fn, &a);
}

static int
att_fail_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct att_arg	*a = p;
	unsigned char	 k[ATT_KEY_MAX];
	size_t		 klen;
	int		 rc;

	klen = att_key(k, a->account, a->addr);
	if ((rc = att_bump(st, txn, k, klen, a->now, a->window)) != 0)
		return rc;
	klen = att_key(k, a->account, NULL);
	return att_bump(st, txn, k, klen, a->now, a->window);
}

enum store_err
store_attempts_fail(struct store *st,
    const unsigned char account[CRM_DIGEST_BYTES], const char *addr,
    int64_t now, int64_t window)
{
	struct att_arg a = { account, addr, now, window, NULL };

	return txn_run(st, 1, "attempts fail", att_fail_fn, &a);
}

static int
att_clear_fn(struct store *st, MDB_txn *txn, void *p)
{
	struct att_arg	*a = p;
	unsigned char	 k[ATT_KEY_MAX];
	size_t		 klen;
	int64_t		 end;
	uint32_t	 count;
	MDB_cursor	*c;
	MDB_val		 key, val;
	int		 rc;

	if (a->addr != NULL) {
		/* One pair: a success from that address. */
		klen = att_key(k, a->account, a->addr);
		rc = att_get(st, txn, k, klen, &end, &count);
		if (rc == MDB_NOTFOUND)
			return 0;
		return rc != 0 ? rc : att_del(st, txn, k, klen, end);
	}
	/* The whole account: its counter and every pair (unlock). */
	klen = att_key(k, a->account, NULL);
	rc = att_get(st, txn, k, klen, &end, &count);
	if (rc == 0)
		rc = att_del(st, txn, k, klen, end);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_cursor_open(txn, st->attempts, &c)) != 0)
		return rc;
	k[0] = 'P';
	for (;;) {
		unsigned char	 pk[ATT_KEY_MAX];

		/* Seek the prefix afresh after each deletion. */
		key.mv_size = 1 + CRM_DIGEST_BYTES;
		key.mv_data = k;
		if ((rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE)) != 0)
			break;
		if (key.mv_size < 1 + CRM_DIGEST_BYTES ||
		    memcmp(key.mv_data, k, 1 + CRM_DIGEST_BYTES) != 0)
			break;
		if (key.mv_size > ATT_KEY_MAX || val.mv_size != ATT_VAL) {
			rc = RC_CORRUPT;
			break;
		}
		memcpy(pk, key.mv_data, key.mv_size);
		end = (int64_t)get_be64(val.mv_data);
		if ((rc = att_del(st, txn, pk, key.mv_size, end)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

enum store_err
store_attempts_clear(struct store *st,
    const unsigned char account[CRM_DIGEST_BYTES], const char *addr)
{
	struct att_arg a = { account, addr, 0, 0, NULL };

	return txn_run(st, 1, "attempts clear", att_clear_fn, &a);
}

/* Delete counters whose window has ended, oldest first, at most limit. */
static int
prune_attempts(struct store *st, MDB_txn *txn, int64_t now, size_t limit)
{
	MDB_cursor	*c;
	MDB_val		 key, val, ak;
	size_t		 n = 0;
	int		 rc;

	if ((rc = mdb_cursor_open(txn, st->attempts_exp, &c)) != 0)
		return rc;
	while (n < limit &&
	    (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST)) == 0) {
		if (key.mv_size <= 8) {
			rc = RC_CORRUPT;
			break;
		}
		if ((int64_t)get_be64(key.mv_data) > now)
			break;
		ak.mv_size = key.mv_size - 8;
		ak.mv_data = (unsigned char *)key.mv_data + 8;
		rc = mdb_del(txn, st->attempts, &ak, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		n++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

/* ---- opening ------------------------------------------------------------- */

static const struct {
	const char	*name;
	size_t		 off;
} dbs[] = {
	{ "meta", offsetof(struct store, meta) },
	{ "users", offsetof(struct store, users) },
	{ "apikeys", offsetof(struct store, apikeys) },
	{ "consumer_keys", offsetof(struct store, consumers) },
	{ "access_tokens", offsetof(struct store, access) },
	{ "signing_keys", offsetof(struct store, sigkeys) },
	{ "released", offsetof(struct store, released) },
	{ "released_by_exp", offsetof(struct store, released_exp) },
	{ "attempts", offsetof(struct store, attempts) },
	{ "attempts_by_exp", offsetof(struct store, attempts_exp) },
};

/* Open (or create) the named databases and check the schema version. */
static int
open_dbs(struct store *st, int create)
{
	MDB_txn		*txn;
	MDB_val		 key = { 6, "schema" }, val;
	char		 ver[16], kid[CRM_KID_HEX + 1];
	long long	 v;
	const char	*why;
	int		 rc;

	if ((rc = mdb_txn_begin(st->env, NULL, create ? 0 : MDB_RDONLY,
	    &txn)) != 0)
		return rc;
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		rc = mdb_dbi_open(txn, dbs[i].name, create ? MDB_CREATE : 0,
		    (MDB_dbi *)((char *)st + dbs[i].off));
		if (rc == MDB_NOTFOUND)
			rc = RC_NOTINIT;
		if (rc != 0)
			goto fail;
	}
	rc = mdb_get(txn, st->meta, &key, &val);
	if (rc == MDB_NOTFOUND && create) {
		snprintf(ver, sizeof(ver), "%d", STORE_SCHEMA_VERSION);
		val.mv_size = strlen(ver);
		val.mv_data = ver;
		rc = mdb_put(txn, st->meta, &key, &val, 0);
	} else if (rc == MDB_NOTFOUND)
		rc = RC_NOTINIT;
	else if (rc == 0) {
		if (val.mv_size >= sizeof(ver))
			rc = RC_CORRUPT;
		else {
			memcpy(ver, val.mv_data, val.mv_size);
			ver[val.mv_size] = '\0';
			if (parse_int(ver, 1, 1000000, &v, &why) == -1)
				rc = RC_CORRUPT;
			else if (v > STORE_SCHEMA_VERSION)
				rc = RC_VERSION;
		}
	}
	if (rc != 0)
		goto fail;
	if (create) {
		rc = current_kid(st, txn, kid);
		if (rc == RC_NOTINIT) {
			struct sigkey k;

			rc = sigkey_new(st, txn, &k);
			memset(&k, 0, sizeof(k));
		}
		if (rc != 0)
			goto fail;
	}
	/* Commit, even read-only: DBIs opened in an aborted txn are closed. */
	return mdb_txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return rc;
}

enum store_err
store_open(struct store **out, const struct config *cfg, int flags,
    char *err, size_t errlen)
{
	int create = (flags & STORE_CREATE) != 0;
	mode_t old_umask, mode = 0600;
	struct store	*st;
	struct stat	 sb;
	char		 data[sizeof(cfg->db_path) + 16];
	enum store_err	 e = STORE_ERROR;
	int		 rc, dead;

	*out = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return STORE_ERROR;
	st->map_max = (size_t)cfg->db_map_max_mb << 20;

	if (create && mkdir(cfg->db_path, 0700) == -1 && errno != EEXIST) {
		snprintf(st->detail, sizeof(st->detail), "mkdir %s: %s",
		    cfg->db_path, strerror(errno));
		goto fail;
	}
	/* Shared with the web server's group: setgid, so that every file
	 * made in it belongs to the group too. */
	if (create && cfg->db_group != -1 &&
	    (chown(cfg->db_path, (uid_t)-1, (gid_t)cfg->db_group) == -1 ||
	    chmod(cfg->db_path, 02770) == -1)) {
		snprintf(st->detail, sizeof(st->detail), "%s: %s",
		    cfg->db_path, strerror(errno));
		goto fail;
	}
	if (stat(cfg->db_path, &sb) == 0 && (sb.st_mode & 070) != 0)
		mode = 0660;
	/* Never create a store as a side effect of serving. */
	snprintf(data, sizeof(data), "%s/data.mdb", cfg->db_path);
	if (!create && stat(data, &sb) == -1) {
		e = errno == ENOENT ? STORE_NOTINIT : STORE_ERROR;
		snprintf(st->detail, sizeof(st->detail), "%s: %s", e ==
		    STORE_NOTINIT ? cfg->db_path : data, e == STORE_NOTINIT ?
		    store_strerror(e) : strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&st->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(st->env, 16)) != 0 ||
	    (rc = mdb_env_set_maxreaders(st->env, MAXREADERS)) != 0 ||
	    (rc = mdb_env_set_mapsize(st->env,
	    (size_t)cfg->db_map_size_mb << 20)) != 0) {
		set_detail(st, "mdb_env_create", rc);
		goto fail;
	}
	/* The umask must not take the group's write bit off the lock file,
	 * which readers write too. */
	old_umask = umask(mode == 0660 ? 007 : 077);
	/* MDB_NOTLS: the kept read handle owns its reader slot, whichever
	 * thread renews it (a libcrmauth handle may move between threads). */
	rc = mdb_env_open(st->env, cfg->db_path, MDB_NOTLS |
	    ((flags & STORE_RDONLY) ? MDB_RDONLY : 0), mode);
	umask(old_umask);
	if (rc != 0) {
		snprintf(st->detail, sizeof(st->detail), "%s: %s",
		    cfg->db_path, mdb_strerror(rc));
		e = rc == ENOENT ? STORE_NOTINIT : STORE_ERROR;
		goto fail;
	}
	/* Slots left by processes killed while reading. */
	mdb_reader_check(st->env, &dead);
	if ((rc = open_dbs(st, create)) != 0) {
		e = map_rc(st, cfg->db_path, rc);
		if (e == STORE_NOTINIT || e == STORE_VERSION)
			snprintf(st->detail, sizeof(st->detail), "%s: %s",
			    cfg->db_path, store_strerror(e));
		goto fail;
	}
	*out = st;
	return STORE_OK;
fail:
	snprintf(err, errlen, "%s", st->detail[0] != '\0' ? st->detail :
	    store_strerror(e));
	if (st->env != NULL)
		mdb_env_close(st->env);
	free(st);
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

enum store_err
store_backup(struct store *st, const char *file)
{
	char	 tmp[1100];
	int	 fd, rc = 0;

	/* Beside the target, then renamed: never a half-written backup. */
	if (path_join(tmp, sizeof(tmp), file, ".tmp") == -1)
		return map_rc(st, file, ENAMETOOLONG);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		return map_rc(st, file, errno);
	/* A consistent snapshot (one read transaction), compacted. */
	rc = mdb_env_copyfd2(st->env, fd, MDB_CP_COMPACT);
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
	if ((out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1) {
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

/* Does a process other than us have the store at dir open? */
static int
store_in_use(const char *dir)
{
	MDB_env		*env;
	MDB_envinfo	 info;
	int		 dead, busy = 0;

	if (mdb_env_create(&env) != 0)
		return 0;
	mdb_env_set_maxdbs(env, 16);
	mdb_env_set_maxreaders(env, MAXREADERS);
	if (mdb_env_open(env, dir, MDB_RDONLY, 0600) == 0) {
		/* Slots of dead processes do not count. */
		mdb_reader_check(env, &dead);
		busy = mdb_env_info(env, &info) == 0 && info.me_numreaders > 1;
	}
	mdb_env_close(env);
	return busy;
}

enum store_err
store_restore(const struct config *cfg, const char *file, char *err,
    size_t errlen)
{
	struct config	 bcfg = *cfg;
	struct store	*st;
	struct stat	 sb;
	char		 dir[1100], tmp[1100], data[1100], lock[1100];
	enum store_err	 e = STORE_ERROR;
	int		 rc, fd;

	if (path_join(dir, sizeof(dir), cfg->db_path, ".restore") == -1 ||
	    path_join(tmp, sizeof(tmp), dir, "/data.mdb") == -1 ||
	    path_join(data, sizeof(data), cfg->db_path, "/data.mdb") == -1 ||
	    path_join(lock, sizeof(lock), cfg->db_path, "/lock.mdb") == -1 ||
	    strlen(dir) >= sizeof(bcfg.db_path)) {
		snprintf(err, errlen, "%s: path too long", cfg->db_path);
		return STORE_ERROR;
	}
	/* The backup must be a store of ours: open a copy of it. */
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return STORE_ERROR;
	}
	if ((rc = copy_file(file, tmp)) != 0) {
		snprintf(err, errlen, "%s: %s", file, strerror(rc));
		goto out;
	}
	memcpy(bcfg.db_path, dir, strlen(dir) + 1);
	if ((e = store_open(&st, &bcfg, 0, err, errlen)) != STORE_OK) {
		snprintf(err, errlen, "%s is not a crmauth store backup (%s)",
		    file, store_strerror(e));
		e = STORE_ERROR;
		goto out;
	}
	e = STORE_ERROR;
	if (stat(lock, &sb) == 0 && store_in_use(cfg->db_path)) {
		store_close(st);
		snprintf(err, errlen, "%s is in use: stop the service first",
		    cfg->db_path);
		goto out;
	}
	/* A token released after the backup was taken stays released. */
	if (stat(data, &sb) == 0) {
		struct store		*cur;
		struct carry_arg	 ca = { st, (int64_t)time(NULL), 0,
					    STORE_OK };

		if (store_open(&cur, cfg, 0, err, errlen) != STORE_OK)
			log_err("warning: the store being replaced cannot be "
			    "read (%s): tokens released since the backup are "
			    "not kept", err);
		else {
			e = txn_run(cur, 0, "carry releases", carry_fn, &ca);
			store_close(cur);
			if (e != STORE_OK || ca.e != STORE_OK) {
				store_close(st);
				snprintf(err, errlen, "keeping the current "
				    "releases: %s", store_strerror(e != STORE_OK ?
				    e : ca.e));
				e = STORE_ERROR;
				goto out;
			}
		}
		e = STORE_ERROR;
	}
	store_close(st);
	if (mkdir(cfg->db_path, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", cfg->db_path,
		    strerror(errno));
		goto out;
	}
	/* Keep the replaced file's owner and mode (as root; else ours). */
	if (stat(data, &sb) == 0 && chown(tmp, sb.st_uid, sb.st_gid) == 0)
		chmod(tmp, sb.st_mode & 0777);
	if (rename(tmp, data) == -1) {
		snprintf(err, errlen, "%s: %s", data, strerror(errno));
		goto out;
	}
	/* The old lock file describes the old map: LMDB makes a new one. */
	unlink(lock);
	if ((fd = open(cfg->db_path, O_RDONLY | O_DIRECTORY)) != -1) {
		fsync(fd);
		close(fd);
	}
	e = STORE_OK;
out:
	unlink(tmp);
	if (path_join(tmp, sizeof(tmp), dir, "/lock.mdb") == 0)
		unlink(tmp);
	rmdir(dir);
	return e;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->rtxn != NULL)
		mdb_txn_abort(st->rtxn);
	mdb_env_close(st->env);
	free(st);
}
