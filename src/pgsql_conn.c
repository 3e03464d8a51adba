/*
 * The PostgreSQL backend's connection (pgsql.h): one per process, opened
 * when first needed and again after fork() (a connection is never shared
 * across one).  Every statement is prepared once per connection, with
 * its parameters bound; the statements of a transaction go out together
 * in libpq's pipeline mode, so that a transaction costs one or two round
 * trips.  Each round trip has a deadline (the connection's
 * connect_timeout plus five seconds): a server that does not answer
 * gives STORE_UNAVAILABLE, never a hung worker, and the connection is
 * dropped, to be opened again by the next call.  A statement that may be
 * repeated without harm is tried once more on a new connection when the
 * old one was lost; others report the failure.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "extern.h"
#include "pgsql.h"

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready (events) or the deadline: 0, or -1 on timeout. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd	 p = { fd, events, 0 };
	int64_t		 left;
	int		 rc;

	for (;;) {
		if ((left = deadline - now_ms()) <= 0)
			return -1;
		rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0)
			return 0;
		if (rc == -1 && errno != EINTR)
			return -1;
	}
}

void
pg_drop(struct pstore *st)
{
	/* After fork() the connection is the parent's: saying goodbye on
	 * it would end the parent's session too. */
	if (st->conn != NULL && st->pid == getpid())
		PQfinish(st->conn);
	st->conn = NULL;
}

enum store_err
pg_unavailable(struct pstore *st, const char *what, const char *why)
{
	char	 msg[512];
	size_t	 n;

	/* libpq's messages end with a newline and may hold more lines (a
	 * hint, one per host tried); keep one line. */
	snprintf(msg, sizeof(msg), "%s", why != NULL ? why : "");
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	for (char *c = msg; *c != '\0'; c++)
		if (*c == '\n' || *c == '\t' || *c == '\r')
			*c = ' ';
	snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s", what,
	    msg[0] != '\0' ? msg : "the database does not answer");
	pg_drop(st);
	return STORE_UNAVAILABLE;
}

/* A warning from the server: one line in the log, not libpq's stderr. */
static void
notice(void *arg, const char *msg)
{
	struct pstore	*st = arg;
	size_t		 n = strcspn(msg, "\n");

	log_err("%s: %.*s", st->label, (int)n, msg);
}

/* Our defaults, before the user's conninfo (which overrides them). */
static const char *const defkeys[] = {
	"connect_timeout", "keepalives", "keepalives_idle",
	"keepalives_interval", "keepalives_count", "tcp_user_timeout",
	"options", "application_name", "dbname", NULL
};

/*
 * What the code assumes of a session, set on every connection whatever
 * the role's or the database's defaults say: a release is answered only
 * once durable (a default of synchronous_commit = off would make an
 * acknowledged release losable; the counters turn it off for their own
 * transactions only), bytea read as hex, text in UTF-8, transactions
 * that may write and see each other's commits.
 */
static const char *const pinned[] = {
	"SET synchronous_commit TO on",
	"SET bytea_output TO hex",
	"SET client_encoding TO 'UTF8'",
	"SET default_transaction_isolation TO 'read committed'",
	"SET default_transaction_read_only TO off",
	/* Waits are bounded by statement_timeout, not cut short. */
	"SET lock_timeout TO 0",
	"SET idle_in_transaction_session_timeout TO 0",
};
#define NPINNED	(int)(sizeof(pinned) / sizeof(pinned[0]))

/* Open a connection, with a deadline, pin its settings and prepare
 * every statement. */
