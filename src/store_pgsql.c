/*
 * The PostgreSQL store (store.h): one database shared by many web nodes,
 * through libpq.  Tables an operator can read with psql (see SCHEMA);
 * only portable SQL (no LISTEN/NOTIFY, advisory locks, sequences or
 * stored procedures).
 *
 * One connection per process, opened when first needed and again after
 * fork() (a connection is never shared across one: the child drops the
 * parent's without a word on it).  Every statement is prepared once per
 * connection, with its parameters bound; the statements of a transaction
 * go out together in libpq's pipeline mode, so that a transaction costs
 * one or two round trips.  Each round trip has a deadline (the
 * connection's connect_timeout plus five seconds): a server that does not
 * answer gives STORE_UNAVAILABLE, never a hung worker, and the connection
 * is dropped, to be opened again by the next call.  A statement that may
 * be repeated without harm is tried once more on a new connection when
 * the old one was lost; others report the failure.
 *
 * Secrets: passwords and pass codes are argon2id strings, keys and codes
 * SHA-256 digests, as in every store; signing keys are sealed
 * (XChaCha20-Poly1305, bound to their kid) with a key that is not in the
 * database: db_path/wrap.key on each web node, made by crmauthctl init.
 * So a dump of the database holds no secret.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "extern.h"

#define WRAP_FILE	"wrap.key"
#define SEALED_BYTES	(CRM_SEAL_OVERHEAD + CRM_SIGKEY_BYTES)
#define MAXQ		8		/* statements in one round trip */
#define MAXP		16		/* parameters of a statement */

struct pstore {
	struct store	 base;
	PGconn		*conn;
	pid_t		 pid;		/* the process conn belongs to */
	int		 timeout_ms;	/* a round trip's deadline */
	int		 bare;		/* connect without preparing (init) */
	unsigned char	 wrap[CRM_SEAL_KEY];
	int		 have_wrap;
	char		 label[96];	/* "postgresql database NAME", for logs */
};

/* ---- the schema ---------------------------------------------------------------- */

/* One transaction, every statement idempotent. */
static const char *const SCHEMA[] = {
	"CREATE TABLE IF NOT EXISTS meta ("
	" name text PRIMARY KEY, value text NOT NULL)",
	"CREATE TABLE IF NOT EXISTS users ("
	" org text NOT NULL, name text NOT NULL,"
	" pwhash text NOT NULL,"
	" units text[] NOT NULL,"
	" disabled boolean NOT NULL,"
	" created bigint NOT NULL,"
	" not_before bigint NOT NULL,"
	" PRIMARY KEY (org, name))",
	"CREATE TABLE IF NOT EXISTS apikeys ("
	" digest bytea PRIMARY KEY,"
	" org text NOT NULL, user_name text NOT NULL,"
	" revoked boolean NOT NULL, created bigint NOT NULL)",
	"CREATE INDEX IF NOT EXISTS apikeys_user ON apikeys (org, user_name)",
	"CREATE TABLE IF NOT EXISTS consumer_keys ("
	" digest bytea PRIMARY KEY,"
	" org text NOT NULL, app text NOT NULL, units text[] NOT NULL,"
	" revoked boolean NOT NULL, created bigint NOT NULL)",
	/* kind C: lookup is the code's SHA-256 in hex; kind I: the
	 * identifier, with its pass code's hash */
	"CREATE TABLE IF NOT EXISTS access_tokens ("
	" org text NOT NULL,"
	" kind char(1) NOT NULL CHECK (kind IN ('C', 'I')),"
	" lookup text NOT NULL,"
	" contact text NOT NULL, ari text NOT NULL, passhash text NOT NULL,"
	" created bigint NOT NULL,"
	" PRIMARY KEY (org, kind, lookup))",
	"CREATE TABLE IF NOT EXISTS signing_keys ("
	" kid text PRIMARY KEY,"
	" sealed bytea NOT NULL,"
	" created bigint NOT NULL,"
	" expires bigint NOT NULL,"
	" current boolean NOT NULL)",
	"CREATE UNIQUE INDEX IF NOT EXISTS signing_keys_current"
	" ON signing_keys (current) WHERE current",
	"CREATE TABLE IF NOT EXISTS released ("
	" jti bytea PRIMARY KEY, exp bigint NOT NULL)",
	"CREATE INDEX IF NOT EXISTS released_exp ON released (exp)",
	"CREATE TABLE IF NOT EXISTS cutoffs ("
	" org text NOT NULL, app text NOT NULL, cutoff bigint NOT NULL,"
	" PRIMARY KEY (org, app))",
	/* counters and trusted addresses (store.h, "Failed attempts") */
	"CREATE TABLE IF NOT EXISTS attempts ("
	" key bytea PRIMARY KEY,"
	" window_end bigint NOT NULL,"
	" count integer NOT NULL,"
	" subject text)",
	"CREATE INDEX IF NOT EXISTS attempts_end ON attempts (window_end)",
	NULL
};

/* ---- statements ------------------------------------------------------------------ */

