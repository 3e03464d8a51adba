/*
 * The PostgreSQL store (store.h): one database shared by many web nodes,
 * through libpq.  Tables an operator can read with psql (see SCHEMA);
 * only portable SQL (no LISTEN/NOTIFY, sequences or stored procedures;
 * one advisory lock, transaction-scoped, Q_ATT_LOCK: a commit or a lost
 * connection releases it, also behind a transaction-pooling proxy).
 *
 * The connection, its round trips and their deadlines are in
 * pgsql_conn.c; export and import in pgsql_copy.c (pgsql.h).  Here: the
 * schema, the statements (each transaction one or two round trips), and
 * the store's methods.
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

#include "extern.h"
#include "pgsql.h"

static int	load_wrap(struct pstore *, int create);

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
	/* kind C: lookup is the code's keyed digest, or (added before
	 * codes were keyed) its SHA-256 in hex: pg_access_key(); kind I:
	 * the identifier, with its pass code's hash */
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
	/* The few rows that reached a limit, for lock list (Q_ATT_LOCKS)
	 * however many a flood made; crmauthctl init adds it to a database
	 * made before it. */
	"CREATE INDEX IF NOT EXISTS attempts_locked ON attempts (key)"
	" WHERE subject IS NOT NULL",
	NULL
};

/* ---- statements ------------------------------------------------------------------ */

#define STR_(x)		#x
#define STR(x)		STR_(x)

/* The columns of a user, a key, a signing key, as the readers expect. */
#define USER_COLS	"u.pwhash, array_to_json(u.units)::text, u.disabled, " \
			"u.created, u.not_before"
#define KEY_COLS	"k.kid, k.sealed, k.created, k.expires, k.current"
#define APIKEY_COLS	"a.org, a.user_name, a.revoked, a.created"
#define CONSUMER_COLS	"c.org, c.app, array_to_json(c.units)::text, " \
			"c.revoked, c.created"
#define ACCESS_COLS	"t.contact, t.ari, t.passhash, t.created"
#define UNITS(n)	"(SELECT array_agg(x ORDER BY i) FROM " \
			"json_array_elements_text($" #n "::json) " \
			"WITH ORDINALITY AS t(x, i))"

/*
 * What reads counters without counting (store.h, att_peek_rule): their
 * rows c1..c3 and the trust tt, joined on $1-3 (the keys; NULL when fewer),
 * $10 (the trust key) and held, as the rule says, with $4-6 the limits,
 * $7-9 whether exempt, $11 now.  C reads the columns and applies the rule
 * itself; this only spares reading what a held attempt must not.
 */
#define ATT_PEEK_JOIN	" LEFT JOIN attempts c1 ON c1.key = $1::bytea"	\
			" LEFT JOIN attempts c2 ON c2.key = $2::bytea"	\
			" LEFT JOIN attempts c3 ON c3.key = $3::bytea"	\
			" LEFT JOIN attempts tt ON tt.key = $10::bytea"
#define ATT_HELD_(n, lim, ex)						\
	"coalesce(c" #n ".count >= $" #lim "::bigint AND c" #n		\
	".window_end > $11::bigint AND NOT ($" #ex "::boolean AND"	\
	" coalesce(tt.window_end, 0) > $11), false)"
#define ATT_HELD	"(" ATT_HELD_(1, 4, 7) " OR " ATT_HELD_(2, 5, 8)	\
			" OR " ATT_HELD_(3, 6, 9) ")"
#define ATT_PEEK_COLS	"c1.window_end, c1.count, c2.window_end, c2.count,"	\
			" c3.window_end, c3.count, tt.window_end"

/* A consumer key ($d), and in its organisation the access token of kind
 * $kind by $l, or a code's legacy lookup $g (the keyed row first), and
 * the application's cutoff. */
#define LOOKUP_CONSUMER(d, kind, l, g)					\
	" LEFT JOIN consumer_keys c ON c.digest = $" #d			\
	" LEFT JOIN LATERAL (SELECT t.*, t.lookup = $" #g " AS legacy"	\
	" FROM access_tokens t WHERE t.org = c.org AND t.kind = $" #kind	\
	" AND t.lookup IN ($" #l ", $" #g ") ORDER BY t.lookup = $" #l	\
	" DESC LIMIT 1) t ON true"					\
	" LEFT JOIN cutoffs co ON co.org = c.org AND co.app = c.app"
/* Counting (Q_ATT_RESERVE, below). */
#define ATT_RESERVE \
	"WITH v AS (SELECT * FROM (VALUES"	\
	    " ($1::bytea, $4::bigint, $7::boolean, $10::text),"	\
	    " ($2::bytea, $5::bigint, $8::boolean, $11::text),"	\
	    " ($3::bytea, $6::bigint, $9::boolean, $12::text))"	\
	    " x (k, lim, ex, subj) WHERE k IS NOT NULL),"	\
	    " tr AS (SELECT EXISTS (SELECT 1 FROM attempts WHERE"	\
	    " key = $13::bytea AND window_end > $14::bigint) AS trusted),"	\
	    " cur AS (SELECT key, window_end, count FROM attempts"	\
	    " WHERE key IN (SELECT k FROM v) ORDER BY key FOR UPDATE),"	\
	    " lk AS (SELECT coalesce(max(cur.window_end), 0) AS until"	\
	    " FROM cur JOIN v ON v.k = cur.key CROSS JOIN tr"	\
	    " WHERE cur.count > 0 AND cur.window_end > $14"	\
	    " AND cur.count >= v.lim AND NOT (v.ex AND tr.trusted)),"	\
	    " up AS (INSERT INTO attempts (key, window_end, count, subject)"	\
	    " SELECT v.k, $14 + $15::bigint, 1,"	\
	    " CASE WHEN v.lim <= 1 THEN v.subj END FROM v"	\
	    " WHERE (SELECT until FROM lk) <= $14 ORDER BY v.k"	\
	    " ON CONFLICT (key) DO UPDATE SET"	\
	    " window_end = CASE WHEN attempts.count = 0"	\
	    " OR attempts.window_end <= $14 THEN EXCLUDED.window_end"	\
	    " ELSE attempts.window_end END,"	\
	    " count = CASE WHEN attempts.count = 0"	\
	    " OR attempts.window_end <= $14 THEN 1"	\
	    " ELSE least(attempts.count::bigint + 1, 2147483647) END,"	\
	    " subject = CASE WHEN (CASE WHEN attempts.count = 0"	\
	    " OR attempts.window_end <= $14 THEN 1"	\
	    " ELSE attempts.count::bigint + 1 END)"	\
	    " >= (SELECT lim FROM v WHERE v.k = EXCLUDED.key)"	\
	    " THEN (SELECT subj FROM v WHERE v.k = EXCLUDED.key)"	\
	    " ELSE attempts.subject END"	\
	    " RETURNING key, window_end, count)"	\
	    " SELECT lk.until, tr.trusted, up.key, up.window_end, up.count"	\
	    " FROM lk CROSS JOIN tr LEFT JOIN up ON true"

