/*
 * The PostgreSQL backend's own parts, shared by its files (store.h is
 * what the rest of crmauth sees):
 *
 *   store_pgsql.c	the schema, the statements, the store's methods
 *   pgsql_conn.c	the connection: opening it, round trips with
 *			deadlines, values in and out
 *   pgsql_copy.c	every record out and in (crmauthctl export, import)
 *   pgsql_lib.c	libpq, loaded when first needed
 *
 * Include after extern.h.
 */
#ifndef PGSQL_H
#define PGSQL_H

#include <libpq-fe.h>

/*
 * libpq is loaded when a PostgreSQL store is first opened, not linked
 * (pgsql_lib.c says why): these are the functions crmauth calls, looked
 * up into pqlib; below, each name calls through it.
 */
#define PQLIB_FUNCTIONS(X) \
	X(PQclear) \
	X(PQcmdTuples) \
	X(PQconnectdbParams) \
	X(PQconninfoFree) \
	X(PQconninfoParse) \
	X(PQconsumeInput) \
	X(PQenterPipelineMode) \
	X(PQerrorMessage) \
	X(PQexec) \
	X(PQfinish) \
	X(PQgetisnull) \
	X(PQgetResult) \
	X(PQgetvalue) \
	X(PQisBusy) \
	X(PQntuples) \
	X(PQpipelineSync) \
	X(PQresultErrorField) \
	X(PQresultStatus) \
	X(PQsendPrepare) \
	X(PQsendQueryParams) \
	X(PQsendQueryPrepared) \
	X(PQsetNoticeProcessor) \
	X(PQsocket) \
	X(PQstatus) \
	X(PQtransactionStatus)

struct pqlib {
#define X(f)	__typeof__(f) *f;
	PQLIB_FUNCTIONS(X)
#undef X
};
extern struct pqlib pqlib;

/* Load libpq (once per process): 0, or -1 with why in err. */
int		 pg_load(char *err, size_t errlen);

#ifndef PGSQL_LIB
#define PQclear		(*pqlib.PQclear)
#define PQcmdTuples		(*pqlib.PQcmdTuples)
#define PQconnectdbParams	(*pqlib.PQconnectdbParams)
#define PQconninfoFree		(*pqlib.PQconninfoFree)
#define PQconninfoParse		(*pqlib.PQconninfoParse)
#define PQconsumeInput		(*pqlib.PQconsumeInput)
#define PQenterPipelineMode	(*pqlib.PQenterPipelineMode)
#define PQerrorMessage		(*pqlib.PQerrorMessage)
#define PQexec		(*pqlib.PQexec)
#define PQfinish		(*pqlib.PQfinish)
#define PQgetisnull		(*pqlib.PQgetisnull)
#define PQgetResult		(*pqlib.PQgetResult)
#define PQgetvalue		(*pqlib.PQgetvalue)
#define PQisBusy		(*pqlib.PQisBusy)
#define PQntuples		(*pqlib.PQntuples)
#define PQpipelineSync		(*pqlib.PQpipelineSync)
#define PQresultErrorField	(*pqlib.PQresultErrorField)
#define PQresultStatus		(*pqlib.PQresultStatus)
#define PQsendPrepare		(*pqlib.PQsendPrepare)
#define PQsendQueryParams	(*pqlib.PQsendQueryParams)
#define PQsendQueryPrepared	(*pqlib.PQsendQueryPrepared)
#define PQsetNoticeProcessor	(*pqlib.PQsetNoticeProcessor)
#define PQsocket		(*pqlib.PQsocket)
#define PQstatus		(*pqlib.PQstatus)
#define PQtransactionStatus	(*pqlib.PQtransactionStatus)
#endif

#define WRAP_FILE	"wrap.key"
#define SEALED_BYTES	(CRM_SEAL_OVERHEAD + CRM_SIGKEY_BYTES)
#define MAXP		20		/* parameters of a statement */