enum q {
	Q_SCHEMA,
	Q_USER_GET, Q_APIKEY_GET, Q_CONSUMER_GET, Q_ACCESS_GET,
	Q_SIGKEY_GET, Q_SIGKEY_CURRENT,
	Q_LOOKUP_USER, Q_LOOKUP_APIKEY, Q_LOOKUP_CONSUMER, Q_TOKEN_STATE,
	Q_RELEASED_GET, Q_RELEASED_COUNT,
	Q_USER_ADD, Q_USER_LOCK, Q_USER_SET, Q_USER_DEL,
	Q_APIKEY_ADD, Q_APIKEY_PUT, Q_CONSUMER_ADD, Q_CONSUMER_PUT,
	Q_ACCESS_ADD, Q_ACCESS_REHASH,
	Q_APIKEY_REVOKE, Q_CONSUMER_REVOKE,
	Q_SIGKEY_LOCK, Q_SIGKEY_ROTATE_OLD, Q_SIGKEY_ADD, Q_SIGKEY_DEL,
	Q_SIGKEY_PRUNE,
	Q_RELEASE, Q_RELEASED_PRUNE,
	Q_ATT_ENSURE, Q_ATT_RESERVE, Q_ATT_GIVEBACK,
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

/* The columns of a user, a key, a signing key, as the readers expect. */
#define USER_COLS	"u.pwhash, array_to_json(u.units)::text, u.disabled, " \
			"u.created, u.not_before"
#define KEY_COLS	"k.kid, k.sealed, k.created, k.expires, k.current"
#define APIKEY_COLS	"a.org, a.user_name, a.revoked, a.created"
#define CONSUMER_COLS	"c.org, c.app, array_to_json(c.units)::text, " \
			"c.revoked, c.created"
#define ACCESS_COLS	"t.contact, t.ari, t.passhash, t.created"
#define UNITS(n)	"(SELECT array_agg(x) FROM json_array_elements_text(" \
			"$" #n "::json) AS x)"

static const char *const SQL[Q__MAX] = {
	[Q_SCHEMA] = "SELECT value FROM meta WHERE name = 'schema'",
	[Q_USER_GET] = "SELECT " USER_COLS " FROM users u"
	    " WHERE u.org = $1 AND u.name = $2",
	[Q_APIKEY_GET] = "SELECT " APIKEY_COLS " FROM apikeys a"
	    " WHERE a.digest = $1",
	[Q_CONSUMER_GET] = "SELECT " CONSUMER_COLS " FROM consumer_keys c"
	    " WHERE c.digest = $1",
	[Q_ACCESS_GET] = "SELECT " ACCESS_COLS " FROM access_tokens t"
	    " WHERE t.org = $1 AND t.kind = $2 AND t.lookup = $3",
	[Q_SIGKEY_GET] = "SELECT " KEY_COLS " FROM signing_keys k"
	    " WHERE k.kid = $1",
	[Q_SIGKEY_CURRENT] = "SELECT " KEY_COLS " FROM signing_keys k"
	    " WHERE k.current",
	/* What a token method reads: one row, with the current key, and
	 * NULLs where a record is missing. */
	[Q_LOOKUP_USER] = "SELECT " KEY_COLS ", " USER_COLS
	    " FROM signing_keys k LEFT JOIN users u"
	    " ON u.org = $1 AND u.name = $2 WHERE k.current",
	[Q_LOOKUP_APIKEY] = "SELECT " KEY_COLS ", " USER_COLS ", " APIKEY_COLS
	    " FROM signing_keys k LEFT JOIN apikeys a ON a.digest = $1"
	    " LEFT JOIN users u ON u.org = a.org AND u.name = a.user_name"
	    " WHERE k.current",
	[Q_LOOKUP_CONSUMER] = "SELECT " KEY_COLS ", " CONSUMER_COLS ", "
	    ACCESS_COLS ", co.cutoff"
	    " FROM signing_keys k LEFT JOIN consumer_keys c ON c.digest = $1"
	    " LEFT JOIN access_tokens t"
	    " ON t.org = c.org AND t.kind = $2 AND t.lookup = $3"
	    " LEFT JOIN cutoffs co ON co.org = c.org AND co.app = c.app"
	    " WHERE k.current",
	/* What a check reads: the key, the release, the principal ($3:
	 * a consumer application, else a user). */
	[Q_TOKEN_STATE] = "SELECT " KEY_COLS ","
	    " EXISTS (SELECT 1 FROM released r WHERE r.jti = $2),"
	    " u.created, u.disabled, u.not_before, co.cutoff"
	    " FROM (SELECT $1::text AS kid) q"
	    " LEFT JOIN signing_keys k ON k.kid = q.kid"
	    " LEFT JOIN users u ON NOT $3::boolean AND u.org = $4"
	    " AND u.name = $5"
	    " LEFT JOIN cutoffs co ON $3::boolean AND co.org = $4"
	    " AND co.app = $5",
	[Q_RELEASED_GET] = "SELECT exp FROM released WHERE jti = $1",
	[Q_RELEASED_COUNT] = "SELECT count(*) FROM released",
	[Q_USER_ADD] = "INSERT INTO users VALUES ($1, $2, $3, " UNITS(4)
	    ", $5, $6, $7) ON CONFLICT DO NOTHING",
	[Q_USER_LOCK] = "SELECT " USER_COLS " FROM users u"
	    " WHERE u.org = $1 AND u.name = $2 FOR UPDATE",
	[Q_USER_SET] = "UPDATE users SET pwhash = $3, units = " UNITS(4) ","
	    " disabled = $5, created = $6, not_before = $7"
	    " WHERE org = $1 AND name = $2",
	/* The user, and the user's Web API keys with it. */
	[Q_USER_DEL] = "WITH d AS (DELETE FROM users WHERE org = $1"
	    " AND name = $2 RETURNING 1), k AS (DELETE FROM apikeys"
	    " WHERE org = $1 AND user_name = $2"
	    " AND EXISTS (SELECT 1 FROM d)) SELECT count(*) FROM d",
	[Q_APIKEY_ADD] = "INSERT INTO apikeys VALUES ($1, $2, $3, $4, $5)"
	    " ON CONFLICT DO NOTHING",
	[Q_APIKEY_PUT] = "INSERT INTO apikeys VALUES ($1, $2, $3, $4, $5)"
	    " ON CONFLICT (digest) DO UPDATE SET org = EXCLUDED.org,"
	    " user_name = EXCLUDED.user_name, revoked = EXCLUDED.revoked,"
	    " created = EXCLUDED.created",
	[Q_CONSUMER_ADD] = "INSERT INTO consumer_keys VALUES ($1, $2, $3, "
	    UNITS(4) ", $5, $6) ON CONFLICT DO NOTHING",
	[Q_CONSUMER_PUT] = "INSERT INTO consumer_keys VALUES ($1, $2, $3, "
	    UNITS(4) ", $5, $6) ON CONFLICT (digest) DO UPDATE SET"
	    " org = EXCLUDED.org, app = EXCLUDED.app, units = EXCLUDED.units,"
	    " revoked = EXCLUDED.revoked, created = EXCLUDED.created",
	[Q_ACCESS_ADD] = "INSERT INTO access_tokens VALUES"
	    " ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
	[Q_ACCESS_REHASH] = "UPDATE access_tokens SET passhash = $4"
	    " WHERE org = $1 AND kind = 'I' AND lookup = $2"
	    " AND passhash = $3",
	/* A key revoked, and its principal cut off, in one statement. */
	[Q_APIKEY_REVOKE] = "WITH k AS (UPDATE apikeys SET revoked = true"
	    " WHERE digest = $1 RETURNING org, user_name),"
	    " u AS (UPDATE users u SET not_before ="
	    " GREATEST(u.not_before, $2) FROM k"
	    " WHERE u.org = k.org AND u.name = k.user_name)"
	    " SELECT count(*) FROM k",
	[Q_CONSUMER_REVOKE] = "WITH k AS (UPDATE consumer_keys SET"
	    " revoked = true WHERE digest = $1 RETURNING org, app),"
	    " c AS (INSERT INTO cutoffs SELECT org, app, $2 FROM k"
	    " ON CONFLICT (org, app) DO UPDATE SET"
	    " cutoff = GREATEST(cutoffs.cutoff, EXCLUDED.cutoff))"
	    " SELECT count(*) FROM k",
	[Q_SIGKEY_LOCK] = "SELECT " KEY_COLS " FROM signing_keys k"
	    " WHERE k.current FOR UPDATE",
	[Q_SIGKEY_ROTATE_OLD] = "UPDATE signing_keys SET current = false,"
	    " expires = $2 WHERE kid = $1",
	[Q_SIGKEY_ADD] = "INSERT INTO signing_keys VALUES ($1, $2, $3, $4, $5)",
	[Q_SIGKEY_DEL] = "DELETE FROM signing_keys WHERE kid = $1",
	[Q_SIGKEY_PRUNE] = "DELETE FROM signing_keys WHERE NOT current"
	    " AND expires <= $1",
	/* Idempotent; prunes a batch of expired releases and any expired
	 * signing key, as every LMDB write does (not waiting for rows
	 * another release is pruning). */
	[Q_RELEASE] = "WITH r AS (INSERT INTO released VALUES ($1, $2)"
	    " ON CONFLICT DO NOTHING), p AS (DELETE FROM released WHERE jti IN"
	    " (SELECT jti FROM released WHERE exp <= $3 ORDER BY exp"
	    " LIMIT 64 FOR UPDATE SKIP LOCKED)), k AS (DELETE FROM signing_keys"
	    " WHERE kid IN (SELECT kid FROM signing_keys WHERE NOT current"
	    " AND expires <= $3 FOR UPDATE SKIP LOCKED)) SELECT 1",
	[Q_RELEASED_PRUNE] = "DELETE FROM released WHERE jti IN"
	    " (SELECT jti FROM released WHERE exp <= $1 ORDER BY exp"
	    " LIMIT 1000 FOR UPDATE SKIP LOCKED)",
	/*
	 * Failed attempts (store.h): att_reserve_rule and att_giveback_rule
	 * as statements, so that one round trip counts, atomically, however
	 * many nodes count at once.  Rows are made first (count 0: none),
	 * so that the reservation can lock every one of its counters before
	 * it decides; a row locked is read as it is now.
	 */
	[Q_ATT_ENSURE] = "INSERT INTO attempts SELECT k, 0, 0, NULL FROM"
	    " (VALUES ($1::bytea), ($2::bytea), ($3::bytea)) v(k)"
	    " WHERE k IS NOT NULL ON CONFLICT DO NOTHING",
	/* $1-3 keys, $4-6 limits, $7-9 exempt, $10-12 subjects, $13 the
	 * trust key, $14 now, $15 the window.  Held (until > now): nothing
	 * counted.  Else one more in each, in its window or a new one; the
	 * subject kept once the limit is reached. */
	[Q_ATT_RESERVE] = "WITH v AS (SELECT * FROM (VALUES"
	    " ($1::bytea, $4::bigint, $7::boolean, $10::text),"
	    " ($2::bytea, $5::bigint, $8::boolean, $11::text),"
	    " ($3::bytea, $6::bigint, $9::boolean, $12::text))"
	    " x (k, lim, ex, subj) WHERE k IS NOT NULL),"
	    " tr AS (SELECT EXISTS (SELECT 1 FROM attempts WHERE"
	    " key = $13::bytea AND window_end > $14::bigint) AS trusted),"
	    " cur AS (SELECT key, window_end, count FROM attempts"
	    " WHERE key IN (SELECT k FROM v) FOR UPDATE),"
	    " lk AS (SELECT coalesce(max(cur.window_end), 0) AS until"
	    " FROM cur JOIN v ON v.k = cur.key CROSS JOIN tr"
	    " WHERE cur.count > 0 AND cur.window_end > $14"
	    " AND cur.count >= v.lim AND NOT (v.ex AND tr.trusted)),"
	    " up AS (UPDATE attempts a SET"
	    " window_end = CASE WHEN a.count = 0 OR a.window_end <= $14"
	    " THEN $14 + $15::bigint ELSE a.window_end END,"
	    " count = CASE WHEN a.count = 0 OR a.window_end <= $14 THEN 1"
	    " ELSE least(a.count::bigint + 1, 2147483647) END,"
	    " subject = CASE WHEN (CASE WHEN a.count = 0 OR"
	    " a.window_end <= $14 THEN 1 ELSE a.count::bigint + 1 END)"
	    " >= v.lim THEN v.subj ELSE a.subject END"
	    " FROM v WHERE a.key = v.k AND (SELECT until FROM lk) <= $14"
	    " RETURNING a.key, a.window_end)"
	    " SELECT lk.until, tr.trusted, up.key, up.window_end"
	    " FROM lk CROSS JOIN tr LEFT JOIN up ON true",
	/* $1-3 keys, $4-6 the windows they counted in, $7-9 clear on
	 * success, $10 success, $11 the trust key (NULL: none), $12 until
	 * when.  Each counter still in that window gets its one back, or
	 * goes (cleared, or back to none). */
	[Q_ATT_GIVEBACK] = "WITH v AS (SELECT * FROM (VALUES"
	    " ($1::bytea, $4::bigint, $7::boolean),"
	    " ($2::bytea, $5::bigint, $8::boolean),"
	    " ($3::bytea, $6::bigint, $9::boolean)) x (k, e, clr)"
	    " WHERE k IS NOT NULL),"
	    " cur AS (SELECT c.key, c.count, ($10::boolean AND v.clr)"
	    " OR c.count <= 1 AS gone FROM attempts c JOIN v ON v.k = c.key"
	    " WHERE c.count > 0 AND c.window_end = v.e FOR UPDATE OF c),"
	    " d AS (DELETE FROM attempts a USING cur WHERE a.key = cur.key"
	    " AND cur.gone RETURNING 1),"
	    " u AS (UPDATE attempts a SET count = cur.count - 1 FROM cur"
	    " WHERE a.key = cur.key AND NOT cur.gone RETURNING 1),"
	    " t AS (INSERT INTO attempts SELECT $11::bytea, $12::bigint, 0,"
	    " NULL WHERE $11::bytea IS NOT NULL ON CONFLICT (key) DO UPDATE"
	    " SET window_end = EXCLUDED.window_end RETURNING 1)"
	    " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM u),"
	    " (SELECT count(*) FROM t)",
	[Q_ATT_PRUNE] = "DELETE FROM attempts WHERE key IN (SELECT key FROM"
	    " attempts WHERE window_end <= $1 ORDER BY window_end LIMIT $2"
	    " FOR UPDATE SKIP LOCKED)",
	[Q_ATT_LOCKS] = "SELECT key, subject, count, window_end FROM attempts"
	    " WHERE subject IS NOT NULL AND window_end > $1 ORDER BY key",
	[Q_ATT_CLEAR] = "DELETE FROM attempts WHERE key = $1",
	[Q_ATT_CLEAR_PREFIX] = "DELETE FROM attempts WHERE"
	    " substring(key FROM 1 FOR length($1::bytea)) = $1::bytea",
	[Q_ATT_USAGE] = "SELECT pg_total_relation_size('attempts'),"
	    " (SELECT count(*) FROM attempts)",
	[Q_USER_LIST] = "SELECT u.org, u.name, " USER_COLS " FROM users u"
	    " ORDER BY u.org, u.name",
	[Q_USER_LIST_ORG] = "SELECT u.org, u.name, " USER_COLS
	    " FROM users u WHERE u.org = $1 ORDER BY u.name",
	[Q_APIKEY_LIST] = "SELECT a.digest, " APIKEY_COLS " FROM apikeys a"
	    " ORDER BY a.digest",
	[Q_CONSUMER_LIST] = "SELECT c.digest, " CONSUMER_COLS
	    " FROM consumer_keys c ORDER BY c.digest",
	[Q_SIGKEY_LIST] = "SELECT " KEY_COLS " FROM signing_keys k"
	    " ORDER BY k.kid",
	/* export: one snapshot; import: into an empty store */
	[Q_SNAPSHOT] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	[Q_ACCESS_LIST] = "SELECT t.org, t.kind, t.lookup, " ACCESS_COLS
	    " FROM access_tokens t ORDER BY 1, 2, 3",
	[Q_RELEASED_LIST] = "SELECT jti, exp FROM released WHERE exp > $1"
	    " ORDER BY exp, jti",
	[Q_CUTOFF_LIST] = "SELECT org, app, cutoff FROM cutoffs ORDER BY 1, 2",
	[Q_EMPTY] = "SELECT EXISTS (SELECT 1 FROM users)"
	    " OR EXISTS (SELECT 1 FROM apikeys)"
	    " OR EXISTS (SELECT 1 FROM consumer_keys)"
	    " OR EXISTS (SELECT 1 FROM access_tokens)"
	    " OR EXISTS (SELECT 1 FROM released)"
	    " OR EXISTS (SELECT 1 FROM cutoffs)",
	[Q_SIGKEY_CLEAR] = "DELETE FROM signing_keys",
	[Q_SIGKEY_LOAD] = "INSERT INTO signing_keys VALUES ($1, $2, $3, $4, $5)"
	    " ON CONFLICT DO NOTHING",
	[Q_RELEASED_LOAD] = "INSERT INTO released VALUES ($1, $2)"
	    " ON CONFLICT DO NOTHING",
	[Q_CUTOFF_LOAD] = "INSERT INTO cutoffs VALUES ($1, $2, $3)"
	    " ON CONFLICT DO NOTHING",
	[Q_BEGIN] = "BEGIN",
	/* Counters may be lost in a crash: no flush waited for. */
	[Q_ASYNC] = "SET LOCAL synchronous_commit TO OFF",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
};

/* ---- a round trip ------------------------------------------------------------------ */

/* One statement of a round trip: its parameters (text, or with len > 0 a
 * bytea in binary; NULL is SQL NULL) and, afterwards, its result. */
struct pq {
	enum q		 q;
	int		 n;
	const char	*v[MAXP];
	int		 len[MAXP];
	PGresult	*res;
};

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

static void
drop(struct pstore *st)
{
	/* After fork() the connection is the parent's: saying goodbye on
	 * it would end the parent's session too. */
	if (st->conn != NULL && st->pid == getpid())
		PQfinish(st->conn);
	st->conn = NULL;
}

static enum store_err
unavailable(struct pstore *st, const char *what, const char *why)
{
	char	 msg[512];
	size_t	 n;

	/* libpq's messages end with a newline; keep one line. */
	snprintf(msg, sizeof(msg), "%s", why != NULL ? why : "");
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s", what,
	    msg[0] != '\0' ? msg : "the database does not answer");
	drop(st);
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

/* Open a connection, with a deadline, and prepare every statement. */
static enum store_err
connect_db(struct pstore *st)
{
	const char		*vals[sizeof(defkeys) / sizeof(defkeys[0])];
	PQconninfoOption	*opts, *o;
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	PGresult		*res;
	int64_t			 deadline;
	int			 secs = 5, i, fd;

	drop(st);
	/* The deadline follows the user's connect_timeout, if any. */
	if ((opts = PQconninfoParse(st->base.cfg.pg_conninfo, NULL)) != NULL) {
		for (o = opts; o->keyword != NULL; o++)
			if (strcmp(o->keyword, "connect_timeout") == 0 &&
			    o->val != NULL && atoi(o->val) > 0)
				secs = atoi(o->val) < 2 ? 2 : atoi(o->val);
		PQconninfoFree(opts);
	} else
		return unavailable(st, "pg_conninfo", "cannot be parsed");
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
	if ((st->conn = PQconnectStartParams(defkeys, vals, 1)) == NULL)
		return unavailable(st, st->label, "out of memory");
	deadline = now_ms() + (int64_t)secs * 1000;
	while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
		if ((fd = PQsocket(st->conn)) < 0 ||
		    wait_fd(fd, ps == PGRES_POLLING_READING ? POLLIN : POLLOUT,
		    deadline) == -1)
			return unavailable(st, st->label,
			    PQstatus(st->conn) == CONNECTION_BAD ?
			    PQerrorMessage(st->conn) : "connecting timed out");
		ps = PQconnectPoll(st->conn);
	}
	if (ps == PGRES_POLLING_FAILED)
		return unavailable(st, st->label, PQerrorMessage(st->conn));
	PQsetNoticeProcessor(st->conn, notice, st);
	if (st->bare)
		return STORE_OK;
	/* Every statement prepared, in one round trip. */
	if (PQenterPipelineMode(st->conn) != 1)
		return unavailable(st, st->label, PQerrorMessage(st->conn));
	for (i = 0; i < Q__MAX; i++) {
		char name[8];

		snprintf(name, sizeof(name), "q%d", i);
		if (PQsendPrepare(st->conn, name, SQL[i], 0, NULL) != 1)
			return unavailable(st, st->label,
			    PQerrorMessage(st->conn));
	}
	if (PQpipelineSync(st->conn) != 1)
		return unavailable(st, st->label, PQerrorMessage(st->conn));
	deadline = now_ms() + st->timeout_ms;
	for (i = 0; i <= Q__MAX; i++) {
		for (;;) {
			while (PQisBusy(st->conn)) {
				if (wait_fd(PQsocket(st->conn), POLLIN,
				    deadline) == -1 ||
				    PQconsumeInput(st->conn) != 1)
					return unavailable(st, st->label,
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
				drop(st);
				return nt ? STORE_NOTINIT : STORE_ERROR;
			}
			PQclear(res);
		}
	}
prepared:
	return STORE_OK;
}

static void
pq_clear(struct pq *qs, int n)
{
	for (int i = 0; i < n; i++) {
		PQclear(qs[i].res);
		qs[i].res = NULL;
	}
}

/* What a failed statement means. */
static enum store_err
failed(struct pstore *st, const char *what, PGresult *res)
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
	/* Connection, shutdown, cannot connect now, statement timeout. */
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0) {
		drop(st);
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

/* How a round trip may use the connection. */
enum use {
	CONNECT,	/* open one if there is none */
	RETRY,		/* that, and once more if it was lost (idempotent) */
	CONTINUE,	/* the open one only: a transaction goes on */
};

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

	if (st->conn != NULL && st->pid == getpid() && closed_by_server(st))
		drop(st);
	if (st->conn == NULL || st->pid != getpid() ||
	    PQstatus(st->conn) != CONNECTION_OK) {
		if (use == CONTINUE)
			return unavailable(st, what, "the connection was lost "
			    "in a transaction");
		if ((e = connect_db(st)) != STORE_OK)
			return e;
	}
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "q%d", qs[i].q);
		for (int j = 0; j < qs[i].n; j++)
			fmt[j] = qs[i].len[j] > 0;
		if (PQsendQueryPrepared(st->conn, name, qs[i].n, qs[i].v,
		    qs[i].len, fmt, 0) != 1)
			return unavailable(st, what, PQerrorMessage(st->conn));
	}
	if (PQpipelineSync(st->conn) != 1)
		return unavailable(st, what, PQerrorMessage(st->conn));
	deadline = now_ms() + st->timeout_ms;
	for (i = 0; i <= n; i++) {
		/* Each statement's result, then NULL; then the sync. */
		for (;;) {
			while (PQisBusy(st->conn))
				if (wait_fd(PQsocket(st->conn), POLLIN,
				    deadline) == -1 ||
				    PQconsumeInput(st->conn) != 1) {
					pq_clear(qs, n);
					return unavailable(st, what,
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
					e = failed(st, what, res);
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
static enum store_err
pq_run(struct pstore *st, const char *what, struct pq *qs, int n,
    enum use use)
{
	enum store_err e = pq_once(st, what, qs, n, use);

	if (e == STORE_UNAVAILABLE && use == RETRY)
		e = pq_once(st, what, qs, n, use);
	return e;
}

/* A statement alone (idempotent or not): its result in q->res. */
static enum store_err
pq1(struct pstore *st, const char *what, struct pq *q, int idempotent)
{
	return pq_run(st, what, q, 1, idempotent ? RETRY : CONNECT);
}

/* ---- values in and out ---------------------------------------------------------- */

struct num {
	char	 s[24];
};

static const char *
num(struct num *n, int64_t v)
{
	snprintf(n->s, sizeof(n->s), "%lld", (long long)v);
	return n->s;
}

static void
param(struct pq *q, const char *v)
{
	q->v[q->n] = v;
	q->len[q->n++] = 0;
}

static void
param_bytes(struct pq *q, const void *v, size_t len)
{
	q->v[q->n] = v;
	q->len[q->n++] = (int)len;
}

static int
is_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col);
}

static int64_t
get_i64(const PGresult *r, int row, int col)
{
	return is_null(r, row, col) ? 0 :
	    strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int
get_bool(const PGresult *r, int row, int col)
{
	return !is_null(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

/* A text column into buf; -1 if it does not fit (not a record of ours). */
static int
get_str(const PGresult *r, int row, int col, char *buf, size_t size)
{
	const char	*v = is_null(r, row, col) ? "" : PQgetvalue(r, row, col);
	size_t		 n = strlen(v);

	if (n >= size)
		return -1;
	memcpy(buf, v, n + 1);
	return 0;
}

/* A bytea column (text form: \x and hex) of exactly n bytes. */
static int
get_bytes(const PGresult *r, int row, int col, unsigned char *out, size_t n)
{
	const char *v;

	if (is_null(r, row, col))
		return -1;
	v = PQgetvalue(r, row, col);
	if (v[0] != '\\' || v[1] != 'x')
		return -1;
	return sec_unhex(out, n, v + 2, strlen(v + 2));
}

/* Units as JSON text (both ways: array_to_json out, json in). */
static int
get_units(const PGresult *r, int row, int col,
    char units[][CRM_NAME_MAX + 1], size_t *n)
{
	json_object	*a, *u;
	size_t		 len;
	int		 rc = -1;

	*n = 0;
	if (is_null(r, row, col) ||
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
static char *
units_json(const char units[][CRM_NAME_MAX + 1], size_t n)
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

/* A row's user from column col (USER_COLS); 0, or -1 when damaged. */
static int
get_user(const PGresult *r, int row, int col, struct user_rec *u)
{
	memset(u, 0, sizeof(*u));
	if (get_str(r, row, col, u->pwhash, sizeof(u->pwhash)) == -1 ||
	    get_units(r, row, col + 1, u->units, &u->nunits) == -1)
		return -1;
	u->disabled = get_bool(r, row, col + 2);
	u->created = get_i64(r, row, col + 3);
	u->not_before = get_i64(r, row, col + 4);
	return 0;
}

static int
get_apikey(const PGresult *r, int row, int col, struct apikey_rec *a)
{
	memset(a, 0, sizeof(*a));
	if (get_str(r, row, col, a->org, sizeof(a->org)) == -1 ||
	    get_str(r, row, col + 1, a->user, sizeof(a->user)) == -1)
		return -1;
	a->revoked = get_bool(r, row, col + 2);
	a->created = get_i64(r, row, col + 3);
	return 0;
}

static int
get_consumer(const PGresult *r, int row, int col, struct consumer_rec *c)
{
	memset(c, 0, sizeof(*c));
	if (get_str(r, row, col, c->org, sizeof(c->org)) == -1 ||
	    get_str(r, row, col + 1, c->app, sizeof(c->app)) == -1 ||
	    get_units(r, row, col + 2, c->units, &c->nunits) == -1)
		return -1;
	c->revoked = get_bool(r, row, col + 3);
	c->created = get_i64(r, row, col + 4);
	return 0;
}

static int
get_access(const PGresult *r, int row, int col, struct access_rec *a)
{
	memset(a, 0, sizeof(*a));
	if (get_str(r, row, col, a->contact, sizeof(a->contact)) == -1 ||
	    get_str(r, row, col + 1, a->ari, sizeof(a->ari)) == -1 ||
	    get_str(r, row, col + 2, a->passhash, sizeof(a->passhash)) == -1)
		return -1;
	a->created = get_i64(r, row, col + 3);
	return 0;
}

/* A signing key (KEY_COLS), unsealed with the node's wrap key. */
static int
get_sigkey(struct pstore *st, const PGresult *r, int row, int col,
    struct sigkey *k)
{
	unsigned char	sealed[SEALED_BYTES];
	int		rc;

	memset(k, 0, sizeof(*k));
	if (!st->have_wrap ||
	    get_str(r, row, col, k->kid, sizeof(k->kid)) == -1 ||
	    strlen(k->kid) != CRM_KID_HEX ||
	    get_bytes(r, row, col + 1, sealed, sizeof(sealed)) == -1)
		return -1;
	rc = sec_unseal(k->secret, sealed, sizeof(sealed), st->wrap, k->kid);
	k->created = get_i64(r, row, col + 2);
	k->expires = get_i64(r, row, col + 3);
	k->current = get_bool(r, row, col + 4);
	return rc;
}

/* A record we cannot read; or no wrap key here, which is a set-up
 * problem (STORE_ERROR, a 503), not damage. */
static enum store_err
damaged(struct pstore *st, const char *what)
{
	snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s", what,
	    st->have_wrap ? "a record cannot be read (or a signing key "
	    "cannot be unsealed with this node's " WRAP_FILE ")" :
	    "no " WRAP_FILE " in db_path: copy it from the node where "
	    "crmauthctl init first ran");
	return st->have_wrap ? STORE_CORRUPT : STORE_ERROR;
}

/* The access token's kind and lookup text (a code's digest in hex). */
static void
access_key(char kind[2], char hex[2 * CRM_DIGEST_BYTES + 1],
    const unsigned char *code, const char *ident, const char **lookup)
{
	kind[0] = code != NULL ? 'C' : 'I';
	kind[1] = '\0';
	if (code != NULL) {
		sec_hex(hex, code, CRM_DIGEST_BYTES);
		*lookup = hex;
	} else
		*lookup = ident;
}

/* ---- reads ------------------------------------------------------------------------ */

static enum store_err
p_ping(struct store *s)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_SCHEMA };
	enum store_err	 e;

	if ((e = pq1(st, "ping", &q, 1)) != STORE_OK)
		return e;
	e = PQntuples(q.res) == 1 ? STORE_OK : STORE_NOTINIT;
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_user_get(struct store *s, const char *org, const char *user,
    struct user_rec *u)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_USER_GET };
	enum store_err	 e;

	param(&q, org);
	param(&q, user);
	if ((e = pq1(st, "user get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = STORE_NOTFOUND;
	else if (get_user(q.res, 0, 0, u) == -1)
		e = damaged(st, "user get");
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_apikey_get(struct store *s, const unsigned char *digest,
    struct apikey_rec *a)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_APIKEY_GET };
	enum store_err	 e;

	param_bytes(&q, digest, CRM_DIGEST_BYTES);
	if ((e = pq1(st, "apikey get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = STORE_NOTFOUND;
	else if (get_apikey(q.res, 0, 0, a) == -1)
		e = damaged(st, "apikey get");
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_consumer_get(struct store *s, const unsigned char *digest,
    struct consumer_rec *c)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_CONSUMER_GET };
	enum store_err	 e;

	param_bytes(&q, digest, CRM_DIGEST_BYTES);
	if ((e = pq1(st, "consumer key get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = STORE_NOTFOUND;
	else if (get_consumer(q.res, 0, 0, c) == -1)
		e = damaged(st, "consumer key get");
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_access_get(struct store *s, const char *org, const unsigned char *code,
    const char *ident, struct access_rec *a)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_ACCESS_GET };
	char		 kind[2], hex[2 * CRM_DIGEST_BYTES + 1];
	const char	*lookup;
	enum store_err	 e;

	access_key(kind, hex, code, ident, &lookup);
	param(&q, org);
	param(&q, kind);
	param(&q, lookup);
	if ((e = pq1(st, "access token get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = STORE_NOTFOUND;
	else if (get_access(q.res, 0, 0, a) == -1)
		e = damaged(st, "access token get");
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_sigkey_get(struct store *s, const char *kid, struct sigkey *k)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = kid != NULL ? Q_SIGKEY_GET : Q_SIGKEY_CURRENT };
	enum store_err	 e;

	if (kid != NULL) {
		if (strlen(kid) != CRM_KID_HEX)
			return STORE_NOTFOUND;
		param(&q, kid);
	}
	if ((e = pq1(st, "signing key get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = kid != NULL ? STORE_NOTFOUND : STORE_NOTINIT;
	else if (get_sigkey(st, q.res, 0, 0, k) == -1)
		e = damaged(st, "signing key get");
	pq_clear(&q, 1);
	return e;
}

/* The one row of a lookup: the current key, and its records. */
static enum store_err
lookup_row(struct pstore *st, const char *what, struct pq *q,
    struct lookup *l)
{
	enum store_err e;

	memset(l, 0, sizeof(*l));
	if ((e = pq1(st, what, q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q->res) != 1) {
		pq_clear(q, 1);
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s",
		    what, "no current signing key");
		return STORE_NOTINIT;
	}
	if (get_sigkey(st, q->res, 0, 0, &l->key) == -1) {
		pq_clear(q, 1);
		return damaged(st, what);
	}
	return STORE_OK;
}

static enum store_err
p_lookup_user(struct store *s, const char *org, const char *user,
    struct lookup *l)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_LOOKUP_USER };
	enum store_err	 e;

	param(&q, org);
	param(&q, user);
	if ((e = lookup_row(st, "user lookup", &q, l)) != STORE_OK)
		return e;
	if ((l->user_found = !is_null(q.res, 0, 5)) &&
	    get_user(q.res, 0, 5, &l->user) == -1)
		e = damaged(st, "user lookup");
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_lookup_apikey(struct store *s, const unsigned char *digest,
    struct lookup *l)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_LOOKUP_APIKEY };
	enum store_err	 e;

	param_bytes(&q, digest, CRM_DIGEST_BYTES);
	if ((e = lookup_row(st, "apikey lookup", &q, l)) != STORE_OK)
		return e;
	if (((l->user_found = !is_null(q.res, 0, 5)) &&
	    get_user(q.res, 0, 5, &l->user) == -1) ||
	    ((l->apikey_found = !is_null(q.res, 0, 10)) &&
	    get_apikey(q.res, 0, 10, &l->apikey) == -1))
		e = damaged(st, "apikey lookup");
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_lookup_consumer(struct store *s, const unsigned char *digest,
    const unsigned char *code, const char *ident, struct lookup *l)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_LOOKUP_CONSUMER };
	char		 kind[2], hex[2 * CRM_DIGEST_BYTES + 1];
	const char	*lookup;
	enum store_err	 e;

	access_key(kind, hex, code, ident, &lookup);
	param_bytes(&q, digest, CRM_DIGEST_BYTES);
	param(&q, kind);
	param(&q, lookup);
	if ((e = lookup_row(st, "consumer lookup", &q, l)) != STORE_OK)
		return e;
	if (((l->consumer_found = !is_null(q.res, 0, 5)) &&
	    get_consumer(q.res, 0, 5, &l->consumer) == -1) ||
	    ((l->access_found = !is_null(q.res, 0, 10)) &&
	    get_access(q.res, 0, 10, &l->access) == -1))
		e = damaged(st, "consumer lookup");
	l->app_cutoff = get_i64(q.res, 0, 14);
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_token_state(struct store *s, const char *kid, const unsigned char *jti,
    const struct principal *who, struct tok_state *t)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_TOKEN_STATE };
	enum store_err	 e;

	memset(t, 0, sizeof(*t));
	param(&q, kid);
	if (jti != NULL)
		param_bytes(&q, jti, CRM_JTI_BYTES);
	else
		param(&q, NULL);
	param(&q, who != NULL && who->consumer ? "t" : "f");
	param(&q, who != NULL ? who->org : NULL);
	param(&q, who != NULL ? who->name : NULL);
	if ((e = pq1(st, "token state", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) != 1) {
		pq_clear(&q, 1);
		return damaged(st, "token state");
	}
	if ((t->key_found = !is_null(q.res, 0, 0)) &&
	    get_sigkey(st, q.res, 0, 0, &t->key) == -1) {
		pq_clear(&q, 1);
		return damaged(st, "token state");
	}
	t->released = get_bool(q.res, 0, 5);
	if (who != NULL && who->consumer) {
		t->principal_found = 1;
		t->cutoff = get_i64(q.res, 0, 9);
	} else if (who != NULL && !is_null(q.res, 0, 6)) {
		t->principal_found = 1;
		t->created = get_i64(q.res, 0, 6);
		t->disabled = get_bool(q.res, 0, 7);
		t->cutoff = get_i64(q.res, 0, 8);
	}
	pq_clear(&q, 1);
	return STORE_OK;
}

static enum store_err
p_released_get(struct store *s, const unsigned char *jti, int64_t *exp)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_RELEASED_GET };
	enum store_err	 e;

	param_bytes(&q, jti, CRM_JTI_BYTES);
	if ((e = pq1(st, "released get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = STORE_NOTFOUND;
	else
		*exp = get_i64(q.res, 0, 0);
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_released_count(struct store *s, size_t *n)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_RELEASED_COUNT };
	enum store_err	 e;

	if ((e = pq1(st, "released count", &q, 1)) != STORE_OK)
		return e;
	*n = (size_t)get_i64(q.res, 0, 0);
	pq_clear(&q, 1);
	return STORE_OK;
}

/* ---- writes ------------------------------------------------------------------------ */

/* How many rows a statement changed. */
static long
changed(const PGresult *r)
{
	return strtol(PQcmdTuples((PGresult *)r), NULL, 10);
}

/* The parameters of a user row (org, name, then USER_COLS order). */
static int
user_params(struct pq *q, const char *org, const char *user,
    const struct user_rec *u, struct num nums[2], char **units)
{
	if ((*units = units_json(u->units, u->nunits)) == NULL)
		return -1;
	param(q, org);
	param(q, user);
	param(q, u->pwhash);
	param(q, *units);
	param(q, u->disabled ? "t" : "f");
	param(q, num(&nums[0], u->created));
	param(q, num(&nums[1], u->not_before));
	return 0;
}

static enum store_err
p_user_add(struct store *s, const char *org, const char *user,
    const struct user_rec *u)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_USER_ADD };
	struct num	 nums[2];
	char		*units;
	enum store_err	 e;

	if (user_params(&q, org, user, u, nums, &units) == -1)
		return STORE_ERROR;
	e = pq1(st, "user add", &q, 0);
	free(units);
	if (e != STORE_OK)
		return e;
	e = changed(q.res) == 1 ? STORE_OK : STORE_EXISTS;
	pq_clear(&q, 1);
	return e;
}

/* Undo a transaction still open on the connection; returns e. */
static enum store_err
rollback(struct pstore *st, const char *what, enum store_err e)
{
	struct pq r = { .q = Q_ROLLBACK };

	if (st->conn != NULL &&
	    pq_once(st, what, &r, 1, CONTINUE) == STORE_OK)
		pq_clear(&r, 1);
	return e;
}

/* The last round trip of a transaction begun in an earlier one. */
static enum store_err
finish(struct pstore *st, const char *what, struct pq *qs, int n)
{
	enum store_err e = pq_run(st, what, qs, n, CONTINUE);

	if (e == STORE_OK)
		pq_clear(qs, n);
	else
		rollback(st, what, e);
	return e;
}

static enum store_err
p_user_change(struct store *s, const char *org, const char *user,
    user_change_fn change, void *arg, struct user_rec *after)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 b[2] = { { .q = Q_BEGIN }, { .q = Q_USER_LOCK } };
	struct pq	 w[2] = { { .q = Q_USER_SET }, { .q = Q_COMMIT } };
	struct user_rec	 u;
	struct num	 nums[2];
	char		*units = NULL;
	enum store_err	 e;

	param(&b[1], org);
	param(&b[1], user);
	if ((e = pq_run(st, "user change", b, 2, CONNECT)) != STORE_OK)
		return e;
	if (PQntuples(b[1].res) == 0)
		e = STORE_NOTFOUND;
	else if (get_user(b[1].res, 0, 0, &u) == -1)
		e = damaged(st, "user change");
	pq_clear(b, 2);
	if (e != STORE_OK)
		return rollback(st, "user change", e);
	if (change(&u, arg) != 0)
		w[0].q = Q_ROLLBACK;	/* nothing to write */
	else if (user_params(&w[0], org, user, &u, nums, &units) == -1)
		return rollback(st, "user change", STORE_ERROR);
	e = finish(st, "user change", w, w[0].q == Q_ROLLBACK ? 1 : 2);
	free(units);
	if (e == STORE_OK && after != NULL)
		*after = u;
	explicit_bzero(&u, sizeof(u));
	return e;
}

static enum store_err
p_user_del(struct store *s, const char *org, const char *user)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_USER_DEL };
	enum store_err	 e;

	param(&q, org);
	param(&q, user);
	if ((e = pq1(st, "user del", &q, 0)) != STORE_OK)
		return e;
	e = get_i64(q.res, 0, 0) == 1 ? STORE_OK : STORE_NOTFOUND;
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_apikey_put(struct store *s, const unsigned char *digest,
    const struct apikey_rec *a, int must_be_new)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = must_be_new ? Q_APIKEY_ADD : Q_APIKEY_PUT };
	struct num	 n;
	enum store_err	 e;

	param_bytes(&q, digest, CRM_DIGEST_BYTES);
	param(&q, a->org);
	param(&q, a->user);
	param(&q, a->revoked ? "t" : "f");
	param(&q, num(&n, a->created));
	if ((e = pq1(st, "apikey put", &q, !must_be_new)) != STORE_OK)
		return e;
	e = changed(q.res) == 1 ? STORE_OK : STORE_EXISTS;
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_consumer_put(struct store *s, const unsigned char *digest,
    const struct consumer_rec *c, int must_be_new)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = must_be_new ? Q_CONSUMER_ADD : Q_CONSUMER_PUT };
	struct num	 n;
	char		*units;
	enum store_err	 e;

	if ((units = units_json(c->units, c->nunits)) == NULL)
		return STORE_ERROR;
	param_bytes(&q, digest, CRM_DIGEST_BYTES);
	param(&q, c->org);
	param(&q, c->app);
	param(&q, units);
	param(&q, c->revoked ? "t" : "f");
	param(&q, num(&n, c->created));
	e = pq1(st, "consumer key put", &q, !must_be_new);
	free(units);
	if (e != STORE_OK)
		return e;
	e = changed(q.res) == 1 ? STORE_OK : STORE_EXISTS;
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_access_add(struct store *s, const char *org, const unsigned char *code,
    const char *ident, const struct access_rec *a)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_ACCESS_ADD };
	char		 kind[2], hex[2 * CRM_DIGEST_BYTES + 1];
	const char	*lookup;
	struct num	 n;
	enum store_err	 e;

	access_key(kind, hex, code, ident, &lookup);
	param(&q, org);
	param(&q, kind);
	param(&q, lookup);
	param(&q, a->contact);
	param(&q, a->ari);
	param(&q, a->passhash);
	param(&q, num(&n, a->created));
	if ((e = pq1(st, "access token add", &q, 0)) != STORE_OK)
		return e;
	e = changed(q.res) == 1 ? STORE_OK : STORE_EXISTS;
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_access_rehash(struct store *s, const char *org, const char *ident,
    const char *old, const char *new)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_ACCESS_REHASH };
	enum store_err	 e;

	param(&q, org);
	param(&q, ident);
	param(&q, old);
	param(&q, new);
	if ((e = pq1(st, "access token rehash", &q, 1)) != STORE_OK)
		return e;
	e = changed(q.res) == 1 ? STORE_OK : STORE_NOTFOUND;
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_key_revoke(struct store *s, int consumer, const unsigned char *digest,
    int64_t now)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = consumer ? Q_CONSUMER_REVOKE : Q_APIKEY_REVOKE };
	struct num	 n;
	enum store_err	 e;

	param_bytes(&q, digest, CRM_DIGEST_BYTES);
	param(&q, num(&n, now));
	/* Idempotent: revoked twice is revoked, the later cutoff kept. */
	if ((e = pq1(st, "key revoke", &q, 1)) != STORE_OK)
		return e;
	e = get_i64(q.res, 0, 0) == 1 ? STORE_OK : STORE_NOTFOUND;
	pq_clear(&q, 1);
	return e;
}

