/*
 * The store: what crmauth keeps, behind one interface with one backend
 * per engine.  Postfix's DICT is the model: a struct of functions that
 * each backend fills in, one file per backend, a table from names to
 * open functions (store.c).  Callers never know which backend they hold.
 *
 *   store.c		opening by name; the rules that do not depend on the
 *			engine (counting attempts, schema versions, names,
 *			access tokens' ids)
 *   export.c		crmauthctl export and import: the file, checked
 *   store_lmdb.c	LMDB: one environment on one machine (lmdb_store.h:
 *			lmdb_records.c, lmdb_copy.c; lmdb_env.h: lmdb_env.c,
 *			lmdb_attempts.c)
 *   store_pgsql.c	PostgreSQL: one database for many web nodes
 *			(pgsql.h: pgsql_conn.c, pgsql_copy.c)
 *
 * Included by extern.h, after the configuration and crypto sections it
 * uses: include extern.h, not this.
 */
#ifndef STORE_H
#define STORE_H

enum store_err {
	STORE_OK = 0,
	STORE_NOTFOUND,		/* no such record */
	STORE_EXISTS,		/* record already there */
	STORE_NOTINIT,		/* no store at db_path, or not initialised */
	STORE_VERSION,		/* schema newer than this program */
	STORE_FULL,		/* map at db_map_max_mb or disk full */
	STORE_CORRUPT,		/* a record we cannot decode */
	STORE_ERROR,		/* any other engine or system failure */
	STORE_UNAVAILABLE,	/* the database server cannot be reached */
};
const char *store_strerror(enum store_err);

#define STORE_SCHEMA_VERSION 1

/* store_open() flags */
/* The length of a wrap.key's id in an export (store_code_key_id()). */
#define CODE_KEY_ID_HEX	16
#define STORE_CREATE	0x1	/* make what is missing (crmauthctl init) */
#define STORE_RDONLY	0x2	/* never write, not even pruning (library) */

/* Released ids past their exp deleted by each write, at most. */
#define STORE_PRUNE_BATCH	64

struct user_rec {
	char		 pwhash[CRM_PWHASH_MAX];
	char		 units[CRM_UNITS_MAX][CRM_NAME_MAX + 1];
	size_t		 nunits;	/* >= 1; units[0] is the default */
	int		 disabled;
	int64_t		 created;
	/* Tokens issued at or before this time are refused: set by logout,
	 * disable, and revoking one of the user's Web API keys. */
	int64_t		 not_before;
};

struct apikey_rec {
	char		 org[CRM_NAME_MAX + 1];
	char		 user[CRM_NAME_MAX + 1];
	int		 revoked;
	int64_t		 created;
};

struct consumer_rec {
	char		 org[CRM_NAME_MAX + 1];
	char		 app[CRM_NAME_MAX + 1];
	char		 units[CRM_UNITS_MAX][CRM_NAME_MAX + 1];
	size_t		 nunits;
	int		 revoked;
	int64_t		 created;
};

/* An access token: either kind of identification. */
struct access_rec {
	char		 contact[CRM_NAME_MAX + 1];	/* cii */
	char		 ari[CRM_NAME_MAX + 1];		/* may be "" */
	char		 passhash[CRM_PWHASH_MAX];	/* identifier kind only */
	int64_t		 created;
};

struct sigkey {
	char		 kid[CRM_KID_HEX + 1];
	unsigned char	 secret[CRM_SIGKEY_BYTES];
	int64_t		 created;
	int64_t		 expires;	/* 0 while current; else deleted then */
	int		 current;
};

/*
 * What each token method reads, in one read transaction: the records
 * it needs (each with a found flag; the rest empty, lookup_reset) and
 * the current signing key.  STORE_OK even when records are missing; an
 * error only when the store could not be read.
 */
struct lookup {
	struct sigkey		 key;		/* current signing key */
	struct user_rec		 user;
	struct apikey_rec	 apikey;
	struct consumer_rec	 consumer;
	struct access_rec	 access;
	int64_t			 app_cutoff;	/* the consumer's application */
	int			 user_found, apikey_found, consumer_found;
	int			 access_found;
	int			 access_legacy;	/* store_access_rekey() it */
};
/* Whom a token was issued to: a user (org, user), or a consumer
 * application (org, application name), whose tokens carry cii. */
