/*
 * The PostgreSQL backend's whole-store copies (pgsql.h, store.h): every
 * record read from one snapshot, for crmauthctl export; and loaded into
 * an empty database in one transaction, in round trips of LOAD_BATCH
 * statements, for crmauthctl import (export.c reads and checks the file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"
#include "pgsql.h"

/* A row of one of the lists as a record; -1 when it is not ours, 1 when
 * it is not to be given. */
typedef int (*row_fn)(struct pstore *, const PGresult *, int, struct xrec *,
	    int64_t now);

static int
row_user(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_USER;
	return pg_str(r, row, 0, x->org, sizeof(x->org)) == -1 ||
	    pg_str(r, row, 1, x->name, sizeof(x->name)) == -1 ||
	    pg_get_user(r, row, 2, &x->u.user) == -1 ? -1 : 0;
}

static int
row_apikey(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_APIKEY;
	return pg_bytes(r, row, 0, x->digest, sizeof(x->digest)) == -1 ||
	    pg_get_apikey(r, row, 1, &x->u.apikey) == -1 ? -1 : 0;
}

static int
row_consumer(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_CONSUMER;
	return pg_bytes(r, row, 0, x->digest, sizeof(x->digest)) == -1 ||
	    pg_get_consumer(r, row, 1, &x->u.consumer) == -1 ? -1 : 0;
}

static int
row_access(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	char	 kind[2], lookup[CRM_NAME_MAX + 1];

	x->kind = XR_ACCESS;
	if (pg_str(r, row, 0, x->org, sizeof(x->org)) == -1 ||
	    pg_str(r, row, 1, kind, sizeof(kind)) == -1 ||
	    pg_str(r, row, 2, lookup, sizeof(lookup)) == -1 ||
	    pg_get_access(r, row, 3, &x->u.access) == -1)
		return -1;
	x->access_kind = kind[0];
	if (kind[0] == 'C' && strncmp(lookup, CODE_KEYED,
	    sizeof(CODE_KEYED) - 1) == 0) {
		x->access_kind = 'K';
		memmove(lookup, lookup + sizeof(CODE_KEYED) - 1,
		    strlen(lookup) - (sizeof(CODE_KEYED) - 1) + 1);
	}
	if (kind[0] == 'I') {
		memcpy(x->name, lookup, sizeof(lookup));
		store_access_id(x->id, x->org, NULL, x->name);
	} else if (kind[0] == 'C' && sec_unhex(x->digest, CRM_DIGEST_BYTES,
	    lookup, strlen(lookup)) == 0)
		store_access_id(x->id, x->org, x->digest, NULL);
	else
		return -1;
	return 0;
}

static int
row_sigkey(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_SIGKEY;
	if (pg_get_sigkey(st, r, row, 0, &x->u.key) == -1)
		return -1;
	return !x->u.key.current && x->u.key.expires <= now ? 1 : 0;
}

static int
row_released(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_RELEASED;
	x->u.rel.exp = pg_i64(r, row, 1);
	return pg_bytes(r, row, 0, x->u.rel.jti, CRM_JTI_BYTES);
}

static int
row_cutoff(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_CUTOFF;
	x->u.cutoff = pg_i64(r, row, 2);
	return pg_str(r, row, 0, x->org, sizeof(x->org)) == -1 ||
	    pg_str(r, row, 1, x->name, sizeof(x->name)) == -1 ? -1 : 0;
}

enum store_err
pgsql_dump(struct store *s, store_xrec_cb cb, void *arg)
{
	static const struct {
		enum q	 q;
		row_fn	 fn;
	} lists[] = {
		{ Q_USER_LIST, row_user }, { Q_APIKEY_LIST, row_apikey },
		{ Q_CONSUMER_LIST, row_consumer },
		{ Q_ACCESS_LIST, row_access }, { Q_SIGKEY_LIST, row_sigkey },
		{ Q_RELEASED_LIST, row_released },
		{ Q_CUTOFF_LIST, row_cutoff },
	};
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_SNAPSHOT };
	struct num	 t;
	struct xrec	*x;
	int64_t		 now = (int64_t)time(NULL);
	enum store_err	 e;
	int		 rc, stop = 0;

	if ((x = malloc(sizeof(*x))) == NULL)
		return STORE_ERROR;
	/* Every list from one snapshot. */
	if ((e = pq_run(st, "export", &q, 1, CONNECT)) != STORE_OK) {
		free(x);
		return pg_rollback(st, "export", e);
	}
	pq_clear(&q, 1);
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]) && !stop &&
	    e == STORE_OK; i++) {
		q = (struct pq){ .q = lists[i].q };
		if (lists[i].q == Q_RELEASED_LIST)
			pg_param(&q, pg_num(&t, now));
		if ((e = pq_run(st, "export", &q, 1, CONTINUE)) != STORE_OK)
			break;
		for (int row = 0; row < PQntuples(q.res) && !stop; row++) {
			memset(x, 0, sizeof(*x));
			if ((rc = lists[i].fn(st, q.res, row, x, now)) == -1) {
				e = pg_damaged(st, "export");
				break;
			}
			if (rc == 0)
				stop = cb(arg, x) != 0;
		}
		pq_clear(&q, 1);
	}
	explicit_bzero(x, sizeof(*x));
	free(x);
	return pg_rollback(st, "export", e);	/* a read: nothing to keep */
}