/* A new signing key's row, sealed: the parameters of Q_SIGKEY_ADD. */
static int
sigkey_params(struct pstore *st, struct pq *q, const struct sigkey *k,
    unsigned char sealed[SEALED_BYTES], struct num nums[2])
{
	if (!st->have_wrap || sec_seal(sealed, k->secret, CRM_SIGKEY_BYTES,
	    st->wrap, k->kid) != 0)
		return -1;
	param(q, k->kid);
	param_bytes(q, sealed, SEALED_BYTES);
	param(q, num(&nums[0], k->created));
	param(q, num(&nums[1], k->expires));
	param(q, k->current ? "t" : "f");
	return 0;
}

static void
sigkey_make(struct sigkey *k)
{
	sec_random_hex(k->kid, CRM_KID_BYTES);
	sec_random(k->secret, CRM_SIGKEY_BYTES);
	k->created = (int64_t)time(NULL);
	k->expires = 0;
	k->current = 1;
}

/* Lock the current key for a change of keys (first round trip). */
static enum store_err
lock_current(struct pstore *st, const char *what, struct sigkey *cur)
{
	struct pq	 b[2] = { { .q = Q_BEGIN }, { .q = Q_SIGKEY_LOCK } };
	enum store_err	 e;

	if ((e = pq_run(st, what, b, 2, CONNECT)) != STORE_OK)
		return e;
	if (PQntuples(b[1].res) != 1)
		e = STORE_NOTINIT;
	else if (get_sigkey(st, b[1].res, 0, 0, cur) == -1)
		e = damaged(st, what);
	pq_clear(b, 2);
	return e == STORE_OK ? e : rollback(st, what, e);
}