struct principal {
	int		 consumer;
	const char	*org, *name;
};
/* What checking a token needs, in one read: its signing key, whether
 * its jti was released, and its principal's state. */
struct tok_state {
	struct sigkey	 key;
	int		 key_found;
	int		 released;
	int		 principal_found;	/* users: the user exists */
	int		 disabled;
	int64_t		 created;	/* users: when the user was added */
	int64_t		 cutoff;	/* tokens with iat <= cutoff refused */
};
/*
 * Failed attempts (throttle.c decides what to count; the store counts).
 * A counter has a key (a type byte: 'P' pair, 'A' account, 'N' address,
 * then digests), a window that starts with its first count and lasts
 * lockout_window, and a limit.  Counting is not durable (a counter lost
 * in a crash costs nothing that matters) and never waits for releases.
 */
#define ATT_KEY_MAX	(1 + 16 + 8)
#define ATT_SUBJECT_MAX	640	/* "kind\torg\tname\taddress", for lock list */
#define ATT_COUNTERS	3
struct att_counter {
	unsigned char	 key[ATT_KEY_MAX];
	size_t		 keylen;
	uint32_t	 limit;
	int		 exempt;	/* a trusted address is not held by it */
	int		 clear;		/* a success deletes it */
	const char	*subject;	/* kept once the limit is reached */
	int64_t		 end;		/* out: the window it counted in */
};
struct att_reserve {
	struct att_counter c[ATT_COUNTERS];
	size_t		 n;
	unsigned char	 trust[ATT_KEY_MAX];	/* the (account, address) */
	size_t		 trustlen;		/* 0: no trust */
	int64_t		 now, window;
	int64_t		 trust_until;	/* a success trusts the address until
					 * then (0: it does not) */
	int		 trusted;		/* out */
	int64_t		 locked_until;		/* out: > now when refused */
	int		 settle;	/* out of a peek: a success would
					 * write (a pair to clear, a trust) */
};
struct store_stats {
	size_t		 released;	/* released ids kept */
	int64_t		 key_created;	/* the current signing key's */
};
/* Listing for crmauthctl: the callback gets each record in key order;
 * a non-zero return stops the walk.  org NULL lists all. */
typedef int (*store_user_cb)(void *, const char *org, const char *user,
	    const struct user_rec *);
typedef int (*store_apikey_cb)(void *,
	    const unsigned char digest[CRM_DIGEST_BYTES],
	    const struct apikey_rec *);
typedef int (*store_consumer_cb)(void *,
	    const unsigned char digest[CRM_DIGEST_BYTES],
	    const struct consumer_rec *);
typedef int (*store_sigkey_cb)(void *, const struct sigkey *);
/* A counter at its limit: its type, subject, count and window end. */
typedef int (*store_lock_cb)(void *, char type, const char *subject,
	    size_t len, uint32_t count, int64_t end);
/* Changes a user in place; see store_user_change(). */
typedef int (*user_change_fn)(struct user_rec *, void *);

/*
 * A record of a whole-store copy (crmauthctl export and import, export.c):
 * every kind of record the store keeps, counters aside.
 */
