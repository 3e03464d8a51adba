/*
 * Failed-attempt counters and trusted addresses of the LMDB store, with
 * the counting rules of store.c: their own
 * environment beside the store, so that counting never waits for the
 * store's writer lock (releases do not queue behind a flood of failures)
 * and never fills the store's map.
 *
 * Volatile by design: commits are not synced (MDB_NOSYNC), since a
 * counter lost in a crash costs nothing that matters, and a synced
 * commit per failure is what a flood would exploit.  A process crash
 * loses nothing (the pages are in the page cache); a system crash may
 * leave the file damaged, so the file belongs to one boot: its name
 * carries the kernel's boot id, and the first process after a reboot
 * starts a new one and deletes the old.  What is lost then: counters
 * (a guesser gets a fresh window) and trusted addresses.
 *
 *   counters  'P' account (16) address (8)  pair counter
 *             'A' account (16)              account counter
 *             'N' address (8)               address counter
 *                -> window end (8, BE), count (4, BE), then, once the
 *                   count has reached its limit, the subject (text)
 *             'T' account (16) address (8) -> trusted until (8, BE)
 *   expiry    end or until (8, BE) + key -> ""   (pruning)
 *
 * The file holds at most ATT_MAX_RECORDS records (and a few).  One address can make
 * only so many (throttle.c), but an attacker with many addresses could
 * otherwise fill the map, and then every login would fail.  So when a
 * reservation would pass the cap, the records that end first are dropped
 * to make room (trusted addresses, which last days, go last): filling it
 * costs a flood of some ATT_MAX_RECORDS / 2 failed requests, and buys a
 * guesser no more than a fresh window.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"
#include "lmdb_env.h"

#define PRUNE_PER_TXN	16
#define ATT_MAX_RECORDS	(1 << 18)	/* about 40 MB of file */
/* The map: room for the records, and for an eviction's copies. */
#define ATT_MAP_START	((size_t)16 << 20)
#define ATT_MAP_MAX	((size_t)256 << 20)
#define VAL_HEAD	(8 + 4)
#define VAL_MAX		(VAL_HEAD + ATT_SUBJECT_MAX)

struct attdb {
	struct lmdb	*db;
	MDB_dbi		 counters, expiry;
	MDB_txn		*rtxn;
	size_t		 max;		/* records */
};

/* The kernel's id of this boot (32 hex digits), or "" when unknown. */
static void
boot_id(char out[33])
{
	char	 buf[64];
	size_t	 n = 0;
	FILE	*f;

	out[0] = '\0';
	if ((f = fopen("/proc/sys/kernel/random/boot_id", "re")) == NULL)
		return;
	if (fgets(buf, sizeof(buf), f) != NULL)
		for (char *p = buf; *p != '\0' && n < 32; p++)
			if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
				out[n++] = *p;
	fclose(f);
	out[n == 32 ? n : 0] = '\0';
}

/* Delete the counters of earlier boots (best effort). */
static void
remove_stale(const char *dir, const char *keep)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[1200];

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "attempts-", 9) != 0 ||
		    strncmp(de->d_name, keep, strlen(keep)) == 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) <
		    (int)sizeof(path))
			unlink(path);
	}
	closedir(d);
}

int
attdb_open(struct attdb **out, const struct config *cfg, int rdonly,
    char *err, size_t errlen)
{
	static const char *const names[] = { "counters", "expiry" };
	struct attdb	*a;
	struct stat	 sb;
	MDB_dbi		 dbis[2];
	char		 id[33], base[64], path[1200];
	mode_t		 mode = 0600;
	int		 rc;

	*out = NULL;
	boot_id(id);
	snprintf(base, sizeof(base), "attempts%s%s.mdb", id[0] ? "-" : "", id);
	if (snprintf(path, sizeof(path), "%s/%s", cfg->db_path, base) >=
	    (int)sizeof(path)) {
		snprintf(err, errlen, "%s: path too long", cfg->db_path);
		return ENAMETOOLONG;
	}
	if (stat(cfg->db_path, &sb) == 0 && (sb.st_mode & 070) != 0)
		mode = 0660;
	if (stat(path, &sb) == -1 && errno == ENOENT) {
		if (rdonly) {
			snprintf(err, errlen, "%s: no counters yet", path);
			return ENOENT;
		}
		if (id[0] != '\0') {
			base[strlen(base) - 4] = '\0';	/* attempts-ID */
			remove_stale(cfg->db_path, base);
		}
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	rc = lmdb_open(&a->db, path, MDB_NOSUBDIR | MDB_NOSYNC |
	    (rdonly ? MDB_RDONLY : 0), mode, ATT_MAP_START, ATT_MAP_MAX);
	if (rc == 0)
		rc = lmdb_dbis(a->db, names, dbis, 2, !rdonly);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", path, mdb_strerror(rc));
		attdb_close(a);
		return rc;
	}
	a->counters = dbis[0];
	a->expiry = dbis[1];
	a->max = cfg->att_max_records ? cfg->att_max_records :
	    ATT_MAX_RECORDS;
	*out = a;
	return 0;
}