static enum store_err
p_sigkey_rotate(struct store *s, int64_t now, int64_t ttl,
    struct sigkey *old, struct sigkey *new)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 w[4] = { { .q = Q_SIGKEY_ROTATE_OLD }, { .q = Q_SIGKEY_ADD },
			    { .q = Q_SIGKEY_PRUNE }, { .q = Q_COMMIT } };
	unsigned char	 sealed[SEALED_BYTES];
	struct num	 nums[4];	/* one each: parameters point into them */
	enum store_err	 e;

	if ((e = lock_current(st, "key rotate", old)) != STORE_OK)
		return e;
	/* Every token it signed expires by now + ttl; so does the key. */
	old->expires = now + ttl;
	old->current = 0;
	sigkey_make(new);
	param(&w[0], old->kid);
	param(&w[0], num(&nums[2], old->expires));
	if (sigkey_params(st, &w[1], new, sealed, nums) == -1) {
		explicit_bzero(new, sizeof(*new));
		return rollback(st, "key rotate", damaged(st, "key rotate"));
	}
	param(&w[2], num(&nums[3], now));
	e = finish(st, "key rotate", w, 4);
	explicit_bzero(sealed, sizeof(sealed));
	return e;
}

static enum store_err
p_sigkey_retire(struct store *s, const char *kid, struct sigkey *new,
    int *made_new)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 w[4] = { { .q = Q_SIGKEY_DEL }, { .q = Q_SIGKEY_ADD },
			    { .q = Q_COMMIT } };
	struct sigkey	 cur;
	unsigned char	 sealed[SEALED_BYTES];
	struct num	 nums[2];
	enum store_err	 e;
	int		 n = 0;

	*made_new = 0;
	if ((e = lock_current(st, "key retire", &cur)) != STORE_OK)
		return e;
	param(&w[n++], kid);
	if (strcmp(cur.kid, kid) == 0) {
		/* The current one: a new current key first (the old row
		 * goes in the same transaction, so the index holds). */
		sigkey_make(new);
		if (sigkey_params(st, &w[n++], new, sealed, nums) == -1)
			return rollback(st, "key retire",
			    damaged(st, "key retire"));
		*made_new = 1;
	}
	w[n++].q = Q_COMMIT;
	e = pq_run(st, "key retire", w, n, CONTINUE);
	if (e == STORE_OK) {
		/* Not a key at all (it cannot have been the current one):
		 * nothing was changed. */
		if (changed(w[0].res) != 1)
			e = STORE_NOTFOUND;
		pq_clear(w, n);
	} else
		rollback(st, "key retire", e);
	if (e != STORE_OK)
		*made_new = 0;
	explicit_bzero(&cur, sizeof(cur));
	explicit_bzero(sealed, sizeof(sealed));
	return e;
}