/* Import in round trips of this many records. */
#define LOAD_BATCH	100

struct load_batch {
	struct pq	 q[LOAD_BATCH];
	struct xrec	 x[LOAD_BATCH];
	struct num	 nums[LOAD_BATCH][2];
	char		*units[LOAD_BATCH];
	unsigned char	 sealed[LOAD_BATCH][SEALED_BYTES];
	char		 kind[LOAD_BATCH][2];
	char		 may_skip[LOAD_BATCH];	/* 0 rows is no error */
	char		 hex[LOAD_BATCH][sizeof(CODE_KEYED) +
			    2 * CRM_DIGEST_BYTES];
	int		 n;
};

/* The statement that inserts b->x[i] (each does nothing when its row is
 * there already: one found is a record given twice). */
static int
load_params(struct pstore *st, struct load_batch *b, int i)
{
	struct xrec	*x = &b->x[i];
	struct pq	*q = &b->q[i];
	unsigned char	 d[CRM_DIGEST_BYTES];
	const char	*lookup;

	*q = (struct pq){ 0 };
	b->units[i] = NULL;
	b->may_skip[i] = 0;
	switch (x->kind) {
	case XR_USER:
		q->q = Q_USER_ADD;
		return pg_user_params(q, x->org, x->name, &x->u.user, b->nums[i],
		    &b->units[i]);
	case XR_APIKEY:
		q->q = Q_APIKEY_ADD;
		pg_param_bytes(q, x->digest, CRM_DIGEST_BYTES);
		pg_param(q, x->u.apikey.org);
		pg_param(q, x->u.apikey.user);
		pg_param(q, x->u.apikey.revoked ? "t" : "f");
		pg_param(q, pg_num(&b->nums[i][0], x->u.apikey.created));
		return 0;
	case XR_CONSUMER:
		q->q = Q_CONSUMER_ADD;
		if ((b->units[i] = pg_units_json(x->u.consumer.units,
		    x->u.consumer.nunits)) == NULL)
			return -1;
		pg_param_bytes(q, x->digest, CRM_DIGEST_BYTES);
		pg_param(q, x->u.consumer.org);
		pg_param(q, x->u.consumer.app);
		pg_param(q, b->units[i]);
		pg_param(q, x->u.consumer.revoked ? "t" : "f");
		pg_param(q, pg_num(&b->nums[i][0], x->u.consumer.created));
		return 0;
	case XR_ACCESS:
		if (x->access_kind == 0) {
			snprintf(st->base.detail, sizeof(st->base.detail),
			    "line %ld: an access token that does not say "
			    "whose it is (from an LMDB store older than its "
			    "owner's record): it can be imported into LMDB "
			    "only", x->line);
			return -1;
		}
		/* As exported: a code keyed, or by its SHA-256 (from LMDB, or
		 * not used since codes were keyed: keyed at its first use). */
		/* A file may hold a code both ways (exported before init
		 * keyed the plain one): the keyed record wins, in whichever
		 * order the two come. */
		q->q = x->access_kind == 'K' ? Q_ACCESS_LOAD_KEYED : Q_ACCESS_ADD;
		b->may_skip[i] = x->access_kind == 'C' && st->have_wrap;
		b->kind[i][0] = x->access_kind == 'I' ? 'I' : 'C';
		b->kind[i][1] = '\0';
		if (x->access_kind == 'K')
			pg_code_keyed(b->hex[i], x->digest);
		else if (x->access_kind == 'C' && st->have_wrap) {
			/* Keyed from its digest, as init does. */
			store_code_keyed(d, st->wrap, x->digest);
			pg_code_keyed(b->hex[i], d);
		} else if (x->access_kind == 'C')
			sec_hex(b->hex[i], x->digest, CRM_DIGEST_BYTES);
		lookup = x->access_kind == 'I' ? x->name : b->hex[i];
		pg_param(q, x->org);
		pg_param(q, b->kind[i]);
		pg_param(q, lookup);
		pg_param(q, x->u.access.contact);
		pg_param(q, x->u.access.ari);
		pg_param(q, x->u.access.passhash);
		pg_param(q, pg_num(&b->nums[i][0], x->u.access.created));
		if (q->q == Q_ACCESS_ADD)
			pg_param(q, NULL);	/* no plain twin to look for */
		return 0;
	case XR_SIGKEY:
		q->q = Q_SIGKEY_LOAD;
		return pg_sigkey_params(st, q, &x->u.key, b->sealed[i],
		    b->nums[i]);
	case XR_RELEASED:
		q->q = Q_RELEASED_LOAD;
		pg_param_bytes(q, x->u.rel.jti, CRM_JTI_BYTES);
		pg_param(q, pg_num(&b->nums[i][0], x->u.rel.exp));
		return 0;
	case XR_CUTOFF:
		q->q = Q_CUTOFF_LOAD;
		pg_param(q, x->org);
		pg_param(q, x->name);
		pg_param(q, pg_num(&b->nums[i][0], x->u.cutoff));
		return 0;
	}
	return -1;
}