const char *const pg_sql[Q__MAX] = {
	[Q_SCHEMA] = "SELECT value FROM meta WHERE name = 'schema'",
	[Q_USER_GET] = "SELECT " USER_COLS " FROM users u"
	    " WHERE u.org = $1 AND u.name = $2",
	[Q_APIKEY_GET] = "SELECT " APIKEY_COLS " FROM apikeys a"
	    " WHERE a.digest = $1",
	[Q_CONSUMER_GET] = "SELECT " CONSUMER_COLS " FROM consumer_keys c"
	    " WHERE c.digest = $1",
	/* $3 the lookup, $4 a code's legacy one: the keyed row first. */
	[Q_ACCESS_GET] = "SELECT " ACCESS_COLS ", t.lookup = $4"
	    " FROM access_tokens t WHERE t.org = $1 AND t.kind = $2"
	    " AND t.lookup IN ($3, $4) ORDER BY t.lookup = $3 DESC LIMIT 1",
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
	/* The same, with the attempt's counters ($1-11, ATT_PEEK_JOIN; $12
	 * the key's digest): a held attempt reads no key. */
	[Q_LOOKUP_APIKEY_HELD] = "SELECT " KEY_COLS ", " USER_COLS ", "
	    APIKEY_COLS ", " ATT_PEEK_COLS
	    " FROM signing_keys k" ATT_PEEK_JOIN
	    " LEFT JOIN apikeys a ON a.digest = $12 AND NOT " ATT_HELD
	    " LEFT JOIN users u ON u.org = a.org AND u.name = a.user_name"
	    " WHERE k.current",
	[Q_LOOKUP_CONSUMER] = "SELECT " KEY_COLS ", " CONSUMER_COLS ", "
	    ACCESS_COLS ", co.cutoff, t.legacy FROM signing_keys k"
	    LOOKUP_CONSUMER(1, 2, 3, 4) " WHERE k.current",
	/* The same with a code's counters ($1-11, ATT_PEEK_JOIN, held last,
	 * which C decides again; $12-15 the consumer's), in the transaction
	 * that decides the code (p_lookup_consumer). */
	[Q_LOOKUP_CONSUMER_PEEK] = "SELECT " KEY_COLS ", " CONSUMER_COLS ", "
	    ACCESS_COLS ", co.cutoff, t.legacy, " ATT_PEEK_COLS ", " ATT_HELD
	    " FROM signing_keys k" ATT_PEEK_JOIN
	    LOOKUP_CONSUMER(12, 13, 14, 15) " WHERE k.current",
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
	/* count(*) reads every released id (two hours' releases). */
	[Q_STATS] = "SELECT (SELECT k.created FROM signing_keys k"
	    " WHERE k.current), (SELECT count(*) FROM released)",
	[Q_USER_ADD] = "INSERT INTO users VALUES ($1, $2, $3, " UNITS(4)
	    ", $5, $6, $7) ON CONFLICT DO NOTHING",
	[Q_USER_LOCK] = "SELECT " USER_COLS " FROM users u"
	    " WHERE u.org = $1 AND u.name = $2 FOR UPDATE",
	[Q_USER_SET] = "UPDATE users SET pwhash = $3, units = " UNITS(4) ","
	    " disabled = $5, created = $6, not_before = $7"
	    " WHERE org = $1 AND name = $2",
	/* The user, and the user's Web API keys with it. */
	/*
	 * A user and its Web API keys go in two statements of one
	 * transaction: the second, run once the first holds the user's row,
	 * sees every key committed before (a key added meanwhile waited for
	 * that row: Q_APIKEY_ADD).  One statement would delete only the keys
	 * of its snapshot, taken before it waited.
	 */
	[Q_USER_DEL] = "DELETE FROM users WHERE org = $1 AND name = $2",
	[Q_USER_KEYS_DEL] = "DELETE FROM apikeys WHERE org = $1"
	    " AND user_name = $2",
	/* A key only while its user is there, whose row it holds (FOR KEY
	 * SHARE) until it commits: a user del waits for it, or it for the
	 * del, and then finds no user. */
	[Q_APIKEY_ADD] = "WITH u AS (SELECT 1 FROM users WHERE org = $2"
	    " AND name = $3 FOR KEY SHARE) INSERT INTO apikeys"
	    " SELECT $1::bytea, $2::text, $3::text, $4::boolean, $5::bigint"
	    " FROM u ON CONFLICT DO NOTHING",
	[Q_APIKEY_PUT] = "WITH u AS (SELECT 1 FROM users WHERE org = $2"
	    " AND name = $3 FOR KEY SHARE) INSERT INTO apikeys"
	    " SELECT $1::bytea, $2::text, $3::text, $4::boolean, $5::bigint"
	    " FROM u ON CONFLICT (digest) DO UPDATE SET org = EXCLUDED.org,"
	    " user_name = EXCLUDED.user_name, revoked = EXCLUDED.revoked,"
	    " created = EXCLUDED.created",
	[Q_USER_SEEN] = "SELECT 1 FROM users WHERE org = $1 AND name = $2",
	[Q_CONSUMER_ADD] = "INSERT INTO consumer_keys VALUES ($1, $2, $3, "
	    UNITS(4) ", $5, $6) ON CONFLICT DO NOTHING",
	[Q_CONSUMER_PUT] = "INSERT INTO consumer_keys VALUES ($1, $2, $3, "
	    UNITS(4) ", $5, $6) ON CONFLICT (digest) DO UPDATE SET"
	    " org = EXCLUDED.org, app = EXCLUDED.app, units = EXCLUDED.units,"
	    " revoked = EXCLUDED.revoked, created = EXCLUDED.created",
	/* Not when the code is there under its legacy lookup ($8). */
	[Q_ACCESS_ADD] = "INSERT INTO access_tokens SELECT $1::text,"
	    " $2::char(1), $3::text, $4::text, $5::text, $6::text,"
	    " $7::bigint WHERE NOT EXISTS (SELECT 1 FROM access_tokens"
	    " WHERE org = $1 AND kind = $2 AND lookup = $8)"
	    " ON CONFLICT DO NOTHING",
	/* A code kept by its plain SHA-256 ($2) keyed ($3); if it is there
	 * keyed already (added again since), the plain row goes. */
	/* import: a keyed code replaces the same code kept plain above it
	 * in the file (keyed as it was loaded). */
	[Q_ACCESS_LOAD_KEYED] = "INSERT INTO access_tokens VALUES"
	    " ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org, kind, lookup)"
	    " DO UPDATE SET contact = EXCLUDED.contact, ari = EXCLUDED.ari,"
	    " passhash = EXCLUDED.passhash, created = EXCLUDED.created",
	[Q_ACCESS_REKEY] = "WITH d AS (DELETE FROM access_tokens WHERE"
	    " org = $1 AND kind = 'C' AND lookup = $2 AND EXISTS (SELECT 1"
	    " FROM access_tokens WHERE org = $1 AND kind = 'C' AND"
	    " lookup = $3) RETURNING 1) UPDATE access_tokens SET lookup = $3"
	    " WHERE org = $1 AND kind = 'C' AND lookup = $2"
	    " AND NOT EXISTS (SELECT 1 FROM d)",
	[Q_ACCESS_PLAIN] = "SELECT org, lookup FROM access_tokens"
	    " WHERE kind = 'C' AND lookup NOT LIKE '" CODE_KEYED "%'"
	    " FOR UPDATE",
	[Q_ACCESS_REHASH] = "UPDATE access_tokens SET passhash = $4"
	    " WHERE org = $1 AND kind = 'I' AND lookup = $2"
	    " AND passhash = $3",
	/* A Web API key revoked locks its user first, as user del does
	 * (user, then keys): the two never wait for each other in turn. */
	[Q_APIKEY_REVOKE_LOCK] = "SELECT 1 FROM users u JOIN apikeys a"
	    " ON u.org = a.org AND u.name = a.user_name WHERE a.digest = $1"
	    " FOR NO KEY UPDATE OF u",
	/* A key revoked, and its principal cut off, in one statement. */
	[Q_APIKEY_REVOKE] = "WITH k AS (UPDATE apikeys SET revoked = true"
	    " WHERE digest = $1 RETURNING org, user_name),"
	    " u AS (UPDATE users u SET not_before ="
	    " GREATEST(u.not_before + $3, $2) FROM k"
	    " WHERE u.org = k.org AND u.name = k.user_name)"
	    " SELECT count(*) FROM k",
	[Q_CONSUMER_REVOKE] = "WITH k AS (UPDATE consumer_keys SET"
	    " revoked = true WHERE digest = $1 RETURNING org, app),"
	    " c AS (INSERT INTO cutoffs SELECT org, app, $2 FROM k"
	    " ON CONFLICT (org, app) DO UPDATE SET"
	    " cutoff = GREATEST(cutoffs.cutoff + $3, EXCLUDED.cutoff))"
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
	 * it decides; a row locked is read as it is now.  Both statements
	 * lock in key order, so that two requests of one client never wait
	 * for each other in a circle (a deadlock costs a second and a 503).
	 */
	/* Whoever decides an attempt from an address takes its lock first,
	 * a success that writes nothing too (p_attempt_decide): each is
	 * answered in turn.  $1: the address as a number (att_lock). */
	[Q_ATT_LOCK] = "SELECT pg_advisory_xact_lock($1::bigint)",
	[Q_ATT_ENSURE] = "INSERT INTO attempts SELECT k, 0, 0, NULL FROM"
	    " (VALUES ($1::bytea), ($2::bytea), ($3::bytea)) v(k)"
	    " WHERE k IS NOT NULL ON CONFLICT DO NOTHING",
	/* $1-3 keys, $4-6 limits, $7-9 exempt, $10-12 subjects, $13 the
	 * trust key, $14 now, $15 the window.  Held (until > now): nothing
	 * counted.  Else one more in each, in its window or a new one; the
	 * subject kept once the limit is reached.  An upsert, since a row
	 * whose window is over may have been pruned by another node since
	 * it was made; each count comes back, for the caller to check that
	 * none went past its limit meanwhile (p_attempt_reserve). */
	[Q_ATT_RESERVE] = ATT_RESERVE,
	/* $1-3 keys, $4-6 the windows they counted in, $7-9 clear on
	 * success, $10 success, $11 the trust key (NULL: none), $12 until
	 * when.  Each counter still in that window gets its one back, or
	 * goes back to none (count 0: the row stays for the next
	 * reservation; pruning takes it when its window is over).  The
	 * trust as att_trust_rule says. */
	[Q_ATT_GIVEBACK] = "WITH v AS (SELECT * FROM (VALUES"
	    " ($1::bytea, $4::bigint, $7::boolean),"
	    " ($2::bytea, $5::bigint, $8::boolean),"
	    " ($3::bytea, $6::bigint, $9::boolean)) x (k, e, clr)"
	    " WHERE k IS NOT NULL),"
	    " cur AS (SELECT c.key, c.count, ($10::boolean AND v.clr)"
	    " OR c.count <= 1 AS gone FROM attempts c JOIN v ON v.k = c.key"
	    " WHERE c.count > 0 AND c.window_end = v.e ORDER BY c.key"
	    " FOR UPDATE OF c),"
	    " u AS (UPDATE attempts a SET count = CASE WHEN cur.gone THEN 0"
	    " ELSE cur.count - 1 END FROM cur WHERE a.key = cur.key"
	    " RETURNING 1),"
	    " t AS (INSERT INTO attempts SELECT $11::bytea, $12::bigint, 0,"
	    " NULL WHERE $11::bytea IS NOT NULL ON CONFLICT (key) DO UPDATE"
	    " SET window_end = EXCLUDED.window_end WHERE attempts.window_end"
	    " < EXCLUDED.window_end - " STR(ATT_TRUST_SLACK) " RETURNING 1)"
	    " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM t)",
	/* A success not reserved (p_attempt_decide): the counters read as
	 * ATT_PEEK_JOIN reads them ($1-11), and unless held, the pairs
	 * ($12-14: clear) counting in their window cleared, the trust made
	 * or written anew until $15 as att_trust_rule says.  Writes only
	 * what changes (then a read takes no transaction id). */
	[Q_ATT_SETTLE] = "WITH c AS (SELECT " ATT_PEEK_COLS ", " ATT_HELD
	    " AS held, tt.key IS NULL AS tnone FROM (SELECT 1) o"
	    ATT_PEEK_JOIN "),"
	    " u AS (UPDATE attempts a SET count = 0 FROM c, (VALUES"
	    " ($1::bytea, $12::boolean), ($2::bytea, $13::boolean),"
	    " ($3::bytea, $14::boolean)) v (k, clr) WHERE NOT c.held AND"
	    " v.clr AND a.key = v.k AND a.count > 0 AND a.window_end > $11"
	    " RETURNING 1),"
	    " tu AS (UPDATE attempts a SET window_end = $15::bigint FROM c"
	    " WHERE NOT c.held AND a.key = $10 AND $15 > $11"
	    " AND a.window_end < $15 - " STR(ATT_TRUST_SLACK) " RETURNING 1),"
	    " ti AS (INSERT INTO attempts SELECT $10, $15, 0, NULL FROM c"
	    " WHERE NOT c.held AND c.tnone AND $10 IS NOT NULL AND $15 > $11"
	    " ON CONFLICT DO NOTHING RETURNING 1)"
	    " SELECT c.*, (SELECT count(*) FROM u) + (SELECT count(*) FROM tu)"
	    " + (SELECT count(*) FROM ti) FROM c",
	[Q_ATT_PRUNE] = "DELETE FROM attempts WHERE key IN (SELECT key FROM"
	    " attempts WHERE window_end <= $1 ORDER BY window_end LIMIT $2"
	    " FOR UPDATE SKIP LOCKED)",
	[Q_ATT_LOCKS] = "SELECT key, subject, count, window_end FROM attempts"
	    " WHERE subject IS NOT NULL AND window_end > $1 ORDER BY key",
	[Q_ATT_CLEAR] = "DELETE FROM attempts WHERE key = $1",
	/* Every key that starts with $1: the range up to $2, the first
	 * key past them (att_prefix_end()), read from the primary key. */
	[Q_ATT_CLEAR_PREFIX] = "DELETE FROM attempts WHERE key >= $1"
	    " AND key < $2",
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
	/* The counters read locked rows as they are now: READ COMMITTED,
	 * whatever the database's default. */
	[Q_BEGIN] = "BEGIN ISOLATION LEVEL READ COMMITTED",
	/* Counters may be lost in a crash: no flush waited for. */
	[Q_ASYNC] = "SET LOCAL synchronous_commit TO OFF",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
};