enum store_err
pg_connect(struct pstore *st)
{
	const char		*vals[sizeof(defkeys) / sizeof(defkeys[0])];
	PQconninfoOption	*opts, *o;
	PGresult		*res;
	int64_t			 deadline;
	long long		 v;
	const char		*why;
	int			 secs = 5, i;

	pg_drop(st);
	/* The deadline follows the user's connect_timeout, if any (libpq
	 * takes less than 2 s as 2; we stop at an hour). */
	if ((opts = PQconninfoParse(st->base.cfg.pg_conninfo, NULL)) != NULL) {
		for (o = opts; o->keyword != NULL; o++)
			if (strcmp(o->keyword, "connect_timeout") == 0 &&
			    o->val != NULL &&
			    parse_int(o->val, 1, 1LL << 31, &v, &why) == 0)
				secs = v < 2 ? 2 : v > 3600 ? 3600 : (int)v;
		PQconninfoFree(opts);
	} else
		return pg_unavailable(st, "pg_conninfo", "cannot be parsed");
	st->timeout_ms = (secs + 5) * 1000;
	vals[0] = "5";
	vals[1] = "1";
	vals[2] = "10";
	vals[3] = "5";
	vals[4] = "3";
	vals[5] = "10000";
	vals[6] = "-c statement_timeout=5000 -c client_min_messages=warning";
	vals[7] = "crmauth";
	vals[8] = st->base.cfg.pg_conninfo;
	vals[9] = NULL;
	st->pid = getpid();
	/*
	 * libpq's own loop: each host listed gets connect_timeout (which
	 * libpq's non-blocking connect would not apply), then the next one
	 * is tried, so a primary that is gone without a word does not stop
	 * a failover.  Bounded: hosts x connect_timeout.
	 */
	if ((st->conn = PQconnectdbParams(defkeys, vals, 1)) == NULL)
		return pg_unavailable(st, st->label, "out of memory");
	if (PQstatus(st->conn) != CONNECTION_OK)
		return pg_unavailable(st, st->label, PQerrorMessage(st->conn));
	PQsetNoticeProcessor(st->conn, notice, st);
	if (st->bare) {
		/* init and the like: plain statements from here on. */
		for (i = 0; i < NPINNED; i++) {
			res = PQexec(st->conn, pinned[i]);
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				PQclear(res);
				return pg_unavailable(st, st->label,
				    PQerrorMessage(st->conn));
			}
			PQclear(res);
		}
		return STORE_OK;
	}
	/* The session's settings pinned, and every statement prepared, in
	 * one round trip. */
	if (PQenterPipelineMode(st->conn) != 1)
		return pg_unavailable(st, st->label, PQerrorMessage(st->conn));
	for (i = 0; i < NPINNED; i++)
		if (PQsendQueryParams(st->conn, pinned[i], 0, NULL, NULL, NULL,
		    NULL, 0) != 1)
			return pg_unavailable(st, st->label,
			    PQerrorMessage(st->conn));
	for (i = 0; i < Q__MAX; i++) {
		char name[8];

		snprintf(name, sizeof(name), "q%d", i);
		if (PQsendPrepare(st->conn, name, pg_sql[i], 0, NULL) != 1)
			return pg_unavailable(st, st->label,
			    PQerrorMessage(st->conn));
	}
	if (PQpipelineSync(st->conn) != 1)
		return pg_unavailable(st, st->label, PQerrorMessage(st->conn));
	deadline = now_ms() + st->timeout_ms;
	for (i = 0; i <= Q__MAX + NPINNED; i++) {
		for (;;) {
			while (PQisBusy(st->conn)) {
				if (wait_fd(PQsocket(st->conn), POLLIN,
				    deadline) == -1 ||
				    PQconsumeInput(st->conn) != 1)
					return pg_unavailable(st, st->label,
					    PQerrorMessage(st->conn));
			}
			if ((res = PQgetResult(st->conn)) == NULL)
				break;
			if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
				PQclear(res);
				goto prepared;
			}
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				/* A missing table: not initialised. */
				int nt = strcmp(PQresultErrorField(res,
				    PG_DIAG_SQLSTATE) ? PQresultErrorField(res,
				    PG_DIAG_SQLSTATE) : "", "42P01") == 0;

				snprintf(st->base.detail,
				    sizeof(st->base.detail), "%s: %s",
				    st->label, nt ? store_strerror(STORE_NOTINIT) :
				    PQresultErrorField(res,
				    PG_DIAG_MESSAGE_PRIMARY));
				PQclear(res);
				pg_drop(st);
				return nt ? STORE_NOTINIT : STORE_ERROR;
			}
			PQclear(res);
		}
	}
prepared:
	return STORE_OK;
}

void
pq_clear(struct pq *qs, int n)
{
	for (int i = 0; i < n; i++) {
		PQclear(qs[i].res);
		qs[i].res = NULL;
	}
}

/* What a failed statement means. */
enum store_err
pg_failed(struct pstore *st, const char *what, PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (state == NULL)
		state = "";
	/* The primary message only: the detail may quote values. */
	snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s", what,
	    msg != NULL ? msg : "failed");
	if (strcmp(state, "23505") == 0)
		return STORE_EXISTS;
	if (strcmp(state, "42P01") == 0)
		return STORE_NOTINIT;
	if (strcmp(state, "53100") == 0)
		return STORE_FULL;		/* disk full */
	/* Connection, shutdown, cannot connect now, statement timeout; or
	 * an error libpq made itself (no SQLSTATE) on a connection it now
	 * holds lost: a lost connection too, not a failed statement. */
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
	    (state[0] == '\0' && (st->conn == NULL ||
	    PQstatus(st->conn) != CONNECTION_OK))) {
		pg_drop(st);
		return STORE_UNAVAILABLE;
	}
	return STORE_ERROR;
}

