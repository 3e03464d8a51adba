/*
 * The LMDB store's keys and records (lmdb_store.h).  Records are binary:
 * a format byte, then the fields in a fixed order (lmdb_store.h says
 * how); reading one checks every length against its field and the
 * record, and that nothing is left over, so a damaged or foreign record
 * is refused (RC_CORRUPT), never half-read.
 */
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

int
lm_put_rec(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen,
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

void
lm_user_key(unsigned char k[CRM_DIGEST_BYTES], const char *org, const char *user)
{
	sec_tagged_hash(k, 'U', org, user, strlen(user));
}

int
lm_user_decode(const MDB_val *v, struct user_rec *r, char *org, char *user)
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
int
lm_user_read(struct lstore *st, MDB_txn *txn, const char *org, const char *user,
    struct user_rec *r)
{
	unsigned char	 k[CRM_DIGEST_BYTES];
	MDB_val		 key = { sizeof(k), k }, val;
	int		 rc;

	lm_user_key(k, org, user);
	if ((rc = mdb_get(txn, st->users, &key, &val)) != 0)
		return rc;
	return lm_user_decode(&val, r, NULL, NULL);
}

int
lm_user_write(struct lstore *st, MDB_txn *txn, const char *org, const char *user,
    const struct user_rec *r, unsigned flags)
{
	unsigned char	 k[CRM_DIGEST_BYTES];
	struct rec_out	 w;

	lm_user_key(k, org, user);
	rec_start(&w);
	w_str(&w, org);
	w_str(&w, user);
	w_str(&w, r->pwhash);
	w_units(&w, r->units, r->nunits);
	w_bool(&w, r->disabled);
	w_i64(&w, r->created);
	w_i64(&w, r->not_before);
	return lm_put_rec(txn, st->users, k, sizeof(k), &w, flags);
}

int
lm_apikey_decode(const MDB_val *v, struct apikey_rec *r)
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

int
lm_consumer_decode(const MDB_val *v, struct consumer_rec *r)
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

void
lm_apikey_encode(struct rec_out *w, const struct apikey_rec *r)
{
	rec_start(w);
	w_str(w, r->org);
	w_str(w, r->user);
	w_bool(w, r->revoked);
	w_i64(w, r->created);
}

void
lm_consumer_encode(struct rec_out *w, const struct consumer_rec *r)
{
	rec_start(w);
	w_str(w, r->org);
	w_str(w, r->app);
	w_units(w, r->units, r->nunits);
	w_bool(w, r->revoked);
	w_i64(w, r->created);
}

/* Cut off what a consumer application was issued up to now. */
int
lm_app_cutoff_put(struct lstore *st, MDB_txn *txn, const char *org,
    const char *app, int64_t now)
{
	unsigned char	 k[CRM_DIGEST_BYTES], v[8];
	MDB_val		 key = { sizeof(k), k }, val = { sizeof(v), v };

	sec_tagged_hash(k, 'A', org, app, strlen(app));
	put_be64(v, (uint64_t)now);
	return mdb_put(txn, st->cutoffs, &key, &val, 0);
}

/* The time up to which an application's tokens are cut off, 0 if none. */
int
lm_app_cutoff_get(struct lstore *st, MDB_txn *txn, const char *org,
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

void
lm_access_owner(struct access_owner *o, const char *org,
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
int
lm_access_decode(const MDB_val *val, struct access_rec *r,
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
		if (kind[0] != 'C' && kind[0] != 'K' && kind[0] != 'I')
			in.bad = 1;
		w->kind = kind[0];
	}
	return rec_end(&in);
}

int
lm_access_read(struct lstore *st, MDB_txn *txn, const unsigned char *k,
    struct access_rec *r, struct access_owner *o)
{
	MDB_val		 key = { CRM_DIGEST_BYTES, (void *)k }, val;
	int		 rc;

	if ((rc = mdb_get(txn, st->access, &key, &val)) != 0)
		return rc;
	return lm_access_decode(&val, r, o);
}

/* o->kind 0: a REC_V1 record (an imported one that never said). */
int
lm_access_write(struct lstore *st, MDB_txn *txn, const unsigned char *k,
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
		w_str(&w, o->kind == 'C' ? "C" : o->kind == 'K' ? "K" : "I");
		w_str(&w, o->org);
		w_str(&w, o->lookup);
	}
	return lm_put_rec(txn, st->access, k, CRM_DIGEST_BYTES, &w, flags);
}

int
lm_sigkey_decode(const MDB_val *k, const MDB_val *v, struct sigkey *out)
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

int
lm_sigkey_put(struct lstore *st, MDB_txn *txn, const struct sigkey *k,
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

int
lm_current_kid(struct lstore *st, MDB_txn *txn, char kid[CRM_KID_HEX + 1])
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