struct pstore {
	struct store	 base;
	PGconn		*conn;
	pid_t		 pid;		/* the process conn belongs to */
	int		 timeout_ms;	/* a round trip's deadline */
	int		 bare;		/* connect without preparing (init) */
	unsigned char	 wrap[CRM_SEAL_KEY];
	int		 have_wrap;
	/* The last key read did not unseal: 1 with this wrap.key, 2 when
	 * the file could not be read (detail says why); pg_damaged says so
	 * and clears it. */
	int		 unseal_failed;
	char		 label[96];	/* "postgresql database NAME", for logs */
};


enum q {
	Q_SCHEMA,
	Q_USER_GET, Q_APIKEY_GET, Q_CONSUMER_GET, Q_ACCESS_GET,
	Q_SIGKEY_GET, Q_SIGKEY_CURRENT,
	Q_LOOKUP_USER, Q_LOOKUP_APIKEY, Q_LOOKUP_APIKEY_HELD, Q_LOOKUP_CONSUMER, Q_LOOKUP_CONSUMER_PEEK, Q_TOKEN_STATE,
	Q_RELEASED_GET, Q_STATS,
	Q_USER_ADD, Q_USER_LOCK, Q_USER_SET, Q_USER_DEL, Q_USER_KEYS_DEL,
	Q_USER_SEEN, Q_ACCESS_REKEY, Q_ACCESS_PLAIN, Q_APIKEY_REVOKE_LOCK,
	Q_ACCESS_LOAD_KEYED,
	Q_APIKEY_ADD, Q_APIKEY_PUT, Q_CONSUMER_ADD, Q_CONSUMER_PUT,
	Q_ACCESS_ADD, Q_ACCESS_REHASH,
	Q_APIKEY_REVOKE, Q_CONSUMER_REVOKE,
	Q_SIGKEY_LOCK, Q_SIGKEY_ROTATE_OLD, Q_SIGKEY_ADD, Q_SIGKEY_DEL,
	Q_SIGKEY_PRUNE,
	Q_RELEASE, Q_RELEASED_PRUNE,
	Q_ATT_LOCK, Q_ATT_ENSURE, Q_ATT_RESERVE, Q_ATT_GIVEBACK, Q_ATT_SETTLE,
	Q_ATT_PRUNE, Q_ATT_LOCKS, Q_ATT_CLEAR,
	Q_ATT_CLEAR_PREFIX, Q_ATT_USAGE,
	Q_USER_LIST, Q_USER_LIST_ORG, Q_APIKEY_LIST, Q_CONSUMER_LIST,
	Q_SIGKEY_LIST,
	Q_SNAPSHOT, Q_ACCESS_LIST, Q_RELEASED_LIST, Q_CUTOFF_LIST,
	Q_EMPTY, Q_SIGKEY_CLEAR, Q_SIGKEY_LOAD, Q_RELEASED_LOAD,
	Q_CUTOFF_LOAD,
	Q_BEGIN, Q_ASYNC, Q_COMMIT, Q_ROLLBACK,
	Q__MAX
};

/* One statement of a round trip: its parameters (text, or with len > 0 a
 * bytea in binary; NULL is SQL NULL) and, afterwards, its result. */
struct pq {
	enum q		 q;
	int		 n;
	const char	*v[MAXP];
	int		 len[MAXP];
	PGresult	*res;
};

/* How a round trip may use the connection. */
enum use {
	CONNECT,	/* open one if there is none */
	RETRY,		/* that, and once more if it was lost (idempotent) */
	CONTINUE,	/* the open one only: a transaction goes on */
};

struct num {
	char	 s[24];
};

/* The statements, prepared on every connection (store_pgsql.c). */
extern const char *const pg_sql[Q__MAX];

/* ---- pgsql_conn.c ---------------------------------------------------------------- */

/* What the log calls the store: the database's name, never the rest of
 * the conninfo. */
void		 pg_make_label(struct pstore *);
/* Open the connection and prepare every statement (st->bare: only
 * open), within connect_timeout. */
enum store_err	 pg_connect(struct pstore *);
/* Close it (after fork(), forget the parent's without a word on it). */
void		 pg_drop(struct pstore *);
/* The statements of qs in one pipeline, each result in qs[i].res;
 * pq1: one statement, tried again on a new connection when it is
 * idempotent and the old one was lost. */