/* ---- records as rows ----------------------------------------------------------- */

/* A row's user from column col (USER_COLS); 0, or -1 when damaged. */
int
pg_get_user(const PGresult *r, int row, int col, struct user_rec *u)
{
	memset(u, 0, sizeof(*u));
	if (pg_str(r, row, col, u->pwhash, sizeof(u->pwhash)) == -1 ||
	    pg_units(r, row, col + 1, u->units, &u->nunits) == -1)
		return -1;
	u->disabled = pg_bool(r, row, col + 2);
	u->created = pg_i64(r, row, col + 3);
	u->not_before = pg_i64(r, row, col + 4);
	return 0;
}

int
pg_get_apikey(const PGresult *r, int row, int col, struct apikey_rec *a)
{
	memset(a, 0, sizeof(*a));
	if (pg_str(r, row, col, a->org, sizeof(a->org)) == -1 ||
	    pg_str(r, row, col + 1, a->user, sizeof(a->user)) == -1)
		return -1;
	a->revoked = pg_bool(r, row, col + 2);
	a->created = pg_i64(r, row, col + 3);
	return 0;
}

int
pg_get_consumer(const PGresult *r, int row, int col, struct consumer_rec *c)
{
	memset(c, 0, sizeof(*c));
	if (pg_str(r, row, col, c->org, sizeof(c->org)) == -1 ||
	    pg_str(r, row, col + 1, c->app, sizeof(c->app)) == -1 ||
	    pg_units(r, row, col + 2, c->units, &c->nunits) == -1)
		return -1;
	c->revoked = pg_bool(r, row, col + 3);
	c->created = pg_i64(r, row, col + 4);
	return 0;
}

int
pg_get_access(const PGresult *r, int row, int col, struct access_rec *a)
{
	memset(a, 0, sizeof(*a));
	if (pg_str(r, row, col, a->contact, sizeof(a->contact)) == -1 ||
	    pg_str(r, row, col + 1, a->ari, sizeof(a->ari)) == -1 ||
	    pg_str(r, row, col + 2, a->passhash, sizeof(a->passhash)) == -1)
		return -1;
	a->created = pg_i64(r, row, col + 3);
	return 0;
}

/* A signing key (KEY_COLS), unsealed with the node's wrap key. */
int
pg_get_sigkey(struct pstore *st, const PGresult *r, int row, int col,
    struct sigkey *k)
{
	unsigned char	sealed[SEALED_BYTES], held[CRM_SEAL_KEY];
	int		rc, lw = 0, have_file = 1;

	memset(k, 0, sizeof(*k));
	st->unseal_failed = 0;
	/* Copied in since the store was opened: taken up now, no restart. */
	if (!st->have_wrap)
		(void)load_wrap(st, 0);
	if (!st->have_wrap ||
	    pg_str(r, row, col, k->kid, sizeof(k->kid)) == -1 ||
	    strlen(k->kid) != CRM_KID_HEX ||
	    pg_bytes(r, row, col + 1, sealed, sizeof(sealed)) == -1)
		return -1;
	rc = sec_unseal(k->secret, sealed, sizeof(sealed), st->wrap, k->kid);
	/* wrap.key replaced since we read it (a new deployment's after a
	 * leak, or the right one copied over another's): read it again,
	 * and keep it only if it opens this key. */
	if (rc != 0) {
		memcpy(held, st->wrap, sizeof(held));
		if ((lw = load_wrap(st, 0)) == 0 && st->have_wrap)
			rc = sec_unseal(k->secret, sealed, sizeof(sealed),
			    st->wrap, k->kid);
		else if (lw == 0)
			have_file = 0;	/* removed: no key at all now */
		if (rc != 0 && have_file) {
			memcpy(st->wrap, held, sizeof(held));
			st->have_wrap = 1;
		}
		explicit_bzero(held, sizeof(held));
	}
	/* 2: the file cannot be read, and detail says why. */
	st->unseal_failed = rc == 0 || !st->have_wrap ? 0 : lw == -1 ? 2 : 1;
	k->created = pg_i64(r, row, col + 2);
	k->expires = pg_i64(r, row, col + 3);
	k->current = pg_bool(r, row, col + 4);
	return rc;
}

/* A record we cannot read; or no wrap key here, or another
 * deployment's, which is a set-up problem (STORE_ERROR, a 503 that
 * takes the node out of a balancer), not damage. */
enum store_err
pg_damaged(struct pstore *st, const char *what)
{
	int unsealed_not = st->unseal_failed;
	char why[sizeof(st->base.detail)];

	st->unseal_failed = 0;		/* said once, here */
	if (unsealed_not == 2) {	/* load_wrap's own reason */
		memcpy(why, st->base.detail, sizeof(why));
		why[sizeof(why) - 1] = '\0';
		if ((size_t)snprintf(st->base.detail, sizeof(st->base.detail),
		    "%s: %.1000s", what, why) >= sizeof(st->base.detail))
			st->base.detail[sizeof(st->base.detail) - 1] = '\0';
		return STORE_ERROR;
	}
	if (!st->have_wrap || unsealed_not) {
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s",
		    what, !st->have_wrap ? "no " WRAP_FILE " in db_path: copy "
		    "it from the node where crmauthctl init first ran" :
		    "the signing keys cannot be unsealed with this node's "
		    WRAP_FILE " (another deployment's?): copy the one from the "
		    "node where crmauthctl init first ran");
		return STORE_ERROR;
	}
	snprintf(st->base.detail, sizeof(st->base.detail), "%s: a record "
	    "cannot be read", what);
	return STORE_CORRUPT;
}