enum xkind {
	XR_USER = 1,	/* org, name, u.user */
	XR_APIKEY,	/* digest (of the key), u.apikey */
	XR_CONSUMER,	/* digest (of the key), u.consumer */
	XR_ACCESS,	/* id, access_kind, org, and name (identifier) or
			 * digest (of the code); u.access */
	XR_SIGKEY,	/* u.key */
	XR_RELEASED,	/* u.rel */
	XR_CUTOFF,	/* org, name (application), u.cutoff */
};
struct xrec {
	enum xkind	 kind;
	long		 line;		/* import: where it was read, or 0 */
	char		 org[CRM_NAME_MAX + 1];
	char		 name[CRM_NAME_MAX + 1];
	unsigned char	 digest[CRM_DIGEST_BYTES];
	unsigned char	 id[CRM_DIGEST_BYTES];	/* store_access_id() */
	/* 'C' authentication code (digest its SHA-256), 'K' one that a
	 * PostgreSQL store keeps keyed (digest the HMAC, pg_access_key()),
	 * 'I' identifier; 0 when the record does not say (LMDB stores made
	 * before crmauth 0.2 kept only the id). */
	char		 access_kind;
	union {
		struct user_rec		 user;
		struct apikey_rec	 apikey;
		struct consumer_rec	 consumer;
		struct access_rec	 access;
		struct sigkey		 key;
		struct {
			unsigned char	 jti[CRM_JTI_BYTES];
			int64_t		 exp;
		}			 rel;
		int64_t			 cutoff;
	} u;
};
/* export: each record; a non-zero return stops the walk. */
typedef int (*store_xrec_cb)(void *, const struct xrec *);
/* import: the records, from the first again after rewind(). */
struct xsource {
	/* 1 and the next record in *r, 0 at the end, -1 to stop (nothing
	 * is written; the source says why). */
	int	 (*next)(struct xsource *, struct xrec *r);
	void	 (*rewind)(struct xsource *);
};

struct store;

/*
 * What a backend does.  Each function is one transaction (reads see one
 * snapshot; writes commit durably or not at all, and prune a batch of
 * expired releases along the way), sets st->detail on failure, and is
 * described at its wrapper below.
 */
struct store_ops {
	const char	*name;
	void		(*close)(struct store *);
	/* reads */
	enum store_err	(*ping)(struct store *);
	enum store_err	(*user_get)(struct store *, const char *, const char *,
			    struct user_rec *);
	enum store_err	(*apikey_get)(struct store *, const unsigned char *,
			    struct apikey_rec *);
	enum store_err	(*consumer_get)(struct store *, const unsigned char *,
			    struct consumer_rec *);
	enum store_err	(*access_get)(struct store *, const char *,
			    const unsigned char *, const char *,
			    struct access_rec *);
	enum store_err	(*sigkey_get)(struct store *, const char *,
			    struct sigkey *);
	enum store_err	(*lookup_user)(struct store *, const char *,
			    const char *, struct lookup *);
	enum store_err	(*lookup_apikey)(struct store *, const unsigned char *,
			    struct att_reserve *, struct lookup *);
	enum store_err	(*lookup_consumer)(struct store *,
			    const unsigned char *, const unsigned char *,
			    const char *, struct att_reserve *,
			    struct lookup *);
	enum store_err	(*token_state)(struct store *, const char *,
			    const unsigned char *, const struct principal *,
			    struct tok_state *);
	enum store_err	(*released_get)(struct store *, const unsigned char *,
			    int64_t *);
	enum store_err	(*stats)(struct store *, struct store_stats *);
	/* writes */
	enum store_err	(*user_add)(struct store *, const char *, const char *,
			    const struct user_rec *);
	enum store_err	(*user_change)(struct store *, const char *,
			    const char *, user_change_fn, void *,
			    struct user_rec *);
	enum store_err	(*user_del)(struct store *, const char *, const char *);
	enum store_err	(*apikey_put)(struct store *, const unsigned char *,
			    const struct apikey_rec *, int);
	enum store_err	(*consumer_put)(struct store *, const unsigned char *,
			    const struct consumer_rec *, int);
	enum store_err	(*access_add)(struct store *, const char *,
			    const unsigned char *, const char *,
			    const struct access_rec *);
	enum store_err	(*access_rehash)(struct store *, const char *,
			    const char *, const char *, const char *);
	enum store_err	(*access_rekey)(struct store *, const char *,
			    const unsigned char *);	/* may be NULL */
	enum store_err	(*key_revoke)(struct store *, int,
			    const unsigned char *, int64_t, int);
	enum store_err	(*sigkey_rotate)(struct store *, int64_t, int64_t,
			    struct sigkey *, struct sigkey *);
	enum store_err	(*sigkey_retire)(struct store *, const char *,
			    struct sigkey *, int *);
	enum store_err	(*release)(struct store *, const unsigned char *,
			    int64_t, int64_t);
	enum store_err	(*released_prune)(struct store *, int64_t, size_t *);
	/* failed attempts */
	enum store_err	(*attempt_reserve)(struct store *,
			    struct att_reserve *);
	enum store_err	(*attempt_giveback)(struct store *,
			    struct att_reserve *, int, int64_t);
	enum store_err	(*attempt_decide)(struct store *,
			    struct att_reserve *, int);
	enum store_err	(*lock_list)(struct store *, store_lock_cb, void *);
	enum store_err	(*lock_clear)(struct store *, const unsigned char *,
			    size_t, int, size_t *);
	enum store_err	(*attempts_prune)(struct store *, int64_t, size_t *);
	enum store_err	(*attempts_usage)(struct store *, size_t *, size_t *);
	/* listing */
	enum store_err	(*user_list)(struct store *, const char *,
			    store_user_cb, void *);
	enum store_err	(*apikey_list)(struct store *, store_apikey_cb,
			    void *);
	enum store_err	(*consumer_list)(struct store *, store_consumer_cb,
			    void *);
	enum store_err	(*sigkey_list)(struct store *, store_sigkey_cb,
			    void *);
	/* whole store */
	enum store_err	(*backup)(struct store *, const char *);
	enum store_err	(*dump)(struct store *, store_xrec_cb, void *);
	/* store_code_key_id() of its wrap.key, or "" without one; -1
	 * (detail) when there is one that cannot be read. */
	int		(*code_key)(struct store *, char *);
	enum store_err	(*load)(struct store *, struct xsource *);
};