void
attdb_close(struct attdb *a)
{
	if (a == NULL)
		return;
	if (a->rtxn != NULL)
		mdb_txn_abort(a->rtxn);
	lmdb_close(a->db);
	free(a);
}

/* ---- records ---------------------------------------------------------------- */

struct rec {
	int64_t		 end;
	uint32_t	 count;
	const char	*subject;	/* into the map; NULL if none */
	size_t		 subject_len;
	int		 exists;
};

static int
rec_get(struct attdb *a, MDB_txn *txn, const unsigned char *k, size_t klen,
    struct rec *r)
{
	MDB_val	 key = { klen, (void *)k }, val;
	int	 rc;

	memset(r, 0, sizeof(*r));
	if ((rc = mdb_get(txn, a->counters, &key, &val)) == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (k[0] == 'T') {
		if (val.mv_size != 8)
			return MDB_CORRUPTED;
		r->end = (int64_t)get_be64(val.mv_data);
	} else {
		if (val.mv_size < VAL_HEAD || val.mv_size > VAL_MAX)
			return MDB_CORRUPTED;
		r->end = (int64_t)get_be64(val.mv_data);
		r->count = get_be32((unsigned char *)val.mv_data + 8);
		if (val.mv_size > VAL_HEAD) {
			r->subject = (char *)val.mv_data + VAL_HEAD;
			r->subject_len = val.mv_size - VAL_HEAD;
		}
	}
	r->exists = 1;
	return 0;
}

/* The expiry index entry of a record ending at end. */
static int
index_op(struct attdb *a, MDB_txn *txn, const unsigned char *k, size_t klen,
    int64_t end, int put)
{
	unsigned char	 ik[8 + ATT_KEY_MAX];
	MDB_val		 ikey = { 8 + klen, ik }, empty = { 0, "" };
	int		 rc;

	put_be64(ik, (uint64_t)end);
	memcpy(ik + 8, k, klen);
	if (put)
		return mdb_put(txn, a->expiry, &ikey, &empty, 0);
	rc = mdb_del(txn, a->expiry, &ikey, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
rec_del(struct attdb *a, MDB_txn *txn, const unsigned char *k, size_t klen,
    int64_t end)
{
	MDB_val	 key = { klen, (void *)k };
	int	 rc;

	if ((rc = index_op(a, txn, k, klen, end, 0)) != 0)
		return rc;
	rc = mdb_del(txn, a->counters, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Write a counter (or, for 'T', a trust) ending at end, moving its index
 * entry from old_end (0: none). */
static int
rec_put(struct attdb *a, MDB_txn *txn, const unsigned char *k, size_t klen,
    int64_t old_end, int64_t end, uint32_t count, const char *subject,
    size_t subject_len)
{
	unsigned char	 v[VAL_MAX];
	MDB_val		 key = { klen, (void *)k }, val = { 0, v };
	int		 rc;

	if (old_end != end) {
		if (old_end != 0 &&
		    (rc = index_op(a, txn, k, klen, old_end, 0)) != 0)
			return rc;
		if ((rc = index_op(a, txn, k, klen, end, 1)) != 0)
			return rc;
	}
	put_be64(v, (uint64_t)end);
	if (k[0] == 'T')
		val.mv_size = 8;
	else {
		if (subject_len > ATT_SUBJECT_MAX)
			subject_len = ATT_SUBJECT_MAX;
		put_be32(v + 8, count);
		if (subject_len > 0)
			memcpy(v + VAL_HEAD, subject, subject_len);
		val.mv_size = VAL_HEAD + subject_len;
	}
	return mdb_put(txn, a->counters, &key, &val, 0);
}

/* Delete records whose time has passed, oldest first, at most limit
 * (0: all). */
static int
prune(struct attdb *a, MDB_txn *txn, int64_t now, size_t limit, size_t *n)
{
	return lmdb_prune_index(txn, a->expiry, a->counters, now, 1,
	    ATT_KEY_MAX, limit, n);
}

/* Room for n more records under the cap: drop those that end first. */
static int
make_room(struct attdb *a, MDB_txn *txn, size_t n)
{
	MDB_stat	 st;
	size_t		 dropped;
	int		 rc;

	if ((rc = mdb_stat(txn, a->counters, &st)) != 0)
		return rc;
	if (st.ms_entries + n <= a->max)
		return 0;
	return prune(a, txn, INT64_MAX, a->max / 16 + n, &dropped);
}

/* ---- reserve, give back ------------------------------------------------------ */

struct op {
	struct attdb		*a;
	struct att_reserve	*r;
	int64_t			 trust_until;
	int			 success;
	int			 nothing;	/* decide_fn ended it unwritten */
	store_lock_cb		 cb;
	void			*cbarg;
	const unsigned char	*key;
	size_t			 keylen, n;
	int			 prefix;
};

/* r's counters and its trust as they are (trust_end 0: none). */
static int
read_all(struct attdb *a, MDB_txn *txn, const struct att_reserve *r,
    struct rec x[ATT_COUNTERS], struct att_value cur[ATT_COUNTERS],
    int64_t *trust_end)
{
	struct rec	 t;
	int		 rc;

	*trust_end = 0;
	if (r->trustlen > 0) {
		if ((rc = rec_get(a, txn, r->trust, r->trustlen, &t)) != 0)
			return rc;
		*trust_end = t.exists ? t.end : 0;
	}
	for (size_t i = 0; i < r->n; i++) {
		if ((rc = rec_get(a, txn, r->c[i].key, r->c[i].keylen,
		    &x[i])) != 0)
			return rc;
		cur[i] = (struct att_value){ x[i].exists, x[i].end,
		    x[i].count };
	}
	return 0;
}

/* One more in each counter, as att_reserve_rule said (next). */
static int
count(struct attdb *a, MDB_txn *txn, struct att_reserve *r,
    const struct att_value cur[], const struct att_value next[])
{
	size_t	 pruned;
	int	 rc;

	if ((rc = make_room(a, txn, r->n)) != 0)
		return rc;
	for (size_t i = 0; i < r->n; i++) {
		struct att_counter *c = &r->c[i];

		/* The subject, kept once the count reaches the limit: for
		 * lock list, and only then (counters stay small). */
		if ((rc = rec_put(a, txn, c->key, c->keylen,
		    cur[i].exists ? cur[i].end : 0, next[i].end, next[i].count,
		    next[i].count >= c->limit ? c->subject : NULL,
		    next[i].count >= c->limit ? strlen(c->subject) : 0)) != 0)
			return rc;
	}
	return prune(a, txn, r->now, PRUNE_PER_TXN, &pruned);
}

/* The address trusted (until trust_end, 0: not) anew until until, if
 * att_trust_rule says. */
static int
trust(struct attdb *a, MDB_txn *txn, const struct att_reserve *r,
    int64_t until, int64_t trust_end)
{
	if (r->trustlen == 0 || until <= r->now ||
	    !att_trust_rule(trust_end, until))
		return 0;
	return rec_put(a, txn, r->trust, r->trustlen, trust_end, until, 0,
	    NULL, 0);
}

/* Counted before its check: a failure decided (store.h). */
int
attdb_reserve(struct attdb *a, struct att_reserve *r)
{
	return attdb_decide(a, r, 0);
}

static int
peek_fn(MDB_txn *txn, void *p)
{
	struct op		*o = p;
	struct rec		 x[ATT_COUNTERS];
	struct att_value	 cur[ATT_COUNTERS];
	int64_t			 trust_end;
	int			 rc;

	if ((rc = read_all(o->a, txn, o->r, x, cur, &trust_end)) != 0)
		return rc;
	att_peek_rule(o->r, cur, trust_end);
	return 0;
}

int
attdb_peek(struct attdb *a, struct att_reserve *r)
{
	struct op o = { .a = a, .r = r };

	return lmdb_run(a->db, 0, peek_fn, &o, &a->rtxn);
}

/* store_attempt_decide: in the counters' write transaction, so that it
 * is decided in turn with every other attempt of these counters. */
static int
decide_fn(MDB_txn *txn, void *p)
{
	struct op		*o = p;
	struct att_reserve	*r = o->r;
	struct rec		 x[ATT_COUNTERS];
	struct att_value	 cur[ATT_COUNTERS], next[ATT_COUNTERS];
	int64_t			 trust_end;
	int			 rc;

	o->nothing = 0;
	if ((rc = read_all(o->a, txn, r, x, cur, &trust_end)) != 0)
		return rc;
	/* Nothing to write (held, or a success that changes nothing): the
	 * transaction ends without a commit, said by o->nothing, not by a
	 * return code another failure could also be. */
	if (!o->success) {
		if (att_reserve_rule(r, cur, trust_end > r->now, next) == 0)
			return count(o->a, txn, r, cur, next);
		o->nothing = 1;
		return MDB_NOTFOUND;
	}
	att_peek_rule(r, cur, trust_end);
	if (r->locked_until > r->now || !r->settle) {
		o->nothing = 1;
		return MDB_NOTFOUND;
	}
	for (size_t i = 0; i < r->n; i++)
		if (att_settle_rule(&r->c[i], &cur[i], r->now) &&
		    (rc = rec_del(o->a, txn, r->c[i].key, r->c[i].keylen,
		    x[i].end)) != 0)
			return rc;
	return trust(o->a, txn, r, r->trust_until, trust_end);
}

int
attdb_decide(struct attdb *a, struct att_reserve *r, int ok)
{
	struct op	 o = { .a = a, .r = r, .success = ok };
	int		 rc;

	rc = lmdb_run(a->db, 1, decide_fn, &o, NULL);
	return o.nothing && rc == MDB_NOTFOUND ? 0 : rc;
}

/* A reserved attempt that was not a failure: each counter as the rule
 * says; after a success, the address trusted until trust_until. */
static int
giveback_fn(MDB_txn *txn, void *p)
{
	struct op		*o = p;
	struct att_reserve	*r = o->r;
	struct rec		 x;
	struct att_value	 cur, next;
	size_t			 pruned;
	int			 rc;

	for (size_t i = 0; i < r->n; i++) {
		struct att_counter *c = &r->c[i];

		if ((rc = rec_get(o->a, txn, c->key, c->keylen, &x)) != 0)
			return rc;
		cur = (struct att_value){ x.exists, x.end, x.count };
		switch (att_giveback_rule(c, &cur, o->success, &next)) {
		case 1:
			rc = rec_del(o->a, txn, c->key, c->keylen, x.end);
			break;
		case 0:
			rc = rec_put(o->a, txn, c->key, c->keylen, x.end,
			    next.end, next.count, x.subject, x.subject_len);
			break;
		default:
			rc = 0;
			break;
		}
		if (rc != 0)
			return rc;
	}
	if (o->success && r->trustlen > 0) {
		if ((rc = rec_get(o->a, txn, r->trust, r->trustlen, &x)) != 0 ||
		    (rc = trust(o->a, txn, r, o->trust_until, x.exists ?
		    x.end : 0)) != 0)
			return rc;
	}
	return prune(o->a, txn, r->now, PRUNE_PER_TXN, &pruned);
}

int
attdb_giveback(struct attdb *a, struct att_reserve *r, int success,
    int64_t trust_until)
{
	struct op o = { .a = a, .r = r, .success = success,
	    .trust_until = trust_until };

	return lmdb_run(a->db, 1, giveback_fn, &o, NULL);
}

/* ---- locks, for crmauthctl ---------------------------------------------------- */

static int
list_fn(MDB_txn *txn, void *p)
{
	struct op	*o = p;
	MDB_cursor	*c;
	MDB_val		 key, val;
	int		 rc;

	if ((rc = mdb_cursor_open(txn, o->a->counters, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		const unsigned char *k = key.mv_data;

		if (key.mv_size == 0 || key.mv_size > ATT_KEY_MAX) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (k[0] == 'T' || val.mv_size <= VAL_HEAD)
			continue;	/* never reached a limit */
		if (val.mv_size > VAL_MAX) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (o->cb(o->cbarg, k[0], (const char *)val.mv_data +
		    VAL_HEAD, val.mv_size - VAL_HEAD,
		    get_be32((unsigned char *)val.mv_data + 8),
		    (int64_t)get_be64(val.mv_data)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
attdb_locks(struct attdb *a, store_lock_cb cb, void *arg)
{
	struct op o = { .a = a, .cb = cb, .cbarg = arg };

	return lmdb_run(a->db, 0, list_fn, &o, &a->rtxn);
}

static int
clear_fn(MDB_txn *txn, void *p)
{
	struct op	*o = p;
	MDB_cursor	*c;
	MDB_val		 key, val;
	unsigned char	 k[ATT_KEY_MAX];
	int		 rc;

	o->n = 0;
	if ((rc = mdb_cursor_open(txn, o->a->counters, &c)) != 0)
		return rc;
	for (;;) {
		/* Seek afresh after each deletion. */
		key.mv_size = o->keylen;
		key.mv_data = (void *)o->key;
		rc = mdb_cursor_get(c, &key, &val,
		    o->prefix ? MDB_SET_RANGE : MDB_SET_KEY);
		if (rc != 0)
			break;
		if (key.mv_size < o->keylen || key.mv_size > ATT_KEY_MAX ||
		    memcmp(key.mv_data, o->key, o->keylen) != 0)
			break;
		if (val.mv_size < 8) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(k, key.mv_data, key.mv_size);
		if ((rc = rec_del(o->a, txn, k, key.mv_size,
		    (int64_t)get_be64(val.mv_data))) != 0)
			break;
		o->n++;
		if (!o->prefix)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

int
attdb_clear(struct attdb *a, const unsigned char *key, size_t keylen,
    int prefix, size_t *n)
{
	struct op	 o = { .a = a, .key = key, .keylen = keylen,
			    .prefix = prefix };
	int		 rc;

	rc = lmdb_run(a->db, 1, clear_fn, &o, NULL);
	*n = rc == 0 ? o.n : 0;
	return rc;
}

static int
prune_all_fn(MDB_txn *txn, void *p)
{
	struct op *o = p;

	return prune(o->a, txn, o->r->now, 0, &o->n);
}

int
attdb_prune(struct attdb *a, int64_t now, size_t *n)
{
	struct att_reserve	 r = { .now = now };
	struct op		 o = { .a = a, .r = &r };
	int			 rc;

	rc = lmdb_run(a->db, 1, prune_all_fn, &o, NULL);
	*n = rc == 0 ? o.n : 0;
	return rc;
}

struct usage {
	size_t	 bytes, records;
	MDB_dbi	 counters;
	MDB_env	*env;
};

static int
usage_fn(MDB_txn *txn, void *p)
{
	struct usage	*u = p;
	MDB_envinfo	 info;
	MDB_stat	 st;
	int		 rc;

	if ((rc = mdb_env_info(u->env, &info)) != 0 ||
	    (rc = mdb_env_stat(u->env, &st)) != 0)
		return rc;
	u->bytes = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
	if ((rc = mdb_stat(txn, u->counters, &st)) != 0)
		return rc;
	u->records = st.ms_entries;
	return 0;
}

int
attdb_usage(struct attdb *a, size_t *bytes, size_t *records)
{
	struct usage	 u = { 0, 0, a->counters, lmdb_env(a->db) };
	int		 rc;

	rc = lmdb_run(a->db, 0, usage_fn, &u, &a->rtxn);
	*bytes = u.bytes;
	*records = u.records;
	return rc;
}