enum store_err	 pq_run(struct pstore *, const char *what, struct pq *qs,
		    int n, enum use);
enum store_err	 pq1(struct pstore *, const char *what, struct pq *,
		    int idempotent);
void		 pq_clear(struct pq *qs, int n);
/* End an open transaction: undone (returns e), or the last round trip
 * committed. */
enum store_err	 pg_rollback(struct pstore *, const char *what,
		    enum store_err e);
enum store_err	 pg_finish(struct pstore *, const char *what, struct pq *qs,
		    int n);
/* st->detail for a failure, and what it means. */
enum store_err	 pg_failed(struct pstore *, const char *what, PGresult *);
enum store_err	 pg_unavailable(struct pstore *, const char *what,
		    const char *why);
/* Parameters: text (NULL: SQL NULL), bytes, a number in n. */
void		 pg_param(struct pq *, const char *);
void		 pg_param_bytes(struct pq *, const void *, size_t);
const char	*pg_num(struct num *n, int64_t);
/* Values of a row: NULL reads as 0, "" or false; -1 when a text or
 * bytea does not fit. */
int		 pg_is_null(const PGresult *, int row, int col);
int64_t		 pg_i64(const PGresult *, int row, int col);
int		 pg_bool(const PGresult *, int row, int col);
int		 pg_str(const PGresult *, int row, int col, char *, size_t);
int		 pg_bytes(const PGresult *, int row, int col, unsigned char *,
		    size_t);
int		 pg_units(const PGresult *, int row, int col,
		    char units[][CRM_NAME_MAX + 1], size_t *n);
char		*pg_units_json(const char units[][CRM_NAME_MAX + 1], size_t n);
/* Rows a statement changed. */
long		 pg_changed(const PGresult *);

/* ---- store_pgsql.c: records as rows ---------------------------------------------- */

int		 pg_get_user(const PGresult *, int row, int col,
		    struct user_rec *);
int		 pg_get_apikey(const PGresult *, int row, int col,
		    struct apikey_rec *);
int		 pg_get_consumer(const PGresult *, int row, int col,
		    struct consumer_rec *);
int		 pg_get_access(const PGresult *, int row, int col,
		    struct access_rec *);
int		 pg_get_sigkey(struct pstore *, const PGresult *, int row,
		    int col, struct sigkey *);
/* A record we cannot read (STORE_CORRUPT), or no wrap.key here. */
enum store_err	 pg_damaged(struct pstore *, const char *what);
/*
 * An access token's kind and lookup texts.  An identifier is its own.
 * An authentication code's is keyed: "k1:" and the hex of an HMAC-SHA-256
 * of the code's SHA-256 under a key derived from wrap.key, so that a
 * dump of the database alone cannot be guessed back to short codes; a
 * code added before codes were keyed is found by its SHA-256 in hex
 * (legacy) and keyed at its first use (Q_ACCESS_REKEY).
 */
#define CODE_KEYED	"k1:"
struct access_key {
	char		 kind[2];
	char		 keyed[sizeof(CODE_KEYED) + 2 * CRM_DIGEST_BYTES];
	char		 plain[2 * CRM_DIGEST_BYTES + 1];
	const char	*lookup;	/* NULL: a code, and no wrap.key */
	const char	*legacy;	/* a code's SHA-256 in hex; else NULL */
};
void		 pg_access_key(struct pstore *, struct access_key *,
		    const unsigned char *code, const char *ident);
/* The keyed lookup text of an HMAC already made (an export's). */
void		 pg_code_keyed(char out[sizeof(CODE_KEYED) +
		    2 * CRM_DIGEST_BYTES], const unsigned char *hmac);
int		 pg_user_params(struct pq *, const char *org, const char *user,
		    const struct user_rec *, struct num nums[2], char **units);
int		 pg_sigkey_params(struct pstore *, struct pq *,
		    const struct sigkey *, unsigned char sealed[SEALED_BYTES],
		    struct num nums[2]);

/* ---- pgsql_copy.c ---------------------------------------------------------------- */

enum store_err	 pgsql_dump(struct store *, store_xrec_cb, void *);
enum store_err	 pgsql_load(struct store *, struct xsource *);

#endif