/* Every backend's handle starts with this. */
struct store {
	const struct store_ops	*ops;
	struct config		 cfg;
	char			 detail[CRM_ERR_MAX];
	const char		*where;	/* what messages call it */
	/* What the last read a token's check makes (token_state, sigkey_get)
	 * gave: the token code says only that the store failed, and
	 * app_store_why() tells metrics why. */
	enum store_err		 checked;
};

/*
 * Open the store cfg->store names.  With STORE_CREATE, make what is
 * missing: the LMDB directory (0700, or 02770 shared with cfg->db_group)
 * and files (0600, or 0660 when shared), or the PostgreSQL tables; the
 * schema version and a first signing key (idempotent).  One store per
 * process is the rule (LMDB handles share one environment; never use one
 * across fork()).  On failure err holds one line naming the store and the
 * problem.
 */
enum store_err store_open(struct store **, const struct config *,
	    int flags, char *err, size_t errlen);
/* Replace the store with a backup (LMDB only; see store_lmdb.c). */
enum store_err store_restore(const struct config *, const char *file,
	    char *err, size_t errlen);

static inline void
store_close(struct store *st)
{
	if (st != NULL)
		st->ops->close(st);
}

/* The last engine or system error text, for logs and crmauthctl. */
static inline const char *
store_detail(const struct store *st)
{
	return st->detail;
}

/* Readable at all: the health check. */
static inline enum store_err
store_ping(struct store *st)
{
	return st->ops->ping(st);
}

/* ---- reads ---------------------------------------------------------------- */

static inline enum store_err
store_user_get(struct store *st, const char *org, const char *user,
    struct user_rec *r)
{
	return st->ops->user_get(st, org, user, r);
}

static inline enum store_err
store_apikey_get(struct store *st,
    const unsigned char digest[CRM_DIGEST_BYTES], struct apikey_rec *r)
{
	return st->ops->apikey_get(st, digest, r);
}

static inline enum store_err
store_consumer_get(struct store *st,
    const unsigned char digest[CRM_DIGEST_BYTES], struct consumer_rec *r)
{
	return st->ops->consumer_get(st, digest, r);
}

/* An access token of org: by the SHA-256 of its authentication code
 * (code not NULL) or by its identifier. */
static inline enum store_err
store_access_get(struct store *st, const char *org,
    const unsigned char *code, const char *ident, struct access_rec *r)
{
	return st->ops->access_get(st, org, code, ident, r);
}

