/*
 * The LMDB store's own parts, shared by its files (store.h is what the
 * rest of crmauth sees; lmdb_env.h the environment and the counters):
 *
 *   store_lmdb.c	the store's methods, each one transaction; opening
 *   lmdb_records.c	keys and records: how each kind is laid out
 *   lmdb_copy.c	backup, restore, export and import
 *
 * Include after extern.h and lmdb_env.h.
 */
#ifndef LMDB_STORE_H
#define LMDB_STORE_H

#define RC_CORRUPT	(-1)	/* a record we cannot decode */
#define RC_VERSION	(-2)	/* schema newer than us */
#define RC_NOTINIT	(-3)	/* a database or the schema is missing */
#define RC_NOTEMPTY	(-4)	/* import: the store holds records */
#define RC_STOP		(-5)	/* import: the source stopped */
#define RC_SKIP		(-6)	/* export: a record not to give */
#define RC_REFUSED	(-7)	/* import: a record LMDB cannot hold; detail */
#define RC_NOUSER	(-8)	/* import: a Web API key of no user */

struct lstore {
	struct store	 base;		/* first: what store.c knows */
	struct lmdb	*db;		/* shared by this process's handles */
	MDB_dbi		 meta, users, apikeys, consumers, access, sigkeys;
	MDB_dbi		 released, released_exp, cutoffs;
	MDB_txn		*rtxn;		/* the last read, reset: renewed next */
	struct attdb	*att;		/* the counters, once used */
	int		 att_rdonly;	/* ... opened read-only */
	/* db_path/wrap.key when there is one (a store moved from
	 * PostgreSQL): authentication codes kept keyed with it. */
	unsigned char	 wrap[CRM_SEAL_KEY];
	int		 have_wrap;
	int		 wrap_bad;	/* there, but cannot be read */
	char		 wrap_why[512];	/* ... why */
	time_t		 wrap_looked;	/* lm_wrap(): looked at then */
	struct stat	 wrap_sb;	/* the file read (or st_ino 0) */
};

typedef int (*txn_fn)(struct lstore *, MDB_txn *, void *);

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

/* A signing key's value: created, the secret, expires (0 while current). */
#define SIGKEY_VAL	(8 + CRM_SIGKEY_BYTES + 8)

struct rec_out {
	struct fbuf	 b;		/* over buf */
	char		 buf[REC_MAX];
};

struct rec_in {
	const unsigned char	*p;
	size_t			 left;
	int			 bad;
};


/*
 * Whose an access token is, kept in its record (format REC_V2) so that an export can name it: the organisation, the kind ('C'
 * or 'I') and the identifier or, for a code, its SHA-256 in hex.  A
 * REC_V1 record has only its key (kind 0 here).
 */
struct access_owner {
	char	 kind;
	char	 org[CRM_NAME_MAX + 1];
	char	 lookup[CRM_NAME_MAX + 1];
};

/* A key record of either kind: ak or ck, as consumer says. */
struct key_arg {
	const unsigned char	*digest;
	int			 consumer;
	struct apikey_rec	*ak;
	struct consumer_rec	*ck;
	int			 must_be_new;
	int64_t			 now;		/* revoke */
	int			 step;		/* revoke: cutoff_next() */
};

struct rel_arg {
	const unsigned char	*jti;
	int64_t			 exp, now;
	size_t			 n;
};

/* ---- store_lmdb.c ---------------------------------------------------------------- */

/* db_path/wrap.key read again if the file there changed (now: at once). */
void		 lm_wrap(struct lstore *, int now);

/* fn in a transaction: reads renew the handle's kept one; writes prune
 * a few released ids and expired keys, and commit durably.  A full map
 * is grown and fn run again. */
enum store_err	 lm_txn_run(struct lstore *, int write, const char *what,
		    txn_fn fn, void *arg);
/* An LMDB or RC_* code as a store error, st->detail set. */
enum store_err	 lm_map_rc(struct lstore *, const char *what, int rc);
enum store_err	 lm_open(struct lstore **out, const struct config *,
		    int flags, char *err, size_t errlen);
void		 lm_close(struct store *);
int		 lm_key_decode(const MDB_val *, struct key_arg *);
int		 lm_key_put(struct lstore *, MDB_txn *, const struct key_arg *,
		    unsigned flags);
/* Record a release (a txn_fn over struct rel_arg). */
int		 lm_release_fn(struct lstore *, MDB_txn *, void *);

/* ---- lmdb_records.c -------------------------------------------------------------- */

int		 lm_put_rec(MDB_txn *, MDB_dbi, const void *k, size_t klen,
		    const struct rec_out *, unsigned flags);
void		 lm_user_key(unsigned char k[CRM_DIGEST_BYTES], const char *org,
		    const char *user);
int		 lm_user_decode(const MDB_val *, struct user_rec *, char *org,
		    char *user);
int		 lm_user_read(struct lstore *, MDB_txn *, const char *org,
		    const char *user, struct user_rec *);
int		 lm_user_write(struct lstore *, MDB_txn *, const char *org,
		    const char *user, const struct user_rec *, unsigned flags);
int		 lm_apikey_decode(const MDB_val *, struct apikey_rec *);
void		 lm_apikey_encode(struct rec_out *, const struct apikey_rec *);
int		 lm_consumer_decode(const MDB_val *, struct consumer_rec *);
void		 lm_consumer_encode(struct rec_out *,
		    const struct consumer_rec *);
/* An application's cutoff: 0 when it has none. */
int		 lm_app_cutoff_put(struct lstore *, MDB_txn *, const char *org,
		    const char *app, int64_t now);
int		 lm_app_cutoff_get(struct lstore *, MDB_txn *, const char *org,
		    const char *app, int64_t *cutoff);
void		 lm_access_owner(struct access_owner *, const char *org,
		    const unsigned char *code, const char *ident);
int		 lm_access_decode(const MDB_val *, struct access_rec *,
		    struct access_owner *);
int		 lm_access_read(struct lstore *, MDB_txn *,
		    const unsigned char *k, struct access_rec *,
		    struct access_owner *);
int		 lm_access_write(struct lstore *, MDB_txn *,
		    const unsigned char *k, const struct access_rec *,
		    const struct access_owner *, unsigned flags);
int		 lm_sigkey_decode(const MDB_val *k, const MDB_val *v,
		    struct sigkey *);
int		 lm_sigkey_put(struct lstore *, MDB_txn *, const struct sigkey *,
		    unsigned flags);
int		 lm_current_kid(struct lstore *, MDB_txn *,
		    char kid[CRM_KID_HEX + 1]);

/* ---- lmdb_copy.c ----------------------------------------------------------------- */

enum store_err	 lmdb_backup(struct store *, const char *file);
enum store_err	 lmdb_dump(struct store *, store_xrec_cb, void *);
enum store_err	 lmdb_load(struct store *, struct xsource *);

#endif