/*
 * Whether the server ended the idle connection (a restart, a crash, an
 * administrator's pg_terminate_backend): it says so (a FATAL error) and
 * closes it, while nothing was asked.  Nothing else comes unasked here
 * (no LISTEN; notices below warnings are off), so anything to read now
 * means a connection not to use.  Seen before anything is sent, a new
 * connection takes the statements, none of which reached the server:
 * even a write is safe to send there.
 */
static int
closed_by_server(struct pstore *st)
{
	struct pollfd p = { PQsocket(st->conn), POLLIN, 0 };

	if (p.fd < 0)
		return 1;
	return poll(&p, 1, 0) != 0;
}

/*
 * Send the statements in one pipeline and wait for every result, within
 * the deadline.  STORE_OK with each qs[i].res (PGRES_TUPLES_OK or
 * COMMAND_OK: pq_clear them), or the first failure, every result
 * cleared.  A lost connection is dropped.
 */
static enum store_err
pq_once(struct pstore *st, const char *what, struct pq *qs, int n,
    enum use use)
{
	PGresult	*res;
	int64_t		 deadline;
	enum store_err	 e = STORE_OK;
	int		 i, fmt[MAXP];
	char		 name[8];

	/* Outside a transaction the connection must be idle: one left in
	 * a transaction (an error nothing rolled back) is not used again. */
	if (st->conn != NULL && st->pid == getpid() && (closed_by_server(st) ||
	    (use != CONTINUE && PQtransactionStatus(st->conn) != PQTRANS_IDLE)))
		pg_drop(st);
	if (st->conn == NULL || st->pid != getpid() ||
	    PQstatus(st->conn) != CONNECTION_OK) {
		if (use == CONTINUE)
			return pg_unavailable(st, what, "the connection was lost "
			    "in a transaction");
		if ((e = pg_connect(st)) != STORE_OK)
			return e;
	}
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "q%d", qs[i].q);
		for (int j = 0; j < qs[i].n; j++)
			fmt[j] = qs[i].len[j] > 0;
		if (PQsendQueryPrepared(st->conn, name, qs[i].n, qs[i].v,
		    qs[i].len, fmt, 0) != 1)
			return pg_unavailable(st, what, PQerrorMessage(st->conn));
	}
	if (PQpipelineSync(st->conn) != 1)
		return pg_unavailable(st, what, PQerrorMessage(st->conn));
	deadline = now_ms() + st->timeout_ms;
	for (i = 0; i <= n; i++) {
		/* Each statement's result, then NULL; then the sync. */
		for (;;) {
			while (PQisBusy(st->conn))
				if (wait_fd(PQsocket(st->conn), POLLIN,
				    deadline) == -1 ||
				    PQconsumeInput(st->conn) != 1) {
					pq_clear(qs, n);
					return pg_unavailable(st, what,
					    PQstatus(st->conn) == CONNECTION_OK ?
					    "the database did not answer in "
					    "time" : PQerrorMessage(st->conn));
				}
			if ((res = PQgetResult(st->conn)) == NULL)
				break;
			switch (PQresultStatus(res)) {
			case PGRES_TUPLES_OK:
			case PGRES_COMMAND_OK:
				if (i < n && qs[i].res == NULL) {
					qs[i].res = res;
					res = NULL;
				}
				break;
			case PGRES_PIPELINE_SYNC:
				PQclear(res);
				goto synced;
			case PGRES_PIPELINE_ABORTED:
				break;
			default:
				if (e == STORE_OK)
					e = pg_failed(st, what, res);
				break;
			}
			PQclear(res);
			if (st->conn == NULL) {		/* dropped */
				pq_clear(qs, n);
				return e;
			}
		}
	}
synced:
	if (e != STORE_OK)
		pq_clear(qs, n);
	return e;
}

/* pq_once; statements that may run twice without harm are tried once
 * more when the connection was lost. */
enum store_err
pq_run(struct pstore *st, const char *what, struct pq *qs, int n,
    enum use use)
{
	enum store_err e = pq_once(st, what, qs, n, use);

	if (e == STORE_UNAVAILABLE && use == RETRY)
		e = pq_once(st, what, qs, n, use);
	return e;
}

/* A statement alone (idempotent or not): its result in q->res. */
enum store_err
pq1(struct pstore *st, const char *what, struct pq *q, int idempotent)
{
	return pq_run(st, what, q, 1, idempotent ? RETRY : CONNECT);
}

const char *
pg_num(struct num *n, int64_t v)
{
	snprintf(n->s, sizeof(n->s), "%lld", (long long)v);
	return n->s;
}

void
pg_param(struct pq *q, const char *v)
{
	pg_param_bytes(q, v, 0);
}

/* len 0: text.  A statement given more than MAXP is a bug here: stop
 * rather than write past the arrays. */