/* A signing key by kid, or (kid NULL) the current one. */
static inline enum store_err
store_sigkey_get(struct store *st, const char *kid, struct sigkey *k)
{
	return st->checked = st->ops->sigkey_get(st, kid, k);
}

static inline enum store_err
store_sigkey_current(struct store *st, struct sigkey *k)
{
	return st->ops->sigkey_get(st, NULL, k);
}

static inline enum store_err
store_lookup_user(struct store *st, const char *org, const char *user,
    struct lookup *l)
{
	return st->ops->lookup_user(st, org, user, l);
}

/* The key and its user.  With r, its counters first, read only (as
 * they are: r->locked_until > r->now when held, r->trusted, r->settle;
 * att_peek_rule): when held, nothing else is read. */
static inline enum store_err
store_lookup_apikey(struct store *st,
    const unsigned char digest[CRM_DIGEST_BYTES], struct att_reserve *r,
    struct lookup *l)
{
	return st->ops->lookup_apikey(st, digest, r, l);
}

/*
 * The consumer key, then the access token in the key's organisation
 * (code or ident, as store_access_get) and the application's cutoff.
 * With r, the attempt at a code: decided in the same read, holding its
 * counters (as store_attempt_decide(ok) with ok the code found): held,
 * r->locked_until > r->now; else a code missed, of a key that is one
 * (not revoked), counted.  A key that is not one is not decided here.
 */
static inline enum store_err
store_lookup_consumer(struct store *st,
    const unsigned char digest[CRM_DIGEST_BYTES], const unsigned char *code,
    const char *ident, struct att_reserve *r, struct lookup *l)
{
	return st->ops->lookup_consumer(st, digest, code, ident, r, l);
}

/* jti and who may be NULL (then only the key is read). */
static inline enum store_err
store_token_state(struct store *st, const char *kid,
    const unsigned char *jti, const struct principal *who,
    struct tok_state *s)
{
	return st->checked = st->ops->token_state(st, kid, jti, who, s);
}

/* STORE_OK with *exp when jti was released, STORE_NOTFOUND if not. */
static inline enum store_err
store_released_get(struct store *st, const unsigned char jti[CRM_JTI_BYTES],
    int64_t *exp)
{
	return st->ops->released_get(st, jti, exp);
}

/* What metrics and crmauthctl stats show, in one read: the released
 * ids kept and when the current signing key was made (never the key). */
static inline enum store_err
store_stats(struct store *st, struct store_stats *s)
{
	return st->ops->stats(st, s);
}

static inline enum store_err
store_released_count(struct store *st, size_t *n)
{
	struct store_stats	 s;
	enum store_err		 e;

	if ((e = store_stats(st, &s)) == STORE_OK)
		*n = s.released;
	return e;
}

/* ---- writes: each one durable transaction, nothing half-written ---------- */

/* A new user: STORE_EXISTS if there is one. */
static inline enum store_err
store_user_add(struct store *st, const char *org, const char *user,
    const struct user_rec *r)
{
	return st->ops->user_add(st, org, user, r);
}

/*
 * Change a user in one transaction: read, change(), write back, so that
 * two changes at once never undo each other.  change() returns 0 to
 * write the record, non-zero to leave it as it was (still STORE_OK).
 * *after (may be NULL) gets the record as it is afterwards.
 */
static inline enum store_err
store_user_change(struct store *st, const char *org, const char *user,
    user_change_fn change, void *arg, struct user_rec *after)
{
	return st->ops->user_change(st, org, user, change, arg, after);
}

/* Delete a user and the user's Web API keys. */
static inline enum store_err
store_user_del(struct store *st, const char *org, const char *user)
{
	return st->ops->user_del(st, org, user);
}

static inline enum store_err
store_apikey_put(struct store *st,
    const unsigned char digest[CRM_DIGEST_BYTES], const struct apikey_rec *r,
    int must_be_new)
{
	return st->ops->apikey_put(st, digest, r, must_be_new);
}

static inline enum store_err
store_consumer_put(struct store *st,
    const unsigned char digest[CRM_DIGEST_BYTES],
    const struct consumer_rec *r, int must_be_new)
{
	return st->ops->consumer_put(st, digest, r, must_be_new);
}