static enum store_err
p_release(struct store *s, const unsigned char *jti, int64_t exp,
    int64_t now)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_RELEASE };
	struct num	 n[2];
	enum store_err	 e;

	/* Past its exp the token is refused anyway; nothing to keep. */
	if (exp <= now)
		return STORE_OK;
	param_bytes(&q, jti, CRM_JTI_BYTES);
	param(&q, num(&n[0], exp));
	param(&q, num(&n[1], now));
	/* Committed (and so durable) before the answer; idempotent. */
	if ((e = pq1(st, "release", &q, 1)) == STORE_OK)
		pq_clear(&q, 1);
	return e;
}

static enum store_err
p_released_prune(struct store *s, int64_t now, size_t *n)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_RELEASED_PRUNE };
	struct num	 t;
	enum store_err	 e;
	long		 k;

	*n = 0;
	/* In batches: never one unbounded DELETE. */
	do {
		q = (struct pq){ .q = Q_RELEASED_PRUNE };
		param(&q, num(&t, now));
		if ((e = pq1(st, "released prune", &q, 1)) != STORE_OK)
			return e;
		k = changed(q.res);
		*n += (size_t)k;
		pq_clear(&q, 1);
	} while (k > 0);
	q = (struct pq){ .q = Q_SIGKEY_PRUNE };
	param(&q, num(&t, now));
	if ((e = pq1(st, "signing key prune", &q, 1)) == STORE_OK)
		pq_clear(&q, 1);
	return e;
}