void
pg_param_bytes(struct pq *q, const void *v, size_t len)
{
	if (q->n >= MAXP) {
		log_err("store: statement %d: more than %d parameters",
		    (int)q->q, MAXP);
		abort();
	}
	q->v[q->n] = v;
	q->len[q->n++] = (int)len;
}

int
pg_is_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col);
}

int64_t
pg_i64(const PGresult *r, int row, int col)
{
	return pg_is_null(r, row, col) ? 0 :
	    strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int
pg_bool(const PGresult *r, int row, int col)
{
	return !pg_is_null(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

/* A text column into buf; -1 if it does not fit (not a record of ours). */
int
pg_str(const PGresult *r, int row, int col, char *buf, size_t size)
{
	const char	*v = pg_is_null(r, row, col) ? "" : PQgetvalue(r, row, col);
	size_t		 n = strlen(v);

	if (n >= size)
		return -1;
	memcpy(buf, v, n + 1);
	return 0;
}

/* A bytea column (text form: \x and hex) of exactly n bytes. */
int
pg_bytes(const PGresult *r, int row, int col, unsigned char *out, size_t n)
{
	const char *v;

	if (pg_is_null(r, row, col))
		return -1;
	v = PQgetvalue(r, row, col);
	if (v[0] != '\\' || v[1] != 'x')
		return -1;
	return sec_unhex(out, n, v + 2, strlen(v + 2));
}

/* Units as JSON text (both ways: array_to_json out, json in). */
int
pg_units(const PGresult *r, int row, int col,
    char units[][CRM_NAME_MAX + 1], size_t *n)
{
	json_object	*a, *u;
	size_t		 len;
	int		 rc = -1;

	*n = 0;
	if (pg_is_null(r, row, col) ||
	    (a = json_tokener_parse(PQgetvalue(r, row, col))) == NULL)
		return -1;
	if (json_object_is_type(a, json_type_array) &&
	    (len = json_object_array_length(a)) >= 1 &&
	    len <= CRM_UNITS_MAX) {
		rc = 0;
		for (size_t i = 0; i < len && rc == 0; i++) {
			u = json_object_array_get_idx(a, i);
			if (!json_object_is_type(u, json_type_string) ||
			    (size_t)json_object_get_string_len(u) >
			    CRM_NAME_MAX)
				rc = -1;
			else
				snprintf(units[i], CRM_NAME_MAX + 1, "%s",
				    json_object_get_string(u));
		}
		if (rc == 0)
			*n = len;
	}
	json_object_put(a);
	return rc;
}

/* The units as a JSON array, malloc'd. */
char *
pg_units_json(const char units[][CRM_NAME_MAX + 1], size_t n)
{
	json_object	*a;
	char		*s;

	if ((a = json_object_new_array()) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(units[i]));
	s = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
	json_object_put(a);
	return s;
}

/* How many rows a statement changed. */
long
pg_changed(const PGresult *r)
{
	return strtol(PQcmdTuples((PGresult *)r), NULL, 10);
}

/* Undo a transaction still open on the connection; returns e. */
enum store_err
pg_rollback(struct pstore *st, const char *what, enum store_err e)
{
	struct pq r = { .q = Q_ROLLBACK };

	if (st->conn != NULL &&
	    pq_once(st, what, &r, 1, CONTINUE) == STORE_OK)
		pq_clear(&r, 1);
	return e;
}

/* The last round trip of a transaction begun in an earlier one. */
enum store_err
pg_finish(struct pstore *st, const char *what, struct pq *qs, int n)
{
	enum store_err e = pq_run(st, what, qs, n, CONTINUE);

	if (e == STORE_OK)
		pq_clear(qs, n);
	else
		pg_rollback(st, what, e);
	return e;
}

/* What the log calls this store: the database's name, never the rest
 * of the conninfo (it may hold a password). */
void
pg_make_label(struct pstore *st)
{
	PQconninfoOption	*opts, *o;
	const char		*db = NULL, *user = NULL;

	opts = PQconninfoParse(st->base.cfg.pg_conninfo, NULL);
	for (o = opts; o != NULL && o->keyword != NULL; o++)
		if (o->val != NULL && o->val[0] != '\0') {
			if (strcmp(o->keyword, "dbname") == 0)
				db = o->val;
			else if (strcmp(o->keyword, "user") == 0)
				user = o->val;
		}
	/* As libpq: no dbname is the user's name. */
	if (db == NULL)
		db = user != NULL ? user : getenv("PGDATABASE");
	snprintf(st->label, sizeof(st->label), "postgresql database %s",
	    db != NULL ? db : "(libpq's default)");
	for (char *c = st->label; *c != '\0'; c++)
		if (*c < 0x20 || *c == 0x7f)
			*c = '?';
	PQconninfoFree(opts);
}