/* A new access token (code or ident, as store_access_get). */
static inline enum store_err
store_access_add(struct store *st, const char *org,
    const unsigned char *code, const char *ident, const struct access_rec *r)
{
	return st->ops->access_add(st, org, code, ident, r);
}

/* Replace a pass code's hash, only while it is still old. */
static inline enum store_err
store_access_rehash(struct store *st, const char *org, const char *ident,
    const char *old, const char *new)
{
	return st->ops->access_rehash(st, org, ident, old, new);
}

/*
 * A principal's new cutoff when it is cut off at now: at least now and,
 * with step 1, past the cutoff before, so that a request that read the
 * old cutoff can tell it moved even within the same second (auth.c).
 */
static inline int64_t
cutoff_next(int64_t old, int64_t now, int step)
{
	return old + step > now ? old + step : now;
}

/* An authentication code found under the lookup it had before codes
 * were keyed (lookup.access_legacy): kept keyed from now on. */
static inline enum store_err
store_access_rekey(struct store *st, const char *org,
    const unsigned char code[CRM_DIGEST_BYTES])
{
	return st->ops->access_rekey == NULL ? STORE_OK :
	    st->ops->access_rekey(st, org, code);
}

/* Mark a Web API key (consumer 0) or consumer key (1) revoked, and cut
 * off every token issued so far to the key's user, or to the consumer
 * key's application (cutoff_next()). */
static inline enum store_err
store_key_revoke(struct store *st, int consumer,
    const unsigned char digest[CRM_DIGEST_BYTES], int64_t now, int step)
{
	return st->ops->key_revoke(st, consumer, digest, now, step);
}

/* A new current signing key; the old one verifies until now + ttl, then
 * is deleted by a later write.  *old and *new describe both. */
static inline enum store_err
store_sigkey_rotate(struct store *st, int64_t now, int64_t ttl,
    struct sigkey *old, struct sigkey *new)
{
	return st->ops->sigkey_rotate(st, now, ttl, old, new);
}

/* Delete a signing key at once (it verifies nothing more); if it was the
 * current key, a new one is made current first (*made_new, *new). */
static inline enum store_err
store_sigkey_retire(struct store *st, const char *kid, struct sigkey *new,
    int *made_new)
{
	return st->ops->sigkey_retire(st, kid, new, made_new);
}

/* Record jti as released until exp (idempotent). */
static inline enum store_err
store_release(struct store *st, const unsigned char jti[CRM_JTI_BYTES],
    int64_t exp, int64_t now)
{
	return st->ops->release(st, jti, exp, now);
}

/* Delete every released id with exp <= now; *n is how many. */
static inline enum store_err
store_released_prune(struct store *st, int64_t now, size_t *n)
{
	return st->ops->released_prune(st, now, n);
}

/* ---- failed attempts -------------------------------------------------------- */

/*
 * One attempt, counted before its secret is checked, atomically: if any
 * counter is at its limit within its window (an exempt one only for an
 * untrusted address), nothing is counted and r->locked_until says until
 * when; else each counter counts one more (att_reserve_rule).
 */
static inline enum store_err
store_attempt_reserve(struct store *st, struct att_reserve *r)
{
	return st->ops->attempt_reserve(st, r);
}

/* The attempt was not a failure: each counter gets its one back; on a
 * success those marked clear are deleted, and with trust_until > now the
 * address is trusted for the account until then (att_giveback_rule). */
static inline enum store_err
store_attempt_giveback(struct store *st, struct att_reserve *r, int success,
    int64_t trust_until)
{
	return st->ops->attempt_giveback(st, r, success, trust_until);
}

/*
 * An attempt whose secret was checked (ok) before it was counted: a key,
 * which 2^128 guesses do not find, or a check cheap enough to make here.
 * In one transaction holding the counters (as reserve does): held,
 * nothing (r->locked_until); else a failure counted as reserve counts
 * it, a success settled as giveback settles one (its pair cleared, the
 * address trusted anew until r->trust_until).  Writes only what changes:
 * a success usually nothing.
 */