/* The batch's statements in one round trip of the transaction. */
static enum store_err
load_flush(struct pstore *st, struct load_batch *b)
{
	enum store_err	 e;
	int		 i;

	if (b->n == 0)
		return STORE_OK;
	e = pq_run(st, "import", b->q, b->n, CONTINUE);
	for (i = 0; e == STORE_OK && i < b->n; i++)
		if (pg_changed(b->q[i].res) != 1 && !b->may_skip[i]) {
			/* Q_APIKEY_ADD writes a key only with its user. */
			if (b->x[i].kind == XR_APIKEY)
				snprintf(st->base.detail,
				    sizeof(st->base.detail), "line %ld: a Web "
				    "API key of user %s in organisation %s, who "
				    "is not in the file (before it), or the same "
				    "key twice", b->x[i].line,
				    b->x[i].u.apikey.user, b->x[i].u.apikey.org);
			else
				snprintf(st->base.detail,
				    sizeof(st->base.detail), "line %ld: a "
				    "record that is there already (the same "
				    "record twice)", b->x[i].line);
			e = STORE_EXISTS;
		}
	pq_clear(b->q, b->n);
	for (i = 0; i < b->n; i++)
		free(b->units[i]);
	explicit_bzero(b->x, sizeof(b->x));
	explicit_bzero(b->sealed, sizeof(b->sealed));
	b->n = 0;
	return e;
}

enum store_err
pgsql_load(struct store *s, struct xsource *src)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 b[3] = { { .q = Q_BEGIN }, { .q = Q_EMPTY },
				    { .q = Q_SIGKEY_CLEAR } };
	struct pq		 c = { .q = Q_COMMIT };
	struct load_batch	*lb;
	enum store_err		 e;
	int			 more = 0, empty;

	st->base.detail[0] = '\0';
	if (!st->have_wrap)
		return pg_damaged(st, "import");
	if ((lb = calloc(1, sizeof(*lb))) == NULL)
		return STORE_ERROR;
	src->rewind(src);
	/* The emptiness seen is the one the inserts see: a second import
	 * at once finds the rows of the first and fails. */
	if ((e = pq_run(st, "import", b, 3, CONNECT)) != STORE_OK) {
		free(lb);
		return pg_rollback(st, "import", e);
	}
	empty = !pg_bool(b[1].res, 0, 0);
	pq_clear(b, 3);
	if (!empty) {
		snprintf(st->base.detail, sizeof(st->base.detail), "import: the "
		    "store is not empty (import loads an empty store only)");
		e = STORE_EXISTS;
	}
	while (e == STORE_OK && (more = src->next(src, &lb->x[lb->n])) == 1) {
		if (load_params(st, lb, lb->n) == -1) {
			free(lb->units[lb->n]);
			e = st->base.detail[0] != '\0' ? STORE_ERROR :
			    pg_damaged(st, "import");
			break;
		}
		if (++lb->n == LOAD_BATCH)
			e = load_flush(st, lb);
	}
	if (e == STORE_OK && more == -1)
		e = STORE_ERROR;	/* the source says why */
	if (e == STORE_OK)
		e = load_flush(st, lb);
	else {
		for (int i = 0; i < lb->n; i++)
			free(lb->units[i]);
		explicit_bzero(lb, sizeof(*lb));
	}
	free(lb);
	if (e != STORE_OK)
		return pg_rollback(st, "import", e);
	if ((e = pq_run(st, "import", &c, 1, CONTINUE)) == STORE_OK)
		pq_clear(&c, 1);
	return e;
}