/* ---- failed attempts ------------------------------------------------------------- */

/* The counters of r as parameters $1..$3 (NULL where there is none). */
static void
att_keys(struct pq *q, const struct att_reserve *r)
{
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		if (i < r->n)
			param_bytes(q, r->c[i].key, r->c[i].keylen);
		else
			param(q, NULL);
}

/* Find counter c's key in column col of the rows: its row, or -1. */
static int
att_row(const PGresult *res, const struct att_counter *c, int col)
{
	unsigned char k[ATT_KEY_MAX];

	for (int row = 0; row < PQntuples(res); row++) {
		const char *v = PQgetvalue(res, row, col);

		if (strlen(v) == 2 + 2 * c->keylen &&
		    get_bytes(res, row, col, k, c->keylen) == 0 &&
		    memcmp(k, c->key, c->keylen) == 0)
			return row;
	}
	return -1;
}

/* Counting need not be durable (store.h): no flush waited for.  One
 * round trip: the rows made, the counters locked, counted (or not). */
static enum store_err
p_attempt_reserve(struct store *s, struct att_reserve *r)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 q[6] = { { .q = Q_BEGIN }, { .q = Q_ASYNC },
				    { .q = Q_ATT_ENSURE }, { .q = Q_ATT_RESERVE },
				    { .q = Q_ATT_PRUNE }, { .q = Q_COMMIT } };
	struct pq		*rq = &q[3];
	struct num		 lim[ATT_COUNTERS], t[3];
	enum store_err		 e;
	int			 row;

	att_keys(&q[2], r);
	att_keys(rq, r);
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		param(rq, i < r->n ? num(&lim[i], r->c[i].limit) : NULL);
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		param(rq, i < r->n ? (r->c[i].exempt ? "t" : "f") : NULL);
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		param(rq, i < r->n ? r->c[i].subject : NULL);
	if (r->trustlen > 0)
		param_bytes(rq, r->trust, r->trustlen);
	else
		param(rq, NULL);
	param(rq, num(&t[0], r->now));
	param(rq, num(&t[1], r->window));
	param(&q[4], t[0].s);
	param(&q[4], num(&t[2], 16));
	if ((e = pq_run(st, "attempts", q, 6, CONNECT)) != STORE_OK)
		return rollback(st, "attempts", e);
	r->locked_until = 0;
	r->trusted = 0;
	if (PQntuples(rq->res) < 1) {
		pq_clear(q, 6);
		return damaged(st, "attempts");
	}
	r->locked_until = get_i64(rq->res, 0, 0);
	r->trusted = get_bool(rq->res, 0, 1);
	for (size_t i = 0; i < r->n; i++)
		if ((row = att_row(rq->res, &r->c[i], 2)) != -1)
			r->c[i].end = get_i64(rq->res, row, 3);
	pq_clear(q, 6);
	return STORE_OK;
}

static enum store_err
p_attempt_giveback(struct store *s, struct att_reserve *r, int success,
    int64_t trust_until)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 q[4] = { { .q = Q_BEGIN }, { .q = Q_ASYNC },
				    { .q = Q_ATT_GIVEBACK }, { .q = Q_COMMIT } };
	struct pq		*g = &q[2];
	struct num		 ends[ATT_COUNTERS], t;
	enum store_err		 e;

	att_keys(g, r);
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		param(g, i < r->n ? num(&ends[i], r->c[i].end) : NULL);
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		param(g, i < r->n ? (r->c[i].clear ? "t" : "f") : NULL);
	param(g, success ? "t" : "f");
	if (success && trust_until > r->now && r->trustlen > 0) {
		param_bytes(g, r->trust, r->trustlen);
		param(g, num(&t, trust_until));
	} else {
		param(g, NULL);
		param(g, NULL);
	}
	if ((e = pq_run(st, "attempts", q, 4, CONNECT)) != STORE_OK)
		return rollback(st, "attempts", e);
	pq_clear(q, 4);
	return STORE_OK;
}

static enum store_err
p_lock_list(struct store *s, store_lock_cb cb, void *arg)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_ATT_LOCKS };
	struct num	 t;
	enum store_err	 e;
	const char	*v, *subj;

	param(&q, num(&t, (int64_t)time(NULL)));
	if ((e = pq1(st, "lock list", &q, 1)) != STORE_OK)
		return e;
	for (int row = 0; row < PQntuples(q.res); row++) {
		v = PQgetvalue(q.res, row, 0);
		subj = PQgetvalue(q.res, row, 1);
		/* The type: the key's first byte, in hex after \x. */
		if (strlen(v) < 4 || strncmp(v, "\\x", 2) != 0)
			continue;
		if (cb(arg, (char)strtol((char[]){ v[2], v[3], '\0' }, NULL,
		    16), subj, strlen(subj), (uint32_t)get_i64(q.res, row, 2),
		    get_i64(q.res, row, 3)) != 0)
			break;
	}
	pq_clear(&q, 1);
	return STORE_OK;
}