static inline enum store_err
store_attempt_decide(struct store *st, struct att_reserve *r, int ok)
{
	return st->ops->attempt_decide(st, r, ok);
}

/* Every counter that has reached a limit in its window (cb gets its type,
 * subject, count and window end; a non-zero return stops the walk). */
static inline enum store_err
store_lock_list(struct store *st, store_lock_cb cb, void *arg)
{
	return st->ops->lock_list(st, cb, arg);
}

/* Delete the counter with this key, or with prefix every one that
 * starts with it; *n is how many. */
static inline enum store_err
store_lock_clear(struct store *st, const unsigned char *key, size_t keylen,
    int prefix, size_t *n)
{
	return st->ops->lock_clear(st, key, keylen, prefix, n);
}

/* Delete every counter and trust past its time; *n is how many. */
static inline enum store_err
store_attempts_prune(struct store *st, int64_t now, size_t *n)
{
	return st->ops->attempts_prune(st, now, n);
}

/* Space the counters take (bytes, records). */
static inline enum store_err
store_attempts_usage(struct store *st, size_t *bytes, size_t *records)
{
	return st->ops->attempts_usage(st, bytes, records);
}

/* ---- listing, for crmauthctl -------------------------------------------- */

/* Each record in key order (org NULL: all organisations). */
static inline enum store_err
store_user_list(struct store *st, const char *org, store_user_cb cb,
    void *arg)
{
	return st->ops->user_list(st, org, cb, arg);
}

static inline enum store_err
store_apikey_list(struct store *st, store_apikey_cb cb, void *arg)
{
	return st->ops->apikey_list(st, cb, arg);
}

static inline enum store_err
store_consumer_list(struct store *st, store_consumer_cb cb, void *arg)
{
	return st->ops->consumer_list(st, cb, arg);
}

static inline enum store_err
store_sigkey_list(struct store *st, store_sigkey_cb cb, void *arg)
{
	return st->ops->sigkey_list(st, cb, arg);
}

/* A consistent copy of the whole store in file (mode 0600), taken while
 * it serves (LMDB; a PostgreSQL store says to use pg_dump). */
static inline enum store_err
store_backup(struct store *st, const char *file)
{
	return st->ops->backup(st, file);
}

/* Every record, in one snapshot, for crmauthctl export (released ids
 * past their exp and signing keys past theirs left out). */
/* The id of the wrap.key codes are kept keyed with, "" for none; -1
 * (store_detail) when one is there that cannot be read. */
static inline int
store_code_key(struct store *st, char id[CODE_KEY_ID_HEX + 1])
{
	return st->ops->code_key(st, id);
}

static inline enum store_err
store_dump(struct store *st, store_xrec_cb cb, void *arg)
{
	return st->ops->dump(st, cb, arg);
}

/*
 * Load the records of src into an empty store in one transaction: all
 * of them or none.  Empty means no users, keys, access tokens, releases
 * or cutoffs; the signing key crmauthctl init made is replaced by the
 * source's.  STORE_EXISTS when the store is not empty, or a record comes
 * twice; STORE_ERROR when src stopped.
 */
static inline enum store_err
store_load(struct store *st, struct xsource *src)
{
	return st->ops->load(st, src);
}

/* export.c: crmauthctl export and import, and what they counted. */
struct xcount {
	size_t		 users, apikeys, consumers, access, sigkeys;
	size_t		 released, cutoffs;
	size_t		 skipped;	/* import: past their time */
};
/* Every record into file (JSON lines, 0600, renamed into place whole). */
int	 store_export(struct store *, const char *file, struct xcount *,
	    char *err, size_t errlen);
/* file, every line checked first, into an empty store in one
 * transaction; err names the line at fault. */
int	 store_import(struct store *, const char *file, struct xcount *,
	    char *err, size_t errlen);

/* ---- store.c: rules that do not depend on the engine --------------------- */

/* A lookup with nothing found: flags, numbers and strings empty; the
 * units (8 KiB a record) are not touched, being read only up to nunits,
 * which is 0.  And its secrets wiped once used (the signing key, the
 * password and pass code hashes), not the 18 KiB of it each request. */