void
pg_code_keyed(char out[sizeof(CODE_KEYED) + 2 * CRM_DIGEST_BYTES],
    const unsigned char *hmac)
{
	memcpy(out, CODE_KEYED, sizeof(CODE_KEYED) - 1);
	sec_hex(out + sizeof(CODE_KEYED) - 1, hmac, CRM_DIGEST_BYTES);
}

void
pg_access_key(struct pstore *st, struct access_key *k,
    const unsigned char *code, const char *ident)
{
	unsigned char d[CRM_DIGEST_BYTES];

	k->kind[0] = code != NULL ? 'C' : 'I';
	k->kind[1] = '\0';
	k->legacy = NULL;
	if (code == NULL) {
		k->lookup = ident;
		return;
	}
	sec_hex(k->plain, code, CRM_DIGEST_BYTES);
	k->legacy = k->plain;
	k->lookup = NULL;
	/* Copied in since the store was opened: taken up now. */
	if (!st->have_wrap)
		(void)load_wrap(st, 0);
	if (!st->have_wrap)
		return;
	store_code_keyed(d, st->wrap, code);
	pg_code_keyed(k->keyed, d);
	k->lookup = k->keyed;
}

/* ---- reads ------------------------------------------------------------------------ */

/* Readable, and this node can sign: the current key unseals with its
 * wrap.key (a node without it, or with another's, is not healthy). */