static enum store_err
p_lock_clear(struct store *s, const unsigned char *key, size_t keylen,
    int prefix, size_t *n)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = prefix ? Q_ATT_CLEAR_PREFIX : Q_ATT_CLEAR };
	enum store_err	 e;

	*n = 0;
	param_bytes(&q, key, keylen);
	if ((e = pq1(st, "lock clear", &q, 1)) != STORE_OK)
		return e;
	*n = (size_t)changed(q.res);
	pq_clear(&q, 1);
	return STORE_OK;
}

static enum store_err
p_attempts_prune(struct store *s, int64_t now, size_t *n)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q;
	struct num	 t, lim;
	enum store_err	 e;
	long		 k;

	*n = 0;
	do {
		q = (struct pq){ .q = Q_ATT_PRUNE };
		param(&q, num(&t, now));
		param(&q, num(&lim, 1000));
		if ((e = pq1(st, "attempts prune", &q, 1)) != STORE_OK)
			return e;
		k = changed(q.res);
		*n += (size_t)k;
		pq_clear(&q, 1);
	} while (k > 0);
	return STORE_OK;
}

static enum store_err
p_attempts_usage(struct store *s, size_t *bytes, size_t *records)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_ATT_USAGE };
	enum store_err	 e;

	if ((e = pq1(st, "attempts usage", &q, 1)) != STORE_OK)
		return e;
	*bytes = (size_t)get_i64(q.res, 0, 0);
	*records = (size_t)get_i64(q.res, 0, 1);
	pq_clear(&q, 1);
	return STORE_OK;
}

/* ---- listing ------------------------------------------------------------------------ */

static enum store_err
p_user_list(struct store *s, const char *org, store_user_cb cb, void *arg)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = org != NULL ? Q_USER_LIST_ORG : Q_USER_LIST };
	struct user_rec	 u;
	char		 o[CRM_NAME_MAX + 1], name[CRM_NAME_MAX + 1];
	enum store_err	 e;

	if (org != NULL)
		param(&q, org);
	if ((e = pq1(st, "user list", &q, 1)) != STORE_OK)
		return e;
	for (int row = 0; row < PQntuples(q.res) && e == STORE_OK; row++) {
		if (get_str(q.res, row, 0, o, sizeof(o)) == -1 ||
		    get_str(q.res, row, 1, name, sizeof(name)) == -1 ||
		    get_user(q.res, row, 2, &u) == -1)
			e = damaged(st, "user list");
		else if (cb(arg, o, name, &u) != 0)
			break;
	}
	explicit_bzero(&u, sizeof(u));
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_apikey_list(struct store *s, store_apikey_cb cb, void *arg)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 q = { .q = Q_APIKEY_LIST };
	struct apikey_rec	 a;
	unsigned char		 d[CRM_DIGEST_BYTES];
	enum store_err		 e;

	if ((e = pq1(st, "apikey list", &q, 1)) != STORE_OK)
		return e;
	for (int row = 0; row < PQntuples(q.res) && e == STORE_OK; row++) {
		if (get_bytes(q.res, row, 0, d, sizeof(d)) == -1 ||
		    get_apikey(q.res, row, 1, &a) == -1)
			e = damaged(st, "apikey list");
		else if (cb(arg, d, &a) != 0)
			break;
	}
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_consumer_list(struct store *s, store_consumer_cb cb, void *arg)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 q = { .q = Q_CONSUMER_LIST };
	struct consumer_rec	 c;
	unsigned char		 d[CRM_DIGEST_BYTES];
	enum store_err		 e;

	if ((e = pq1(st, "consumer key list", &q, 1)) != STORE_OK)
		return e;
	for (int row = 0; row < PQntuples(q.res) && e == STORE_OK; row++) {
		if (get_bytes(q.res, row, 0, d, sizeof(d)) == -1 ||
		    get_consumer(q.res, row, 1, &c) == -1)
			e = damaged(st, "consumer key list");
		else if (cb(arg, d, &c) != 0)
			break;
	}
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_sigkey_list(struct store *s, store_sigkey_cb cb, void *arg)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_SIGKEY_LIST };
	struct sigkey	 k;
	enum store_err	 e;

	if ((e = pq1(st, "signing key list", &q, 1)) != STORE_OK)
		return e;
	for (int row = 0; row < PQntuples(q.res) && e == STORE_OK; row++) {
		if (get_sigkey(st, q.res, row, 0, &k) == -1)
			e = damaged(st, "signing key list");
		else if (cb(arg, &k) != 0)
			break;
	}
	explicit_bzero(&k, sizeof(k));
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_backup(struct store *s, const char *file)
{
	snprintf(s->detail, sizeof(s->detail), "a PostgreSQL store is backed "
	    "up with pg_dump (its dump holds no secret); crmauthctl export "
	    "writes a copy any store can import");
	return STORE_ERROR;
}

/* ---- opening ------------------------------------------------------------------------ */

/*
 * The key that seals signing keys, from db_path/wrap.key (32 bytes).
 * create: make it if it is missing (when the database holds no key yet
 * that it would have to open).  0, or -1 with st->base.detail set.
 */
static int
load_wrap(struct pstore *st, int create)
{
	char		 path[1100];
	struct stat	 sb;
	mode_t		 mode = 0600;
	ssize_t		 n;
	int		 fd;

	snprintf(path, sizeof(path), "%s/" WRAP_FILE, st->base.cfg.db_path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) != -1) {
		n = read(fd, st->wrap, sizeof(st->wrap));
		close(fd);
		if (n != (ssize_t)sizeof(st->wrap)) {
			snprintf(st->base.detail, sizeof(st->base.detail),
			    "%s: not a key of %zu bytes", path,
			    sizeof(st->wrap));
			return -1;
		}
		st->have_wrap = 1;
		return 0;
	}
	if (errno != ENOENT) {
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s",
		    path, strerror(errno));
		return -1;
	}
	/* Serving without it: reads of keys say what is missing. */
	if (!create)
		return 0;
	if (store_make_dir(&st->base.cfg, st->base.detail,
	    sizeof(st->base.detail)) == -1)
		return -1;
	if (stat(st->base.cfg.db_path, &sb) == 0 && (sb.st_mode & 070) != 0)
		mode = 0640;
	sec_random(st->wrap, sizeof(st->wrap));
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, mode)) == -1 || fchmod(fd, mode) == -1 ||
	    write(fd, st->wrap, sizeof(st->wrap)) !=
	    (ssize_t)sizeof(st->wrap) || fsync(fd) == -1) {
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s",
		    path, strerror(errno));
		if (fd != -1) {
			close(fd);
			unlink(path);
		}
		return -1;
	}
	close(fd);
	st->have_wrap = 1;
	return 0;
}

/* ---- whole-store copies: export and import ------------------------------------ */

/* A row of one of the lists as a record; -1 when it is not ours, 1 when
 * it is not to be given. */
typedef int (*row_fn)(struct pstore *, const PGresult *, int, struct xrec *,
	    int64_t now);

static int
row_user(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_USER;
	return get_str(r, row, 0, x->org, sizeof(x->org)) == -1 ||
	    get_str(r, row, 1, x->name, sizeof(x->name)) == -1 ||
	    get_user(r, row, 2, &x->u.user) == -1 ? -1 : 0;
}

static int
row_apikey(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_APIKEY;
	return get_bytes(r, row, 0, x->digest, sizeof(x->digest)) == -1 ||
	    get_apikey(r, row, 1, &x->u.apikey) == -1 ? -1 : 0;
}

static int
row_consumer(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_CONSUMER;
	return get_bytes(r, row, 0, x->digest, sizeof(x->digest)) == -1 ||
	    get_consumer(r, row, 1, &x->u.consumer) == -1 ? -1 : 0;
}

static int
row_access(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	char	 kind[2], lookup[CRM_NAME_MAX + 1];

	x->kind = XR_ACCESS;
	if (get_str(r, row, 0, x->org, sizeof(x->org)) == -1 ||
	    get_str(r, row, 1, kind, sizeof(kind)) == -1 ||
	    get_str(r, row, 2, lookup, sizeof(lookup)) == -1 ||
	    get_access(r, row, 3, &x->u.access) == -1)
		return -1;
	x->access_kind = kind[0];
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
	if (get_sigkey(st, r, row, 0, &x->u.key) == -1)
		return -1;
	return !x->u.key.current && x->u.key.expires <= now ? 1 : 0;
}

static int
row_released(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_RELEASED;
	x->u.rel.exp = get_i64(r, row, 1);
	return get_bytes(r, row, 0, x->u.rel.jti, CRM_JTI_BYTES);
}

static int
row_cutoff(struct pstore *st, const PGresult *r, int row, struct xrec *x,
    int64_t now)
{
	x->kind = XR_CUTOFF;
	x->u.cutoff = get_i64(r, row, 2);
	return get_str(r, row, 0, x->org, sizeof(x->org)) == -1 ||
	    get_str(r, row, 1, x->name, sizeof(x->name)) == -1 ? -1 : 0;
}

static enum store_err
p_dump(struct store *s, store_xrec_cb cb, void *arg)
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
		return e;
	}
	pq_clear(&q, 1);
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]) && !stop &&
	    e == STORE_OK; i++) {
		q = (struct pq){ .q = lists[i].q };
		if (lists[i].q == Q_RELEASED_LIST)
			param(&q, num(&t, now));
		if ((e = pq_run(st, "export", &q, 1, CONTINUE)) != STORE_OK)
			break;
		for (int row = 0; row < PQntuples(q.res) && !stop; row++) {
			memset(x, 0, sizeof(*x));
			if ((rc = lists[i].fn(st, q.res, row, x, now)) == -1) {
				e = damaged(st, "export");
				break;
			}
			if (rc == 0)
				stop = cb(arg, x) != 0;
		}
		pq_clear(&q, 1);
	}
	explicit_bzero(x, sizeof(*x));
	free(x);
	return rollback(st, "export", e);	/* a read: nothing to keep */
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
	char		 hex[LOAD_BATCH][2 * CRM_DIGEST_BYTES + 1];
	int		 n;
};

/* The statement that inserts b->x[i] (each does nothing when its row is
 * there already: one found is a record given twice). */