void	 lookup_reset(struct lookup *);
void	 lookup_wipe(struct lookup *);

/* What is wrong with s as a name (organisation, user, unit, application,
 * contact, identifier): NULL, or why.  1 to CRM_NAME_MAX bytes of UTF-8,
 * no control characters (a token carries names as JSON). */
const char *store_name_problem(const char *s);

/* The id of an access token of org: by the SHA-256 of its authentication
 * code (code not NULL), or by its identifier.  LMDB's key; PostgreSQL
 * keeps org, kind and identifier (or code digest) in columns. */
void	 store_access_id(unsigned char id[CRM_DIGEST_BYTES], const char *org,
	    const unsigned char *code, const char *ident);

/* A counter as stored: exists, and its window's end and count. */
struct att_value {
	int		 exists;
	int64_t		 end;
	uint32_t	 count;
};

/*
 * store_attempt_reserve's rule, given the counters as they are (cur[i]
 * for r->c[i]) and whether the address is trusted: 0 and next[i] to
 * write (a new window where the last is over, one more count), or -1
 * with r->locked_until set, when nothing is to be written.  Sets each
 * counter's end and r->trusted.
 */
int	 att_reserve_rule(struct att_reserve *r, const struct att_value cur[],
	    int trusted, struct att_value next[]);
/* A read of the counters as they are (trust_end: the address's trust,
 * 0 none): r->trusted, r->locked_until as att_reserve_rule sets it, and
 * r->settle: whether a success would write (att_settle_rule, or the
 * trust as att_trust_rule says). */
void	 att_peek_rule(struct att_reserve *r, const struct att_value cur[],
	    int64_t trust_end);
/* A success not reserved (store_attempt_decide): 1 when counter c, as
 * it is, is to be cleared (a pair counting in its window). */
int	 att_settle_rule(const struct att_counter *c,
	    const struct att_value *cur, int64_t now);
/* store_attempt_giveback's rule for counter c: 1 to delete it, 0 to
 * write *next, -1 to leave it (another window by now). */
int	 att_giveback_rule(const struct att_counter *c,
	    const struct att_value *cur, int success, struct att_value *next);
/* After a success, whether the address's trust (until cur, 0: none)
 * is written anew to last until next: when it would gain more than
 * ATT_TRUST_SLACK seconds, so that a client logging in all day writes
 * its trust once an hour, not once a login. */
#define ATT_TRUST_SLACK	3600
int	 att_trust_rule(int64_t cur, int64_t next);
/* A schema version as stored: STORE_OK, STORE_VERSION when newer than
 * this program, STORE_CORRUPT when not a version at all. */
enum store_err store_schema_check(const char *text, size_t len);
/* crmauthctl init: make db_path, 0700, or 02770 and cfg->db_group's when
 * shared, and its missing parents (0700, or 0750 and the group's); 0, or
 * -1 with one line in detail. */
int	 store_make_dir(const struct config *, char *detail, size_t len);
/* wrap.c: db_path/wrap.key into key (*have 1); a missing file is *have 0,
 * or with create a new one made; -1 with detail when it cannot be read
 * or made. */
int	 store_wrap_load(const struct config *, unsigned char *key,
	    int *have, int create, char *detail, size_t len);
/* An authentication code's keyed digest: HMAC-SHA-256 of its SHA-256
 * under a key derived from wrap.key. */
void	 store_code_keyed(unsigned char out[CRM_DIGEST_BYTES],
	    const unsigned char *wrap, const unsigned char *code);
/* What names a wrap.key in an export (nothing it could be guessed
 * from): the first 8 bytes, in hex, of an HMAC of a fixed label. */
void	 store_code_key_id(char out[CODE_KEY_ID_HEX + 1],
	    const unsigned char *wrap);

/* Backends: their open functions, for store_open's table. */
enum store_err lmdb_store_open(struct store **, const struct config *,
	    int flags, char *err, size_t errlen);
enum store_err lmdb_store_restore(const struct config *, const char *,
	    char *, size_t);
enum store_err pgsql_store_open(struct store **, const struct config *,
	    int flags, char *err, size_t errlen);

#endif /* STORE_H */