static enum store_err
p_ping(struct store *s)
{
	struct pstore	*st = (struct pstore *)s;
	struct sigkey	 k;
	struct pq	 q = { .q = Q_SIGKEY_CURRENT };
	enum store_err	 e;

	if ((e = pq1(st, "ping", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) != 1)
		e = STORE_NOTINIT;
	else if (pg_get_sigkey(st, q.res, 0, 0, &k) == -1)
		e = pg_damaged(st, "ping");
	explicit_bzero(&k, sizeof(k));
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

	pg_param(&q, org);
	pg_param(&q, user);
	if ((e = pq1(st, "user get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = STORE_NOTFOUND;
	else if (pg_get_user(q.res, 0, 0, u) == -1)
		e = pg_damaged(st, "user get");
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

	pg_param_bytes(&q, digest, CRM_DIGEST_BYTES);
	if ((e = pq1(st, "apikey get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = STORE_NOTFOUND;
	else if (pg_get_apikey(q.res, 0, 0, a) == -1)
		e = pg_damaged(st, "apikey get");
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

	pg_param_bytes(&q, digest, CRM_DIGEST_BYTES);
	if ((e = pq1(st, "consumer key get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = STORE_NOTFOUND;
	else if (pg_get_consumer(q.res, 0, 0, c) == -1)
		e = pg_damaged(st, "consumer key get");
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_access_get(struct store *s, const char *org, const unsigned char *code,
    const char *ident, struct access_rec *a)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 q = { .q = Q_ACCESS_GET };
	struct access_key	 k;
	enum store_err		 e;

	pg_access_key(st, &k, code, ident);
	pg_param(&q, org);
	pg_param(&q, k.kind);
	pg_param(&q, k.lookup);
	pg_param(&q, k.legacy);
	if ((e = pq1(st, "access token get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = STORE_NOTFOUND;
	else if (pg_get_access(q.res, 0, 0, a) == -1)
		e = pg_damaged(st, "access token get");
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
		pg_param(&q, kid);
	}
	if ((e = pq1(st, "signing key get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = kid != NULL ? STORE_NOTFOUND : STORE_NOTINIT;
	else if (pg_get_sigkey(st, q.res, 0, 0, k) == -1)
		e = pg_damaged(st, "signing key get");
	pq_clear(&q, 1);
	return e;
}

/* ---- the counters a read takes with it (failed attempts, below) ----------- */

/* The numbers a read of counters passes (att_peek_params). */
struct att_nums {
	struct num	 lim[ATT_COUNTERS], now, window;
};

/* r's counters in key order (ord[i]: which one comes i-th), so that
 * every statement makes and locks rows in one order: two requests never
 * wait for each other in a circle. */
static void
att_order(const struct att_reserve *r, size_t ord[ATT_COUNTERS])
{
	size_t	 i, j, t;

	for (i = 0; i < ATT_COUNTERS; i++)
		ord[i] = i;
	for (i = 1; i < r->n; i++)
		for (j = i; j > 0; j--) {
			const struct att_counter *a = &r->c[ord[j - 1]];
			const struct att_counter *b = &r->c[ord[j]];
			size_t n = a->keylen < b->keylen ? a->keylen : b->keylen;
			int c = memcmp(a->key, b->key, n);

			if (c < 0 || (c == 0 && a->keylen <= b->keylen))
				break;
			t = ord[j - 1];
			ord[j - 1] = ord[j];
			ord[j] = t;
		}
}

/* The counters of r as parameters $1..$3, in key order (NULL where
 * there is none). */
static void
att_keys(struct pq *q, const struct att_reserve *r,
    const size_t ord[ATT_COUNTERS])
{
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		if (i < r->n)
			pg_param_bytes(q, r->c[ord[i]].key, r->c[ord[i]].keylen);
		else
			pg_param(q, NULL);
}

/* Find counter c's key in column col of the rows: its row, or -1. */
static int
att_row(const PGresult *res, const struct att_counter *c, int col)
{
	unsigned char k[ATT_KEY_MAX];

	for (int row = 0; row < PQntuples(res); row++) {
		const char *v = PQgetvalue(res, row, col);

		if (strlen(v) == 2 + 2 * c->keylen &&
		    pg_bytes(res, row, col, k, c->keylen) == 0 &&
		    memcmp(k, c->key, c->keylen) == 0)
			return row;
	}
	return -1;
}

/*
 * The number Q_ATT_LOCK locks for r: its client address (the pair's last
 * 8 bytes, a digest; its account's first 8 when there is no address),
 * as a bigint.  Every counter of a code has the address in its key, so
 * the lock orders all of a code's decisions from one address; a lock per
 * account would make an application's key, which all its users share, a
 * queue for all of them.
 */
static const char *
att_lock(const struct att_reserve *r, struct num *n)
{
	const struct att_counter	*c = &r->c[0];
	size_t				 from = c->keylen >= 1 + 16 + 8 ? 17 : 1;
	uint64_t			 v = 0;

	for (size_t i = from; i < from + 8 && i < c->keylen; i++)
		v = v << 8 | c->key[i];
	return pg_num(n, (int64_t)v);
}

/* $1-9 of both ATT_PEEK_JOIN and ATT_RESERVE: the keys (in ord), their
 * limits, whether exempt. */
static void
att_counter_params(struct pq *q, const struct att_reserve *r,
    const size_t ord[ATT_COUNTERS], struct att_nums *n)
{
	size_t i;

	att_keys(q, r, ord);
	for (i = 0; i < ATT_COUNTERS; i++)
		pg_param(q, i < r->n ?
		    pg_num(&n->lim[i], r->c[ord[i]].limit) : NULL);
	for (i = 0; i < ATT_COUNTERS; i++)
		pg_param(q, i < r->n ?
		    (r->c[ord[i]].exempt ? "t" : "f") : NULL);
}

/* The trust key, or NULL. */
static void
att_trust_param(struct pq *q, const struct att_reserve *r)
{
	if (r->trustlen > 0)
		pg_param_bytes(q, r->trust, r->trustlen);
	else
		pg_param(q, NULL);
}

/* $1-11 of ATT_PEEK_JOIN and ATT_HELD for r. */
static void
att_peek_params(struct pq *q, const struct att_reserve *r,
    const size_t ord[ATT_COUNTERS], struct att_nums *n)
{
	att_counter_params(q, r, ord, n);
	att_trust_param(q, r);
	pg_param(q, pg_num(&n->now, r->now));
}

/* The counters read in ATT_PEEK_COLS from column col, and the rule. */
static void
att_peek_read(const PGresult *res, int col, struct att_reserve *r,
    const size_t ord[ATT_COUNTERS])
{
	struct att_value	 cur[ATT_COUNTERS];

	memset(cur, 0, sizeof(cur));
	for (size_t i = 0; i < r->n; i++) {
		struct att_value *v = &cur[ord[i]];
		int c = col + 2 * (int)i;

		if ((v->exists = !pg_is_null(res, 0, c))) {
			v->end = pg_i64(res, 0, c);
			v->count = (uint32_t)pg_i64(res, 0, c + 1);
		}
	}
	att_peek_rule(r, cur, pg_is_null(res, 0, col + 6) ? 0 :
	    pg_i64(res, 0, col + 6));
}


/* $1-15 of ATT_RESERVE for r (keys in ord). */
static void
att_reserve_params(struct pq *q, const struct att_reserve *r,
    const size_t ord[ATT_COUNTERS], struct att_nums *n)
{
	att_counter_params(q, r, ord, n);
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		pg_param(q, i < r->n ? r->c[ord[i]].subject : NULL);
	att_trust_param(q, r);
	pg_param(q, pg_num(&n->now, r->now));
	pg_param(q, pg_num(&n->window, r->window));
}

/*
 * What ATT_RESERVE answered: r->locked_until, r->trusted, each counter's
 * window.  *over > r->now: a counter went past its limit, as another
 * attempt got there first between this one's look and its count (a row
 * pruned and made again): held after all, its count to be given back.
 * -1 when the rows are not what it writes (not held, yet not counted).
 */
static int
att_reserved(const PGresult *res, struct att_reserve *r, int64_t *over)
{
	int64_t	 count;
	int	 row;

	r->locked_until = 0;
	r->trusted = 0;
	*over = 0;
	if (PQntuples(res) < 1)
		return -1;
	r->locked_until = pg_i64(res, 0, 0);
	r->trusted = pg_bool(res, 0, 1);
	if (r->locked_until > r->now)
		return 0;
	for (size_t i = 0; i < r->n; i++) {
		const struct att_counter *c = &r->c[i];

		if ((row = att_row(res, c, 2)) == -1)
			return -1;
		r->c[i].end = pg_i64(res, row, 3);
		count = pg_i64(res, row, 4);
		if (count > c->limit && !(c->exempt && r->trusted) &&
		    r->c[i].end > *over)
			*over = r->c[i].end;
	}
	return 0;
}

static enum store_err p_attempt_giveback(struct store *,
		    struct att_reserve *, int, int64_t);

static enum store_err lookup_row_held(struct pstore *, const char *,
		    struct pq *, struct att_reserve *,
		    const size_t[ATT_COUNTERS], int, struct lookup *);

/* The one row of a lookup: the current key, and its records. */
static enum store_err
lookup_row(struct pstore *st, const char *what, struct pq *q,
    struct lookup *l)
{
	return lookup_row_held(st, what, q, NULL, NULL, 0, l);
}

/* The same, with r's counters read from column col (ord: their order):
 * when held, the signing key is not unsealed either. */
static enum store_err
lookup_row_held(struct pstore *st, const char *what, struct pq *q,
    struct att_reserve *r, const size_t ord[ATT_COUNTERS], int col,
    struct lookup *l)
{
	enum store_err e;

	lookup_reset(l);
	if ((e = pq1(st, what, q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q->res) != 1) {
		pq_clear(q, 1);
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s",
		    what, "no current signing key");
		return STORE_NOTINIT;
	}
	if (r != NULL) {
		att_peek_read(q->res, col, r, ord);
		if (r->locked_until > r->now)
			return STORE_OK;
	}
	if (pg_get_sigkey(st, q->res, 0, 0, &l->key) == -1) {
		pq_clear(q, 1);
		return pg_damaged(st, what);
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

	pg_param(&q, org);
	pg_param(&q, user);
	if ((e = lookup_row(st, "user lookup", &q, l)) != STORE_OK)
		return e;
	if ((l->user_found = !pg_is_null(q.res, 0, 5)) &&
	    pg_get_user(q.res, 0, 5, &l->user) == -1)
		e = pg_damaged(st, "user lookup");
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_lookup_apikey(struct store *s, const unsigned char *digest,
    struct att_reserve *r, struct lookup *l)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = r != NULL ? Q_LOOKUP_APIKEY_HELD :
			    Q_LOOKUP_APIKEY };
	struct att_nums	 n;
	size_t		 ord[ATT_COUNTERS] = { 0 };
	enum store_err	 e;

	if (r != NULL) {
		att_order(r, ord);
		att_peek_params(&q, r, ord, &n);
	}
	pg_param_bytes(&q, digest, CRM_DIGEST_BYTES);
	if ((e = lookup_row_held(st, "apikey lookup", &q, r, ord, 14, l)) !=
	    STORE_OK)
		return e;
	if (r != NULL && r->locked_until > r->now) {
		pq_clear(&q, 1);
		return STORE_OK;	/* held: nothing else read */
	}
	if (((l->user_found = !pg_is_null(q.res, 0, 5)) &&
	    pg_get_user(q.res, 0, 5, &l->user) == -1) ||
	    ((l->apikey_found = !pg_is_null(q.res, 0, 10)) &&
	    pg_get_apikey(q.res, 0, 10, &l->apikey) == -1))
		e = pg_damaged(st, "apikey lookup");
	pq_clear(&q, 1);
	return e;
}

/* The consumer lookups' columns from 5 on: the consumer, its access
 * token, the application's cutoff, whether the code's record is plain. */
static enum store_err
consumer_row(struct pstore *st, const PGresult *res, struct lookup *l)
{
	enum store_err e = STORE_OK;

	if (((l->consumer_found = !pg_is_null(res, 0, 5)) &&
	    pg_get_consumer(res, 0, 5, &l->consumer) == -1) ||
	    ((l->access_found = !pg_is_null(res, 0, 10)) &&
	    pg_get_access(res, 0, 10, &l->access) == -1))
		e = pg_damaged(st, "consumer lookup");
	l->app_cutoff = pg_i64(res, 0, 14);
	l->access_legacy = l->access_found && pg_bool(res, 0, 15);
	return e;
}

/*
 * With r, a code's attempt (store.h): one transaction holding the
 * address's lock (Q_ATT_LOCK, as p_attempt_decide): the lookup with the
 * counters, then a commit, or a missed code counted and a commit (two
 * round trips; counting in the first, as a statement that decides it
 * again, cost the server more than the second round trip).
 */
static enum store_err
p_lookup_consumer(struct store *s, const unsigned char *digest,
    const unsigned char *code, const char *ident, struct att_reserve *r,
    struct lookup *l)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 q[4] = { { .q = Q_BEGIN }, { .q = Q_ASYNC },
				    { .q = Q_ATT_LOCK },
				    { .q = Q_LOOKUP_CONSUMER_PEEK } };
	struct pq		 w[3] = { { .q = Q_ATT_ENSURE },
				    { .q = Q_ATT_RESERVE }, { .q = Q_COMMIT } };
	struct pq		*lq = &q[3], *end = &w[2];
	struct access_key	 k;
	struct att_nums		 pn;
	struct att_nums	 rn;
	struct num		 lk;
	size_t			 ord[ATT_COUNTERS];
	enum store_err		 e;
	int64_t			 over = 0;
	int			 n = 1;

	pg_access_key(st, &k, code, ident);
	if (r == NULL || code == NULL) {
		struct pq q1 = { .q = Q_LOOKUP_CONSUMER };

		pg_param_bytes(&q1, digest, CRM_DIGEST_BYTES);
		pg_param(&q1, k.kind);
		pg_param(&q1, k.lookup);
		pg_param(&q1, k.legacy);
		if ((e = lookup_row(st, "consumer lookup", &q1, l)) != STORE_OK)
			return e;
		e = consumer_row(st, q1.res, l);
		pq_clear(&q1, 1);
		return e;
	}
	lookup_reset(l);
	att_order(r, ord);
	pg_param(&q[2], att_lock(r, &lk));
	att_peek_params(lq, r, ord, &pn);
	pg_param_bytes(lq, digest, CRM_DIGEST_BYTES);
	pg_param(lq, k.kind);
	pg_param(lq, k.lookup);
	pg_param(lq, k.legacy);
	if ((e = pq_run(st, "consumer lookup", q, 4, CONNECT)) != STORE_OK)
		return pg_rollback(st, "consumer lookup", e);
	if (PQntuples(lq->res) != 1) {
		pq_clear(q, 4);
		snprintf(st->base.detail, sizeof(st->base.detail), "%s: %s",
		    "consumer lookup", "no current signing key");
		return pg_rollback(st, "consumer lookup", STORE_NOTINIT);
	}
	if (pg_get_sigkey(st, lq->res, 0, 0, &l->key) == -1 ||
	    consumer_row(st, lq->res, l) != STORE_OK) {
		pq_clear(q, 4);
		return pg_rollback(st, "consumer lookup", STORE_CORRUPT);
	}
	att_peek_read(lq->res, 16, r, ord);
	pq_clear(q, 4);
	/* A code missed, of a key that is one, not held: counted. */
	if (r->locked_until <= r->now && l->consumer_found &&
	    !l->consumer.revoked && !l->access_found) {
		att_keys(&w[0], r, ord);
		att_reserve_params(&w[1], r, ord, &rn);
		end = w;
		n = 3;
	}
	if ((e = pq_run(st, "consumer lookup", end, n, CONTINUE)) != STORE_OK)
		return pg_rollback(st, "consumer lookup", e);
	if (n == 3 && att_reserved(w[1].res, r, &over) == -1) {
		pq_clear(end, n);
		return pg_damaged(st, "consumer lookup");
	}
	pq_clear(end, n);
	if (over > r->now) {
		(void)p_attempt_giveback(s, r, 0, 0);
		r->locked_until = over;
	}
	return STORE_OK;
}

static enum store_err
p_token_state(struct store *s, const char *kid, const unsigned char *jti,
    const struct principal *who, struct tok_state *t)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_TOKEN_STATE };
	enum store_err	 e;

	memset(t, 0, sizeof(*t));
	pg_param(&q, kid);
	if (jti != NULL)
		pg_param_bytes(&q, jti, CRM_JTI_BYTES);
	else
		pg_param(&q, NULL);
	pg_param(&q, who != NULL && who->consumer ? "t" : "f");
	pg_param(&q, who != NULL ? who->org : NULL);
	pg_param(&q, who != NULL ? who->name : NULL);
	if ((e = pq1(st, "token state", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) != 1) {
		pq_clear(&q, 1);
		return pg_damaged(st, "token state");
	}
	if ((t->key_found = !pg_is_null(q.res, 0, 0)) &&
	    pg_get_sigkey(st, q.res, 0, 0, &t->key) == -1) {
		pq_clear(&q, 1);
		return pg_damaged(st, "token state");
	}
	t->released = pg_bool(q.res, 0, 5);
	if (who != NULL && who->consumer) {
		t->principal_found = 1;
		t->cutoff = pg_i64(q.res, 0, 9);
	} else if (who != NULL && !pg_is_null(q.res, 0, 6)) {
		t->principal_found = 1;
		t->created = pg_i64(q.res, 0, 6);
		t->disabled = pg_bool(q.res, 0, 7);
		t->cutoff = pg_i64(q.res, 0, 8);
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

	pg_param_bytes(&q, jti, CRM_JTI_BYTES);
	if ((e = pq1(st, "released get", &q, 1)) != STORE_OK)
		return e;
	if (PQntuples(q.res) == 0)
		e = STORE_NOTFOUND;
	else
		*exp = pg_i64(q.res, 0, 0);
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_stats(struct store *s, struct store_stats *out)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q = { .q = Q_STATS };
	enum store_err	 e;

	memset(out, 0, sizeof(*out));
	if ((e = pq1(st, "stats", &q, 1)) != STORE_OK)
		return e;
	if (pg_is_null(q.res, 0, 0))
		e = STORE_NOTINIT;
	out->key_created = pg_i64(q.res, 0, 0);
	out->released = (size_t)pg_i64(q.res, 0, 1);
	pq_clear(&q, 1);
	return e;
}

/* ---- writes ------------------------------------------------------------------------ */

/* The parameters of a user row (org, name, then USER_COLS order). */
int
pg_user_params(struct pq *q, const char *org, const char *user,
    const struct user_rec *u, struct num nums[2], char **units)
{
	if ((*units = pg_units_json(u->units, u->nunits)) == NULL)
		return -1;
	pg_param(q, org);
	pg_param(q, user);
	pg_param(q, u->pwhash);
	pg_param(q, *units);
	pg_param(q, u->disabled ? "t" : "f");
	pg_param(q, pg_num(&nums[0], u->created));
	pg_param(q, pg_num(&nums[1], u->not_before));
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

	if (pg_user_params(&q, org, user, u, nums, &units) == -1)
		return STORE_ERROR;
	e = pq1(st, "user add", &q, 0);
	free(units);
	if (e != STORE_OK)
		return e;
	e = pg_changed(q.res) == 1 ? STORE_OK : STORE_EXISTS;
	pq_clear(&q, 1);
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

	pg_param(&b[1], org);
	pg_param(&b[1], user);
	if ((e = pq_run(st, "user change", b, 2, CONNECT)) != STORE_OK)
		return pg_rollback(st, "user change", e);
	if (PQntuples(b[1].res) == 0)
		e = STORE_NOTFOUND;
	else if (pg_get_user(b[1].res, 0, 0, &u) == -1)
		e = pg_damaged(st, "user change");
	pq_clear(b, 2);
	if (e != STORE_OK)
		return pg_rollback(st, "user change", e);
	if (change(&u, arg) != 0)
		w[0].q = Q_ROLLBACK;	/* nothing to write */
	else if (pg_user_params(&w[0], org, user, &u, nums, &units) == -1)
		return pg_rollback(st, "user change", STORE_ERROR);
	e = pg_finish(st, "user change", w, w[0].q == Q_ROLLBACK ? 1 : 2);
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
	struct pq	 q[4] = { { .q = Q_BEGIN }, { .q = Q_USER_DEL },
			    { .q = Q_USER_KEYS_DEL }, { .q = Q_COMMIT } };
	enum store_err	 e;

	for (int i = 1; i <= 2; i++) {
		pg_param(&q[i], org);
		pg_param(&q[i], user);
	}
	if ((e = pq_run(st, "user del", q, 4, CONNECT)) != STORE_OK)
		return pg_rollback(st, "user del", e);
	e = pg_changed(q[1].res) == 1 ? STORE_OK : STORE_NOTFOUND;
	pq_clear(q, 4);
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

	pg_param_bytes(&q, digest, CRM_DIGEST_BYTES);
	pg_param(&q, a->org);
	pg_param(&q, a->user);
	pg_param(&q, a->revoked ? "t" : "f");
	pg_param(&q, pg_num(&n, a->created));
	if ((e = pq1(st, "apikey put", &q, !must_be_new)) != STORE_OK)
		return e;
	e = pg_changed(q.res) == 1 ? STORE_OK : STORE_EXISTS;
	pq_clear(&q, 1);
	if (e == STORE_OK)
		return e;
	/* Nothing written: no such user, or (a new key) the digest taken. */
	q = (struct pq){ .q = Q_USER_SEEN };
	pg_param(&q, a->org);
	pg_param(&q, a->user);
	if ((e = pq1(st, "apikey put", &q, 1)) != STORE_OK)
		return e;
	e = PQntuples(q.res) == 0 ? STORE_NOTFOUND : STORE_EXISTS;
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

	if ((units = pg_units_json(c->units, c->nunits)) == NULL)
		return STORE_ERROR;
	pg_param_bytes(&q, digest, CRM_DIGEST_BYTES);
	pg_param(&q, c->org);
	pg_param(&q, c->app);
	pg_param(&q, units);
	pg_param(&q, c->revoked ? "t" : "f");
	pg_param(&q, pg_num(&n, c->created));
	e = pq1(st, "consumer key put", &q, !must_be_new);
	free(units);
	if (e != STORE_OK)
		return e;
	e = pg_changed(q.res) == 1 ? STORE_OK : STORE_EXISTS;
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_access_add(struct store *s, const char *org, const unsigned char *code,
    const char *ident, const struct access_rec *a)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 q = { .q = Q_ACCESS_ADD };
	struct access_key	 k;
	struct num		 n;
	enum store_err		 e;

	pg_access_key(st, &k, code, ident);
	if (k.lookup == NULL)	/* a code, and no wrap.key to key it */
		return pg_damaged(st, "access token add");
	pg_param(&q, org);
	pg_param(&q, k.kind);
	pg_param(&q, k.lookup);
	pg_param(&q, a->contact);
	pg_param(&q, a->ari);
	pg_param(&q, a->passhash);
	pg_param(&q, pg_num(&n, a->created));
	pg_param(&q, k.legacy);
	if ((e = pq1(st, "access token add", &q, 0)) != STORE_OK)
		return e;
	e = pg_changed(q.res) == 1 ? STORE_OK : STORE_EXISTS;
	pq_clear(&q, 1);
	return e;
}

static int
p_code_key(struct store *s, char *id)
{
	struct pstore *st = (struct pstore *)s;

	id[0] = '\0';
	if (!st->have_wrap && load_wrap(st, 0) == -1)
		return -1;
	if (st->have_wrap)
		store_code_key_id(id, st->wrap);
	return 0;
}

static enum store_err
p_access_rekey(struct store *s, const char *org, const unsigned char *code)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 q = { .q = Q_ACCESS_REKEY };
	struct access_key	 k;
	enum store_err		 e;

	pg_access_key(st, &k, code, NULL);
	if (k.lookup == NULL)
		return STORE_OK;	/* no wrap.key: later */
	pg_param(&q, org);
	pg_param(&q, k.legacy);
	pg_param(&q, k.lookup);
	if ((e = pq1(st, "access token rekey", &q, 1)) == STORE_OK)
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

	pg_param(&q, org);
	pg_param(&q, ident);
	pg_param(&q, old);
	pg_param(&q, new);
	if ((e = pq1(st, "access token rehash", &q, 1)) != STORE_OK)
		return e;
	e = pg_changed(q.res) == 1 ? STORE_OK : STORE_NOTFOUND;
	pq_clear(&q, 1);
	return e;
}

static enum store_err
p_key_revoke(struct store *s, int consumer, const unsigned char *digest,
    int64_t now, int step)
{
	struct pstore	*st = (struct pstore *)s;
	struct pq	 q[4] = { { .q = Q_BEGIN }, { .q = Q_APIKEY_REVOKE_LOCK },
			    { .q = Q_APIKEY_REVOKE }, { .q = Q_COMMIT } };
	struct pq	*r = &q[2];
	struct num	 n;
	enum store_err	 e;

	if (consumer)
		*r = (struct pq){ .q = Q_CONSUMER_REVOKE };
	pg_param_bytes(&q[1], digest, CRM_DIGEST_BYTES);
	pg_param_bytes(r, digest, CRM_DIGEST_BYTES);
	pg_param(r, pg_num(&n, now));
	pg_param(r, step ? "1" : "0");
	/* Revoked twice is revoked; the cutoff as cutoff_next(). */
	if (consumer) {
		if ((e = pq1(st, "key revoke", r, 1)) != STORE_OK)
			return e;
	} else if ((e = pq_run(st, "key revoke", q, 4, CONNECT)) != STORE_OK)
		return pg_rollback(st, "key revoke", e);
	e = pg_i64(r->res, 0, 0) == 1 ? STORE_OK : STORE_NOTFOUND;
	pq_clear(q, 4);
	return e;
}

/* A new signing key's row, sealed: the parameters of Q_SIGKEY_ADD. */
int
pg_sigkey_params(struct pstore *st, struct pq *q, const struct sigkey *k,
    unsigned char sealed[SEALED_BYTES], struct num nums[2])
{
	if (!st->have_wrap || sec_seal(sealed, k->secret, CRM_SIGKEY_BYTES,
	    st->wrap, k->kid) != 0)
		return -1;
	pg_param(q, k->kid);
	pg_param_bytes(q, sealed, SEALED_BYTES);
	pg_param(q, pg_num(&nums[0], k->created));
	pg_param(q, pg_num(&nums[1], k->expires));
	pg_param(q, k->current ? "t" : "f");
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

/*
 * Lock the current key for a change of keys (first round trip).  A
 * change that held it meanwhile (a rotate or retire beside this one)
 * leaves the row it waited for no longer current, and the statement,
 * whose snapshot is older, finds none: the statement again, with a new
 * snapshot, finds the new current key.  None after that many changes in
 * a row is a store that has no key.
 */
static enum store_err
lock_current(struct pstore *st, const char *what, struct sigkey *cur)
{
	struct pq	 b[3] = { { .q = Q_BEGIN }, { .q = Q_SIGKEY_LOCK },
			    { .q = Q_SIGKEY_CURRENT } };
	enum store_err	 e = STORE_OK;
	int		 tries = 0;

	if ((e = pq_run(st, what, b, 2, CONNECT)) != STORE_OK)
		return pg_rollback(st, what, e);
	while (PQntuples(b[1].res) != 1 && e == STORE_OK) {
		pq_clear(b, 2);
		/* Is there a current key at all (this statement's snapshot
		 * is new)?  Then lock it again, a few times at most. */
		if ((e = pq_run(st, what, &b[2], 1, CONTINUE)) != STORE_OK)
			break;
		if (PQntuples(b[2].res) == 0)
			e = STORE_NOTINIT;
		else if (++tries == 8) {
			snprintf(st->base.detail, sizeof(st->base.detail),
			    "%s: the signing keys were changed by other "
			    "commands %d times while this one waited: try "
			    "again", what, tries);
			e = STORE_ERROR;
		} else {
			b[1] = (struct pq){ .q = Q_SIGKEY_LOCK };
			e = pq_run(st, what, &b[1], 1, CONTINUE);
		}
		pq_clear(&b[2], 1);
		if (e != STORE_OK)
			return pg_rollback(st, what, e);
	}
	if (e == STORE_OK && pg_get_sigkey(st, b[1].res, 0, 0, cur) == -1)
		e = pg_damaged(st, what);
	pq_clear(b, 3);
	return e == STORE_OK ? e : pg_rollback(st, what, e);
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
	pg_param(&w[0], old->kid);
	pg_param(&w[0], pg_num(&nums[2], old->expires));
	if (pg_sigkey_params(st, &w[1], new, sealed, nums) == -1) {
		explicit_bzero(new, sizeof(*new));
		return pg_rollback(st, "key rotate", pg_damaged(st, "key rotate"));
	}
	pg_param(&w[2], pg_num(&nums[3], now));
	e = pg_finish(st, "key rotate", w, 4);
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
	pg_param(&w[n++], kid);
	if (strcmp(cur.kid, kid) == 0) {
		/* The current one: a new current key first (the old row
		 * goes in the same transaction, so the index holds). */
		sigkey_make(new);
		if (pg_sigkey_params(st, &w[n++], new, sealed, nums) == -1)
			return pg_rollback(st, "key retire",
			    pg_damaged(st, "key retire"));
		*made_new = 1;
	}
	w[n++].q = Q_COMMIT;
	e = pq_run(st, "key retire", w, n, CONTINUE);
	if (e == STORE_OK) {
		/* Not a key at all (it cannot have been the current one):
		 * nothing was changed. */
		if (pg_changed(w[0].res) != 1)
			e = STORE_NOTFOUND;
		pq_clear(w, n);
	} else
		pg_rollback(st, "key retire", e);
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
	pg_param_bytes(&q, jti, CRM_JTI_BYTES);
	pg_param(&q, pg_num(&n[0], exp));
	pg_param(&q, pg_num(&n[1], now));
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
		pg_param(&q, pg_num(&t, now));
		if ((e = pq1(st, "released prune", &q, 1)) != STORE_OK)
			return e;
		k = pg_changed(q.res);
		*n += (size_t)k;
		pq_clear(&q, 1);
	} while (k > 0);
	q = (struct pq){ .q = Q_SIGKEY_PRUNE };
	pg_param(&q, pg_num(&t, now));
	if ((e = pq1(st, "signing key prune", &q, 1)) == STORE_OK)
		pq_clear(&q, 1);
	return e;
}

/* ---- failed attempts ------------------------------------------------------------- */

/* Counting need not be durable (store.h): no flush waited for.  One
 * round trip: the rows made, the counters locked, counted (or not). */
static enum store_err
p_attempt_reserve(struct store *s, struct att_reserve *r)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 q[7] = { { .q = Q_BEGIN }, { .q = Q_ASYNC },
				    { .q = Q_ATT_LOCK }, { .q = Q_ATT_ENSURE },
				    { .q = Q_ATT_RESERVE }, { .q = Q_ATT_PRUNE },
				    { .q = Q_COMMIT } };
	struct att_nums	 n;
	struct num		 lk, most;
	size_t			 ord[ATT_COUNTERS];
	enum store_err		 e;
	int64_t			 over;

	att_order(r, ord);
	pg_param(&q[2], att_lock(r, &lk));
	att_keys(&q[3], r, ord);
	att_reserve_params(&q[4], r, ord, &n);
	pg_param(&q[5], n.now.s);
	pg_param(&q[5], pg_num(&most, 16));
	if ((e = pq_run(st, "attempts", q, 7, CONNECT)) != STORE_OK)
		return pg_rollback(st, "attempts", e);
	if (att_reserved(q[4].res, r, &over) == -1) {
		pq_clear(q, 7);
		return pg_damaged(st, "attempts");
	}
	pq_clear(q, 7);
	if (over > r->now) {
		(void)p_attempt_giveback(s, r, 0, 0);
		r->locked_until = over;
	}
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
	size_t			 ord[ATT_COUNTERS];
	enum store_err		 e;

	att_order(r, ord);
	att_keys(g, r, ord);
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		pg_param(g, i < r->n ? pg_num(&ends[i], r->c[ord[i]].end) : NULL);
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		pg_param(g, i < r->n ? (r->c[ord[i]].clear ? "t" : "f") : NULL);
	pg_param(g, success ? "t" : "f");
	if (success && trust_until > r->now && r->trustlen > 0) {
		pg_param_bytes(g, r->trust, r->trustlen);
		pg_param(g, pg_num(&t, trust_until));
	} else {
		pg_param(g, NULL);
		pg_param(g, NULL);
	}
	if ((e = pq_run(st, "attempts", q, 4, CONNECT)) != STORE_OK)
		return pg_rollback(st, "attempts", e);
	pq_clear(q, 4);
	return STORE_OK;
}

/* A failure counted as reserve counts it; a success read holding its
 * address's lock (Q_ATT_LOCK), settled in the same statement. */
static enum store_err
p_attempt_decide(struct store *s, struct att_reserve *r, int ok)
{
	struct pstore		*st = (struct pstore *)s;
	struct pq		 q[5] = { { .q = Q_BEGIN }, { .q = Q_ASYNC },
				    { .q = Q_ATT_LOCK }, { .q = Q_ATT_SETTLE },
				    { .q = Q_COMMIT } };
	struct pq		*sq = &q[3];
	struct att_nums		 n;
	struct num		 lk, until;
	size_t			 ord[ATT_COUNTERS];
	enum store_err		 e;

	if (!ok)
		return p_attempt_reserve(s, r);
	att_order(r, ord);
	pg_param(&q[2], att_lock(r, &lk));
	att_peek_params(sq, r, ord, &n);
	for (size_t i = 0; i < ATT_COUNTERS; i++)
		pg_param(sq, i < r->n ? (r->c[ord[i]].clear ? "t" : "f") :
		    NULL);
	pg_param(sq, r->trust_until > 0 ? pg_num(&until, r->trust_until) :
	    NULL);
	if ((e = pq_run(st, "attempts", q, 5, CONNECT)) != STORE_OK)
		return pg_rollback(st, "attempts", e);
	if (PQntuples(sq->res) != 1) {
		pq_clear(q, 5);
		return pg_damaged(st, "attempts");
	}
	att_peek_read(sq->res, 0, r, ord);
	pq_clear(q, 5);
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

	pg_param(&q, pg_num(&t, (int64_t)time(NULL)));
	if ((e = pq1(st, "lock list", &q, 1)) != STORE_OK)
		return e;
	for (int row = 0; row < PQntuples(q.res); row++) {
		v = PQgetvalue(q.res, row, 0);
		subj = PQgetvalue(q.res, row, 1);
		/* The type: the key's first byte, in hex after \x. */
		if (strlen(v) < 4 || strncmp(v, "\\x", 2) != 0)
			continue;
		if (cb(arg, (char)strtol((char[]){ v[2], v[3], '\0' }, NULL,
		    16), subj, strlen(subj), (uint32_t)pg_i64(q.res, row, 2),
		    pg_i64(q.res, row, 3)) != 0)
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
	unsigned char	 end[ATT_KEY_MAX];
	size_t		 endlen = keylen;
	enum store_err	 e;

	*n = 0;
	if (keylen == 0 || keylen > sizeof(end))
		return STORE_ERROR;
	pg_param_bytes(&q, key, keylen);
	if (prefix) {
		/* Keys start with a letter: there is always a first key past
		 * those with the prefix. */
		memcpy(end, key, keylen);
		while (endlen > 0 && end[endlen - 1] == 0xff)
			endlen--;
		if (endlen == 0)
			return STORE_ERROR;
		end[endlen - 1]++;
		pg_param_bytes(&q, end, endlen);
	}
	if ((e = pq1(st, "lock clear", &q, 1)) != STORE_OK)
		return e;
	*n = (size_t)pg_changed(q.res);
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
		pg_param(&q, pg_num(&t, now));
		pg_param(&q, pg_num(&lim, 1000));
		if ((e = pq1(st, "attempts prune", &q, 1)) != STORE_OK)
			return e;
		k = pg_changed(q.res);
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
	*bytes = (size_t)pg_i64(q.res, 0, 0);
	*records = (size_t)pg_i64(q.res, 0, 1);
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
		pg_param(&q, org);
	if ((e = pq1(st, "user list", &q, 1)) != STORE_OK)
		return e;
	for (int row = 0; row < PQntuples(q.res) && e == STORE_OK; row++) {
		if (pg_str(q.res, row, 0, o, sizeof(o)) == -1 ||
		    pg_str(q.res, row, 1, name, sizeof(name)) == -1 ||
		    pg_get_user(q.res, row, 2, &u) == -1)
			e = pg_damaged(st, "user list");
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
		if (pg_bytes(q.res, row, 0, d, sizeof(d)) == -1 ||
		    pg_get_apikey(q.res, row, 1, &a) == -1)
			e = pg_damaged(st, "apikey list");
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
		if (pg_bytes(q.res, row, 0, d, sizeof(d)) == -1 ||
		    pg_get_consumer(q.res, row, 1, &c) == -1)
			e = pg_damaged(st, "consumer key list");
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
		if (pg_get_sigkey(st, q.res, row, 0, &k) == -1)
			e = pg_damaged(st, "signing key list");
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
 * The key that seals signing keys, from db_path/wrap.key (wrap.c).
 * create: make it if it is missing (when the database holds no key yet
 * that it would have to open).  0, or -1 with st->base.detail set.
 */
static int
load_wrap(struct pstore *st, int create)
{
	return store_wrap_load(&st->base.cfg, st->wrap, &st->have_wrap,
	    create, st->base.detail, sizeof(st->base.detail));
}

/*
 * crmauthctl init on a database whose authentication codes were kept by
 * their plain SHA-256 (an earlier version): each keyed from the digest it
 * holds (no code needed), in one transaction.
 */
static enum store_err
key_plain_codes(struct pstore *st)
{
	struct pq	 b[2] = { { .q = Q_BEGIN }, { .q = Q_ACCESS_PLAIN } };
	struct pq	 w;
	unsigned char	 code[CRM_DIGEST_BYTES], d[CRM_DIGEST_BYTES];
	char		 keyed[sizeof(CODE_KEYED) + 2 * CRM_DIGEST_BYTES];
	const char	*plain;
	enum store_err	 e;
	int		 rows;

	if ((e = pq_run(st, "crmauthctl init", b, 2, CONNECT)) != STORE_OK)
		return pg_rollback(st, "crmauthctl init", e);
	rows = PQntuples(b[1].res);
	for (int i = 0; i < rows && e == STORE_OK; i++) {
		plain = PQgetvalue(b[1].res, i, 1);
		if (sec_unhex(code, sizeof(code), plain, strlen(plain)) != 0)
			continue;	/* not ours to change */
		store_code_keyed(d, st->wrap, code);
		pg_code_keyed(keyed, d);
		w = (struct pq){ .q = Q_ACCESS_REKEY };
		pg_param(&w, PQgetvalue(b[1].res, i, 0));
		pg_param(&w, plain);
		pg_param(&w, keyed);
		if ((e = pq_run(st, "crmauthctl init", &w, 1, CONTINUE)) ==
		    STORE_OK)
			pq_clear(&w, 1);
	}
	pq_clear(b, 2);
	if (e != STORE_OK)
		return pg_rollback(st, "crmauthctl init", e);
	w = (struct pq){ .q = Q_COMMIT };
	return pg_finish(st, "crmauthctl init", &w, 1);
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
	e = pg_connect(st);
	st->bare = 0;
	if (e != STORE_OK)
		return e;
	res = PQexec(st->conn, "BEGIN");
	PQclear(res);
	for (int i = 0; SCHEMA[i] != NULL; i++) {
		res = PQexec(st->conn, SCHEMA[i]);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			e = pg_failed(st, "crmauthctl init", res);
			PQclear(res);
			pg_drop(st);
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
		e = pg_failed(st, "crmauthctl init", res);
	PQclear(res);
	pg_drop(st);		/* prepared anew on the next connection */
	if (e != STORE_OK) {
		if (e == STORE_VERSION)
			snprintf(st->base.detail, sizeof(st->base.detail),
			    "%s: %s", st->label, store_strerror(e));
		return e;
	}
	/* The wrap key: made here only when no key needs an old one. */
	if (load_wrap(st, !have_keys) == -1)
		return STORE_ERROR;
	/* Codes are keyed only with the deployment's wrap.key: the one
	 * that opens the current signing key (p_ping says so). */
	if (have_keys)
		return !st->have_wrap ? pg_damaged(st, "crmauthctl init") :
		    (e = p_ping(&st->base)) != STORE_OK ? e :
		    key_plain_codes(st);
	/* A first signing key (two inits at once: one wins, the other
	 * finds the index taken and leaves it). */
	sigkey_make(&k);
	if (pg_sigkey_params(st, &w[0], &k, sealed, nums) == -1)
		return STORE_ERROR;
	if ((e = pq_run(st, "crmauthctl init", &b, 1, CONNECT)) == STORE_OK) {
		pq_clear(&b, 1);
		e = pg_finish(st, "crmauthctl init", w, 2);
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

	pg_drop(st);
	explicit_bzero(st->wrap, sizeof(st->wrap));
	free(st);
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
	if (pg_load(err, errlen) == -1) {
		free(st);
		return STORE_ERROR;
	}
	pg_make_label(st);
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
	.stats = p_stats,
	.user_add = p_user_add,
	.user_change = p_user_change,
	.user_del = p_user_del,
	.apikey_put = p_apikey_put,
	.consumer_put = p_consumer_put,
	.access_add = p_access_add,
	.access_rehash = p_access_rehash,
	.key_revoke = p_key_revoke,
	.access_rekey = p_access_rekey,
	.sigkey_rotate = p_sigkey_rotate,
	.sigkey_retire = p_sigkey_retire,
	.release = p_release,
	.released_prune = p_released_prune,
	.attempt_reserve = p_attempt_reserve,
	.attempt_giveback = p_attempt_giveback,
	.attempt_decide = p_attempt_decide,
	.lock_list = p_lock_list,
	.lock_clear = p_lock_clear,
	.attempts_prune = p_attempts_prune,
	.attempts_usage = p_attempts_usage,
	.user_list = p_user_list,
	.apikey_list = p_apikey_list,
	.consumer_list = p_consumer_list,
	.sigkey_list = p_sigkey_list,
	.backup = p_backup,
	.dump = pgsql_dump,
	.code_key = p_code_key,
	.load = pgsql_load,
};