static int
load_params(struct pstore *st, struct load_batch *b, int i)
{
	struct xrec	*x = &b->x[i];
	struct pq	*q = &b->q[i];
	const char	*lookup;

	*q = (struct pq){ 0 };
	b->units[i] = NULL;
	switch (x->kind) {
	case XR_USER:
		q->q = Q_USER_ADD;
		return user_params(q, x->org, x->name, &x->u.user, b->nums[i],
		    &b->units[i]);
	case XR_APIKEY:
		q->q = Q_APIKEY_ADD;
		param_bytes(q, x->digest, CRM_DIGEST_BYTES);
		param(q, x->u.apikey.org);
		param(q, x->u.apikey.user);
		param(q, x->u.apikey.revoked ? "t" : "f");
		param(q, num(&b->nums[i][0], x->u.apikey.created));
		return 0;
	case XR_CONSUMER:
		q->q = Q_CONSUMER_ADD;
		if ((b->units[i] = units_json(x->u.consumer.units,
		    x->u.consumer.nunits)) == NULL)
			return -1;
		param_bytes(q, x->digest, CRM_DIGEST_BYTES);
		param(q, x->u.consumer.org);
		param(q, x->u.consumer.app);
		param(q, b->units[i]);
		param(q, x->u.consumer.revoked ? "t" : "f");
		param(q, num(&b->nums[i][0], x->u.consumer.created));
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
		q->q = Q_ACCESS_ADD;
		access_key(b->kind[i], b->hex[i], x->access_kind == 'C' ?
		    x->digest : NULL, x->name, &lookup);
		param(q, x->org);
		param(q, b->kind[i]);
		param(q, lookup);
		param(q, x->u.access.contact);
		param(q, x->u.access.ari);
		param(q, x->u.access.passhash);
		param(q, num(&b->nums[i][0], x->u.access.created));
		return 0;
	case XR_SIGKEY:
		q->q = Q_SIGKEY_LOAD;
		return sigkey_params(st, q, &x->u.key, b->sealed[i],
		    b->nums[i]);
	case XR_RELEASED:
		q->q = Q_RELEASED_LOAD;
		param_bytes(q, x->u.rel.jti, CRM_JTI_BYTES);
		param(q, num(&b->nums[i][0], x->u.rel.exp));
		return 0;
	case XR_CUTOFF:
		q->q = Q_CUTOFF_LOAD;
		param(q, x->org);
		param(q, x->name);
		param(q, num(&b->nums[i][0], x->u.cutoff));
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
		if (changed(b->q[i].res) != 1) {
			snprintf(st->base.detail, sizeof(st->base.detail),
			    "line %ld: a record that is there already (the "
			    "same record twice)", b->x[i].line);
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

static enum store_err
p_load(struct store *s, struct xsource *src)
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
		return damaged(st, "import");
	if ((lb = calloc(1, sizeof(*lb))) == NULL)
		return STORE_ERROR;
	src->rewind(src);
	/* The emptiness seen is the one the inserts see: a second import
	 * at once finds the rows of the first and fails. */
	if ((e = pq_run(st, "import", b, 3, CONNECT)) != STORE_OK) {
		free(lb);
		return e;
	}
	empty = !get_bool(b[1].res, 0, 0);
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
			    damaged(st, "import");
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
		return rollback(st, "import", e);
	if ((e = pq_run(st, "import", &c, 1, CONTINUE)) == STORE_OK)
		pq_clear(&c, 1);
	return e;
}

/* crmauthctl init: the tables, the schema version and a first signing
 * key, in one transaction; again, it changes nothing. */
static enum store_err
create_schema(struct pstore *st)
{
	PGresult	*res;
	struct pq	 w[2] = { { .q = Q_SIGKEY_ADD }, { .q = Q_COMMIT } };
	struct pq	 q = { .q = Q_SIGKEY_CURRENT }, b = { .q = Q_BEGIN };
	struct sigkey	 k;
	unsigned char	 sealed[SEALED_BYTES];
	struct num	 nums[2];
	char		 sql[256];
	enum store_err	 e;
	int		 have_keys;

	/* The statements cannot be prepared before their tables exist. */
	st->bare = 1;
	e = connect_db(st);
	st->bare = 0;
	if (e != STORE_OK)
		return e;
	res = PQexec(st->conn, "BEGIN");
	PQclear(res);
	for (int i = 0; SCHEMA[i] != NULL; i++) {
		res = PQexec(st->conn, SCHEMA[i]);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			e = failed(st, "crmauthctl init", res);
			PQclear(res);
			drop(st);
			return e;
		}
		PQclear(res);
	}
	snprintf(sql, sizeof(sql), "INSERT INTO meta VALUES ('schema', '%d')"
	    " ON CONFLICT DO NOTHING", STORE_SCHEMA_VERSION);
	res = PQexec(st->conn, sql);
	PQclear(res);
	res = PQexec(st->conn, "SELECT value FROM meta WHERE name = 'schema'");
	e = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ?
	    store_schema_check(PQgetvalue(res, 0, 0),
	    strlen(PQgetvalue(res, 0, 0))) : STORE_ERROR;
	PQclear(res);
	res = PQexec(st->conn, "SELECT count(*) FROM signing_keys");
	have_keys = PQresultStatus(res) == PGRES_TUPLES_OK &&
	    strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	res = PQexec(st->conn, e == STORE_OK ? "COMMIT" : "ROLLBACK");
	if (e == STORE_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		e = failed(st, "crmauthctl init", res);
	PQclear(res);
	drop(st);		/* prepared anew on the next connection */
	if (e != STORE_OK) {
		if (e == STORE_VERSION)
			snprintf(st->base.detail, sizeof(st->base.detail),
			    "%s: %s", st->label, store_strerror(e));
		return e;
	}
	/* The wrap key: made here only when no key needs an old one. */
	if (load_wrap(st, !have_keys) == -1)
		return STORE_ERROR;
	if (have_keys)
		return st->have_wrap ? STORE_OK : damaged(st, "crmauthctl init");
	/* A first signing key (two inits at once: one wins, the other
	 * finds the index taken and leaves it). */
	sigkey_make(&k);
	if (sigkey_params(st, &w[0], &k, sealed, nums) == -1)
		return STORE_ERROR;
	if ((e = pq_run(st, "crmauthctl init", &b, 1, CONNECT)) == STORE_OK) {
		pq_clear(&b, 1);
		e = finish(st, "crmauthctl init", w, 2);
	}
	explicit_bzero(&k, sizeof(k));
	explicit_bzero(sealed, sizeof(sealed));
	if (e == STORE_EXISTS && pq1(st, "crmauthctl init", &q, 1) ==
	    STORE_OK) {
		e = PQntuples(q.res) == 1 ? STORE_OK : STORE_ERROR;
		pq_clear(&q, 1);
	}
	return e;
}

static void
p_close(struct store *s)
{
	struct pstore *st = (struct pstore *)s;

	drop(st);
	explicit_bzero(st->wrap, sizeof(st->wrap));
	free(st);
}

/* What the log calls this store: the database's name, never the rest
 * of the conninfo (it may hold a password). */
static void
make_label(struct pstore *st)
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

static const struct store_ops pgsql_ops;

enum store_err
pgsql_store_open(struct store **out, const struct config *cfg, int flags,
    char *err, size_t errlen)
{
	struct pstore	*st;
	struct pq	 q = { .q = Q_SCHEMA };
	enum store_err	 e;

	*out = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return STORE_ERROR;
	st->base.ops = &pgsql_ops;
	st->base.cfg = *cfg;
	st->timeout_ms = 10000;
	make_label(st);
	st->base.where = st->label;
	if (flags & STORE_CREATE)
		e = create_schema(st);
	else if (load_wrap(st, 0) == -1)
		e = STORE_ERROR;
	else if ((e = pq1(st, st->label, &q, 1)) == STORE_OK) {
		/* The schema is ours, and not newer. */
		e = PQntuples(q.res) == 1 ? store_schema_check(
		    PQgetvalue(q.res, 0, 0), strlen(PQgetvalue(q.res, 0, 0))) :
		    STORE_NOTINIT;
		pq_clear(&q, 1);
		if (e != STORE_OK)
			snprintf(st->base.detail, sizeof(st->base.detail),
			    "%s: %s", st->label, store_strerror(e));
	}
	if (e != STORE_OK) {
		snprintf(err, errlen, "%s", st->base.detail[0] != '\0' ?
		    st->base.detail : store_strerror(e));
		p_close(&st->base);
		return e;
	}
	*out = &st->base;
	return STORE_OK;
}

static const struct store_ops pgsql_ops = {
	.name = "postgresql",
	.close = p_close,
	.ping = p_ping,
	.user_get = p_user_get,
	.apikey_get = p_apikey_get,
	.consumer_get = p_consumer_get,
	.access_get = p_access_get,
	.sigkey_get = p_sigkey_get,
	.lookup_user = p_lookup_user,
	.lookup_apikey = p_lookup_apikey,
	.lookup_consumer = p_lookup_consumer,
	.token_state = p_token_state,
	.released_get = p_released_get,
	.released_count = p_released_count,
	.user_add = p_user_add,
	.user_change = p_user_change,
	.user_del = p_user_del,
	.apikey_put = p_apikey_put,
	.consumer_put = p_consumer_put,
	.access_add = p_access_add,
	.access_rehash = p_access_rehash,
	.key_revoke = p_key_revoke,
	.sigkey_rotate = p_sigkey_rotate,
	.sigkey_retire = p_sigkey_retire,
	.release = p_release,
	.released_prune = p_released_prune,
	.attempt_reserve = p_attempt_reserve,
	.attempt_giveback = p_attempt_giveback,
	.lock_list = p_lock_list,
	.lock_clear = p_lock_clear,
	.attempts_prune = p_attempts_prune,
	.attempts_usage = p_attempts_usage,
	.user_list = p_user_list,
	.apikey_list = p_apikey_list,
	.consumer_list = p_consumer_list,
	.sigkey_list = p_sigkey_list,
	.backup = p_backup,
	.dump = p_dump,
	.load = p_load,
};
