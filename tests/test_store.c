/* store.c: records, releases and pruning, schema, several processes. */
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "unit.h"
#ifdef CRMAUTH_LIBPQ
#include <dlfcn.h>

#include "pgsql.h"
#endif

static char		*dir;
static struct config	 cfg;

static struct store *
open_new(void)
{
	struct store	*st;
	char		 err[CRM_ERR_MAX];

	unit_rmtree(cfg.db_path);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, &cfg, STORE_CREATE, err, sizeof(err)),
	    STORE_OK);
	return st;
}

/* crmauthctl init's directory: missing parents made as the store needs
 * them (private: 0700; shared with a group: 0750 and the group's), the
 * store 0700 or 02770, and parents already there left as they are. */
static void
t_make_dir_parents(void)
{
	struct config	 c = cfg;
	struct stat	 sb;
	char		 err[CRM_ERR_MAX], p1[1100], p2[1100];

	snprintf(p1, sizeof(p1), "%s/parents", dir);
	snprintf(p2, sizeof(p2), "%s/parents/a", dir);
	snprintf(c.db_path, sizeof(c.db_path), "%s/parents/a/store", dir);
	c.db_group = -1;
	CU_ASSERT_EQUAL(store_make_dir(&c, err, sizeof(err)), 0);
	CU_ASSERT(stat(p1, &sb) == 0 && (sb.st_mode & 07777) == 0700);
	CU_ASSERT(stat(p2, &sb) == 0 && (sb.st_mode & 07777) == 0700);
	CU_ASSERT(stat(c.db_path, &sb) == 0 && (sb.st_mode & 07777) == 0700);
	unit_rmtree(p1);
	c.db_group = (int)getgid();
	CU_ASSERT(mkdir(p1, 0711) == 0);
	CU_ASSERT_EQUAL(store_make_dir(&c, err, sizeof(err)), 0);
	CU_ASSERT(stat(p1, &sb) == 0 && (sb.st_mode & 07777) == 0711);
	CU_ASSERT(stat(p2, &sb) == 0 && (sb.st_mode & 07777) == 0750 &&
	    sb.st_gid == getgid());
	CU_ASSERT(stat(c.db_path, &sb) == 0 &&
	    (sb.st_mode & 07777) == 02770);
	/* A parent that is a file: said, nothing else made. */
	unit_rmtree(p1);
	CU_ASSERT(close(creat(p1, 0600)) == 0);
	CU_ASSERT_EQUAL(store_make_dir(&c, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "parents/a"));
	unlink(p1);
}

static void
t_not_initialised(void)
{
	struct store	*st;
	char		 err[CRM_ERR_MAX];

	unit_rmtree(cfg.db_path);
	CU_ASSERT_EQUAL(store_open(&st, &cfg, 0, err, sizeof(err)),
	    STORE_NOTINIT);
	CU_ASSERT_PTR_NULL(st);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, cfg.db_path));
	/* Opening to serve never creates anything. */
	CU_ASSERT_EQUAL(access(cfg.db_path, F_OK), -1);
}

static void
t_init_idempotent(void)
{
	struct store	*st = open_new();
	struct sigkey	 k1, k2;
	char		 err[CRM_ERR_MAX];

	CU_ASSERT_EQUAL(store_sigkey_current(st, &k1), STORE_OK);
	CU_ASSERT_EQUAL(strlen(k1.kid), CRM_KID_HEX);
	CU_ASSERT_TRUE(k1.current);
	store_close(st);
	CU_ASSERT_EQUAL(store_open(&st, &cfg, STORE_CREATE, err, sizeof(err)), STORE_OK);
	CU_ASSERT_EQUAL(store_sigkey_current(st, &k2), STORE_OK);
	CU_ASSERT_STRING_EQUAL(k1.kid, k2.kid);
	CU_ASSERT_EQUAL(memcmp(k1.secret, k2.secret, CRM_SIGKEY_BYTES), 0);
	CU_ASSERT_EQUAL(store_sigkey_get(st, k1.kid, &k2), STORE_OK);
	CU_ASSERT_EQUAL(store_sigkey_get(st, "0000000000000000", &k2),
	    STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_sigkey_get(st, "short", &k2), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_ping(st), STORE_OK);
	store_close(st);
}

static int
disable(struct user_rec *u, void *arg)
{
	u->disabled = 1;
	u->not_before = 1700000100;
	return 0;
}

static int
decline(struct user_rec *u, void *arg)
{
	u->disabled = 0;	/* not written */
	return 1;
}

static void
t_users(void)
{
	struct store	*st = open_new();
	struct user_rec	 u, g;
	char		 longorg[CRM_NAME_MAX + 1], longuser[CRM_NAME_MAX + 1];

	memset(&u, 0, sizeof(u));
	strcpy(u.pwhash, "$argon2id$fake");
	strcpy(u.units[0], "HQ");
	strcpy(u.units[1], "EU");
	u.nunits = 2;
	u.created = 1700000000;
	CU_ASSERT_EQUAL(store_user_add(st, "ACME", "alice", &u), STORE_OK);
	CU_ASSERT_EQUAL(store_user_add(st, "ACME", "alice", &u),
	    STORE_EXISTS);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", "alice", &g), STORE_OK);
	CU_ASSERT_STRING_EQUAL(g.pwhash, u.pwhash);
	CU_ASSERT_EQUAL(g.nunits, 2);
	CU_ASSERT_STRING_EQUAL(g.units[1], "EU");
	CU_ASSERT_EQUAL(g.created, 1700000000);
	CU_ASSERT_FALSE(g.disabled);
	/* Organisations are separate namespaces; names are exact. */
	CU_ASSERT_EQUAL(store_user_get(st, "OTHER", "alice", &g),
	    STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", "Alice", &g),
	    STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_user_get(st, "ACMEa", "lice", &g),
	    STORE_NOTFOUND);
	/* Changed in place, the rest kept; a missing user cannot be. */
	CU_ASSERT_EQUAL(store_user_change(st, "ACME", "alice", disable, NULL,
	    &g), STORE_OK);
	CU_ASSERT_TRUE(g.disabled);
	CU_ASSERT_EQUAL(g.not_before, 1700000100);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", "alice", &g), STORE_OK);
	CU_ASSERT_TRUE(g.disabled);
	CU_ASSERT_EQUAL(g.not_before, 1700000100);
	CU_ASSERT_STRING_EQUAL(g.units[1], "EU");
	CU_ASSERT_STRING_EQUAL(g.pwhash, u.pwhash);
	CU_ASSERT_EQUAL(store_user_change(st, "ACME", "bob", disable, NULL,
	    NULL), STORE_NOTFOUND);
	/* A change that declines writes nothing and still succeeds. */
	CU_ASSERT_EQUAL(store_user_change(st, "ACME", "alice", decline, NULL,
	    &g), STORE_OK);
	CU_ASSERT_TRUE(g.disabled);
	/* Longest names: 256 + 256 bytes, past LMDB's key limit unhashed. */
	memset(longorg, 'o', CRM_NAME_MAX);
	longorg[CRM_NAME_MAX] = '\0';
	memset(longuser, 'u', CRM_NAME_MAX);
	longuser[CRM_NAME_MAX] = '\0';
	CU_ASSERT_EQUAL(store_user_add(st, longorg, longuser, &u), STORE_OK);
	CU_ASSERT_EQUAL(store_user_get(st, longorg, longuser, &g), STORE_OK);
	CU_ASSERT_EQUAL(store_user_del(st, "ACME", "alice"), STORE_OK);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", "alice", &g),
	    STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_user_del(st, "ACME", "alice"), STORE_NOTFOUND);
	store_close(st);
}

static int
count_user(void *arg, const char *org, const char *user,
    const struct user_rec *u)
{
	(*(int *)arg)++;
	return 0;
}

static void
t_user_list_and_del_keys(void)
{
	struct store		*st = open_new();
	struct user_rec		 u;
	struct apikey_rec	 ak, g;
	unsigned char		 d[CRM_DIGEST_BYTES];
	int			 n = 0;

	memset(&u, 0, sizeof(u));
	strcpy(u.pwhash, "x");
	strcpy(u.units[0], "HQ");
	u.nunits = 1;
	store_user_add(st, "A", "u1", &u);
	store_user_add(st, "A", "u2", &u);
	store_user_add(st, "B", "u1", &u);
	CU_ASSERT_EQUAL(store_user_list(st, NULL, count_user, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 3);
	n = 0;
	CU_ASSERT_EQUAL(store_user_list(st, "A", count_user, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 2);
	/* Deleting a user deletes the user's Web API keys. */
	memset(&ak, 0, sizeof(ak));
	strcpy(ak.org, "A");
	strcpy(ak.user, "u1");
	sec_sha256(d, "KEY1", 4);
	CU_ASSERT_EQUAL(store_apikey_put(st, d, &ak, 1), STORE_OK);
	CU_ASSERT_EQUAL(store_apikey_put(st, d, &ak, 1), STORE_EXISTS);
	CU_ASSERT_EQUAL(store_apikey_get(st, d, &g), STORE_OK);
	CU_ASSERT_STRING_EQUAL(g.user, "u1");
	CU_ASSERT_EQUAL(store_user_del(st, "A", "u1"), STORE_OK);
	CU_ASSERT_EQUAL(store_apikey_get(st, d, &g), STORE_NOTFOUND);
	/* A key for a user who is not there (deleted since it was looked
	 * up) is not written: the user is checked in the key's write. */
	sec_sha256(d, "KEY2", 4);
	CU_ASSERT_EQUAL(store_apikey_put(st, d, &ak, 1), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_apikey_get(st, d, &g), STORE_NOTFOUND);
	store_close(st);
}

static void
t_consumer_and_access(void)
{
	struct store		*st = open_new();
	struct consumer_rec	 ck, g;
	struct access_rec	 at, ga;
	unsigned char		 d[CRM_DIGEST_BYTES], cd[CRM_DIGEST_BYTES];

	memset(&ck, 0, sizeof(ck));
	strcpy(ck.org, "ACME");
	strcpy(ck.app, "shop");
	strcpy(ck.units[0], "HQ");
	ck.nunits = 1;
	sec_sha256(d, "CK", 2);
	CU_ASSERT_EQUAL(store_consumer_put(st, d, &ck, 1), STORE_OK);
	CU_ASSERT_EQUAL(store_consumer_get(st, d, &g), STORE_OK);
	CU_ASSERT_STRING_EQUAL(g.app, "shop");
	CU_ASSERT_FALSE(g.revoked);
	/* Revoking keeps the record, marked, and nothing else changes. */
	CU_ASSERT_EQUAL(store_key_revoke(st, 1, d, 1700000000, 1), STORE_OK);
	CU_ASSERT_EQUAL(store_consumer_get(st, d, &g), STORE_OK);
	CU_ASSERT_TRUE(g.revoked);
	CU_ASSERT_STRING_EQUAL(g.app, "shop");
	CU_ASSERT_EQUAL(g.nunits, 1);
	/* Kinds are separate: this digest is no Web API key. */
	CU_ASSERT_EQUAL(store_key_revoke(st, 0, d, 1700000000, 1),
	    STORE_NOTFOUND);

	memset(&at, 0, sizeof(at));
	strcpy(at.contact, "C1");
	strcpy(at.ari, "AR1");
	sec_sha256(cd, "CODE", 4);
	CU_ASSERT_EQUAL(store_access_add(st, "ACME", cd, NULL, &at), STORE_OK);
	CU_ASSERT_EQUAL(store_access_add(st, "ACME", cd, NULL, &at),
	    STORE_EXISTS);
	CU_ASSERT_EQUAL(store_access_get(st, "ACME", cd, NULL, &ga), STORE_OK);
	CU_ASSERT_STRING_EQUAL(ga.contact, "C1");
	CU_ASSERT_STRING_EQUAL(ga.ari, "AR1");
	CU_ASSERT_STRING_EQUAL(ga.passhash, "");
	CU_ASSERT_EQUAL(store_access_get(st, "OTHER", cd, NULL, &ga),
	    STORE_NOTFOUND);
	/* An identifier lives in its own namespace with its pass code. */
	memset(&at, 0, sizeof(at));
	strcpy(at.contact, "C2");
	strcpy(at.passhash, "$argon2id$x");
	CU_ASSERT_EQUAL(store_access_add(st, "ACME", NULL, "id", &at),
	    STORE_OK);
	CU_ASSERT_EQUAL(store_access_get(st, "ACME", NULL, "id", &ga),
	    STORE_OK);
	CU_ASSERT_STRING_EQUAL(ga.passhash, "$argon2id$x");
	CU_ASSERT_STRING_EQUAL(ga.ari, "");
	CU_ASSERT_EQUAL(store_access_get(st, "ACME", NULL, "CODE", &ga),
	    STORE_NOTFOUND);
	/* A rehash replaces only the hash it was computed from. */
	CU_ASSERT_EQUAL(store_access_rehash(st, "ACME", "id", "$argon2id$x",
	    "$argon2id$y"), STORE_OK);
	CU_ASSERT_EQUAL(store_access_rehash(st, "ACME", "id", "$argon2id$x",
	    "$argon2id$z"), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_access_get(st, "ACME", NULL, "id", &ga),
	    STORE_OK);
	CU_ASSERT_STRING_EQUAL(ga.passhash, "$argon2id$y");
	CU_ASSERT_STRING_EQUAL(ga.contact, "C2");
	store_close(st);
}

static void
jti(unsigned char out[CRM_JTI_BYTES], int i)
{
	memset(out, 0, CRM_JTI_BYTES);
	memcpy(out, &i, sizeof(i));
}

static void
t_release_and_prune(void)
{
	struct store	*st = open_new();
	unsigned char	 j[CRM_JTI_BYTES];
	int64_t		 now = (int64_t)time(NULL), exp;
	size_t		 n;

	jti(j, 1);
	CU_ASSERT_EQUAL(store_released_get(st, j, &exp), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_release(st, j, now + 100, now), STORE_OK);
	CU_ASSERT_EQUAL(store_released_get(st, j, &exp), STORE_OK);
	CU_ASSERT_EQUAL(exp, now + 100);
	/* Idempotent: the first exp stays. */
	CU_ASSERT_EQUAL(store_release(st, j, now + 100, now), STORE_OK);
	CU_ASSERT_EQUAL(store_released_count(st, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 1);
	/* Already expired: nothing to keep. */
	jti(j, 2);
	CU_ASSERT_EQUAL(store_release(st, j, now, now), STORE_OK);
	CU_ASSERT_EQUAL(store_released_get(st, j, &exp), STORE_NOTFOUND);
	/* Prune removes exactly those with exp <= now. */
	for (int i = 10; i < 20; i++) {
		jti(j, i);
		CU_ASSERT_EQUAL(store_release(st, j, now + i, now), STORE_OK);
	}
	CU_ASSERT_EQUAL(store_released_count(st, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 11);
	CU_ASSERT_EQUAL(store_released_prune(st, now + 14, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 5);		/* 10..14 */
	CU_ASSERT_EQUAL(store_released_count(st, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 6);
	jti(j, 14);
	CU_ASSERT_EQUAL(store_released_get(st, j, &exp), STORE_NOTFOUND);
	jti(j, 15);
	CU_ASSERT_EQUAL(store_released_get(st, j, &exp), STORE_OK);
	CU_ASSERT_EQUAL(store_released_prune(st, now + 1000, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 6);
	CU_ASSERT_EQUAL(store_released_count(st, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 0);
	store_close(st);
}

static void
t_prune_on_write(void)
{
	struct store	*st = open_new();
	unsigned char	 j[CRM_JTI_BYTES];
	int64_t		 now = (int64_t)time(NULL);
	size_t		 n;

	/* Entries whose exp has passed by the time of a later write are
	 * pruned by that write.  (Each write prunes by the clock: on a
	 * machine so loaded that these ten take 4 s, the first ones are
	 * pruned by the last ones already, which is the point too.) */
	for (int i = 0; i < 10; i++) {
		jti(j, i);
		CU_ASSERT_EQUAL(store_release(st, j, now + 4, now - 5),
		    STORE_OK);
	}
	CU_ASSERT_EQUAL(store_released_count(st, &n), STORE_OK);
	if ((int64_t)time(NULL) < now + 4)
		CU_ASSERT_EQUAL(n, 10);
	/* Past their exp (by the clock, with a deadline), one more write. */
	for (int i = 0; i < 200 && (int64_t)time(NULL) <= now + 4; i++)
		usleep(50 * 1000);
	CU_ASSERT_TRUE_FATAL((int64_t)time(NULL) > now + 4);
	jti(j, 99);
	CU_ASSERT_EQUAL(store_release(st, j, now + 3600, now), STORE_OK);
	CU_ASSERT_EQUAL(store_released_count(st, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 1);
	store_close(st);
}

/* Write or read one value behind the store's back (it must be closed). */
static void
raw(const char *db, const void *k, size_t klen, const void *v, size_t vlen,
    MDB_val *out)
{
	MDB_env	*env;
	MDB_txn	*txn;
	MDB_dbi	 dbi;
	MDB_val	 key = { klen, (void *)k }, val = { vlen, (void *)v };

	mdb_env_create(&env);
	mdb_env_set_maxdbs(env, 16);
	mdb_env_set_maxreaders(env, 256);
	CU_ASSERT_EQUAL_FATAL(mdb_env_open(env, cfg.db_path, 0, 0600), 0);
	mdb_txn_begin(env, NULL, 0, &txn);
	mdb_dbi_open(txn, db, 0, &dbi);
	if (out == NULL) {
		CU_ASSERT_EQUAL(mdb_put(txn, dbi, &key, &val, 0), 0);
	} else if (mdb_get(txn, dbi, &key, &val) == 0 &&
	    (out->mv_data = malloc(val.mv_size)) != NULL) {
		memcpy(out->mv_data, val.mv_data, val.mv_size);
		out->mv_size = val.mv_size;
	}
	mdb_txn_commit(txn);
	mdb_env_close(env);
}

/* Rewrite the schema version behind the store's back. */
static void
set_schema(const char *v)
{
	raw("meta", "schema", 6, v, strlen(v), NULL);
}

/* Records round-trip; damaged ones, and records in another format (the
 * JSON that development builds once wrote), are refused. */
static void
t_records(void)
{
	struct store		*st = open_new();
	char			 err[CRM_ERR_MAX];
	unsigned char		 uk[CRM_DIGEST_BYTES], ak[CRM_DIGEST_BYTES];
	unsigned char		 ck[CRM_DIGEST_BYTES], xk[CRM_DIGEST_BYTES];
	unsigned char		 code[CRM_DIGEST_BYTES];
	struct user_rec		 u;
	struct apikey_rec	 a;
	struct consumer_rec	 c;
	struct access_rec	 x;
	MDB_val			 v = { 0, NULL };
	const char		*aj = "{\"org\":\"ACME\",\"user\":\"old\","
	    "\"revoked\":false,\"created\":1700000001}";
	/* user "b": org, user, pw, then a units count of 0 */
	const unsigned char	 zero_units[] = { 1, 0, 1, 'A', 0, 1, 'b', 0, 1,
	    'p', 0 };

	sec_tagged_hash(uk, 'U', "ACME", "old", 3);
	sec_sha256(ak, "AK", 2);
	sec_sha256(ck, "CK", 2);
	sec_sha256(code, "CODE", 4);
	sec_tagged_hash(xk, 'C', "ACME", code, sizeof(code));
	memset(&u, 0, sizeof(u));
	strcpy(u.pwhash, "$argon2id$h");
	strcpy(u.units[0], "HQ");
	strcpy(u.units[1], "B");
	u.nunits = 2;
	u.created = 1700000000;
	CU_ASSERT_EQUAL(store_user_add(st, "ACME", "old", &u), STORE_OK);
	memset(&a, 0, sizeof(a));
	strcpy(a.org, "ACME");
	strcpy(a.user, "old");
	a.created = 1700000001;
	CU_ASSERT_EQUAL(store_apikey_put(st, ak, &a, 1), STORE_OK);
	memset(&c, 0, sizeof(c));
	strcpy(c.org, "ACME");
	strcpy(c.app, "shop");
	strcpy(c.units[0], "HQ");
	c.nunits = 1;
	c.created = 5;
	CU_ASSERT_EQUAL(store_consumer_put(st, ck, &c, 1), STORE_OK);
	memset(&x, 0, sizeof(x));
	strcpy(x.contact, "C9");
	strcpy(x.ari, "AR9");
	x.created = 6;
	CU_ASSERT_EQUAL(store_access_add(st, "ACME", code, NULL, &x), STORE_OK);
	store_close(st);
	memset(&u, 0, sizeof(u));
	memset(&a, 0, sizeof(a));
	memset(&c, 0, sizeof(c));
	memset(&x, 0, sizeof(x));
	CU_ASSERT_EQUAL_FATAL(store_open(&st, &cfg, 0, err, sizeof(err)),
	    STORE_OK);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", "old", &u), STORE_OK);
	CU_ASSERT_STRING_EQUAL(u.pwhash, "$argon2id$h");
	CU_ASSERT_EQUAL(u.nunits, 2);
	CU_ASSERT_STRING_EQUAL(u.units[1], "B");
	CU_ASSERT_EQUAL(u.created, 1700000000);
	CU_ASSERT_EQUAL(store_apikey_get(st, ak, &a), STORE_OK);
	CU_ASSERT_STRING_EQUAL(a.user, "old");
	CU_ASSERT_FALSE(a.revoked);
	CU_ASSERT_EQUAL(store_consumer_get(st, ck, &c), STORE_OK);
	CU_ASSERT_STRING_EQUAL(c.app, "shop");
	CU_ASSERT_EQUAL(c.created, 5);
	CU_ASSERT_EQUAL(store_access_get(st, "ACME", code, NULL, &x), STORE_OK);
	CU_ASSERT_STRING_EQUAL(x.contact, "C9");
	CU_ASSERT_STRING_EQUAL(x.ari, "AR9");
	CU_ASSERT_STRING_EQUAL(x.passhash, "");
	/* A change keeps the rest of the record. */
	CU_ASSERT_EQUAL(store_key_revoke(st, 0, ak, 1700000002, 1), STORE_OK);
	CU_ASSERT_EQUAL(store_apikey_get(st, ak, &a), STORE_OK);
	CU_ASSERT_TRUE(a.revoked);
	CU_ASSERT_STRING_EQUAL(a.org, "ACME");
	CU_ASSERT_EQUAL(a.created, 1700000001);
	store_close(st);
	raw("apikeys", ak, sizeof(ak), NULL, 0, &v);
	CU_ASSERT_TRUE(v.mv_size > 0 && ((unsigned char *)v.mv_data)[0] == 1);

	/* Another format: a JSON record of a development build. */
	raw("users", uk, sizeof(uk), aj, strlen(aj), NULL);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, &cfg, 0, err, sizeof(err)),
	    STORE_OK);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", "old", &u), STORE_CORRUPT);
	store_close(st);

	/* Damaged binary: cut short, one byte too many, a boolean of 2, no
	 * units, a string longer than its field; and no record at all. */
	raw("apikeys", ak, sizeof(ak), v.mv_data, v.mv_size - 1, NULL);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, &cfg, 0, err, sizeof(err)),
	    STORE_OK);
	CU_ASSERT_EQUAL(store_apikey_get(st, ak, &a), STORE_CORRUPT);
	store_close(st);
	((unsigned char *)v.mv_data)[v.mv_size - 9] = 2;	/* revoked */
	raw("apikeys", ak, sizeof(ak), v.mv_data, v.mv_size, NULL);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, &cfg, 0, err, sizeof(err)),
	    STORE_OK);
	CU_ASSERT_EQUAL(store_apikey_get(st, ak, &a), STORE_CORRUPT);
	store_close(st);
	((unsigned char *)v.mv_data)[v.mv_size - 9] = 1;
	v.mv_data = realloc(v.mv_data, v.mv_size + 1);
	raw("apikeys", ak, sizeof(ak), v.mv_data, v.mv_size + 1, NULL);
	raw("users", uk, sizeof(uk), zero_units, sizeof(zero_units), NULL);
	raw("access_tokens", xk, sizeof(xk), "\x01\xff\xff", 3, NULL);
	raw("consumer_keys", ck, sizeof(ck), "", 0, NULL);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, &cfg, 0, err, sizeof(err)),
	    STORE_OK);
	CU_ASSERT_EQUAL(store_apikey_get(st, ak, &a), STORE_CORRUPT);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", "old", &u), STORE_CORRUPT);
	CU_ASSERT_EQUAL(store_access_get(st, "ACME", code, NULL, &x),
	    STORE_CORRUPT);
	CU_ASSERT_EQUAL(store_consumer_get(st, ck, &c), STORE_CORRUPT);
	store_close(st);
	free(v.mv_data);
}

static void
t_schema_version(void)
{
	struct store	*st = open_new();
	char		 err[CRM_ERR_MAX];

	store_close(st);
	set_schema("2");
	CU_ASSERT_EQUAL(store_open(&st, &cfg, 0, err, sizeof(err)),
	    STORE_VERSION);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "newer"));
	set_schema("junk");
	CU_ASSERT_EQUAL(store_open(&st, &cfg, 0, err, sizeof(err)),
	    STORE_CORRUPT);
	set_schema("1");
	CU_ASSERT_EQUAL(store_open(&st, &cfg, 0, err, sizeof(err)), STORE_OK);
	store_close(st);
}

/* Several processes writing at once: nothing lost, nothing doubled. */
static void
t_many_processes(void)
{
	struct store	*st = open_new();
	enum { PROCS = 6, EACH = 50 };
	int64_t		 now = (int64_t)time(NULL);
	size_t		 n;
	int		 status, ok = 1;

	store_close(st);
	for (int p = 0; p < PROCS; p++) {
		if (fork() == 0) {
			struct store	*cst;
			unsigned char	 j[CRM_JTI_BYTES];
			char		 err[CRM_ERR_MAX];

			/* One environment per process, opened after fork. */
			if (store_open(&cst, &cfg, 0, err, sizeof(err)) != 0)
				_exit(1);
			for (int i = 0; i < EACH; i++) {
				jti(j, p * 1000 + i);
				if (store_release(cst, j, now + 3600, now) !=
				    STORE_OK)
					_exit(1);
				/* Half are released twice, from another
				 * process. */
				jti(j, ((p + 1) % PROCS) * 1000 + i);
				if (i % 2 == 0 && store_release(cst, j,
				    now + 3600, now) != STORE_OK)
					_exit(1);
			}
			store_close(cst);
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		wait(&status);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			ok = 0;
	}
	CU_ASSERT_TRUE(ok);
	{
		char err[CRM_ERR_MAX];

		CU_ASSERT_EQUAL_FATAL(store_open(&st, &cfg, 0, err,
		    sizeof(err)), STORE_OK);
	}
	CU_ASSERT_EQUAL(store_released_count(st, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, PROCS * EACH);
	store_close(st);
}

static void
t_map_growth(void)
{
	struct store	*st;
	struct config	 small = cfg;
	struct user_rec	 u, g;
	char		 err[CRM_ERR_MAX], name[32];
	enum store_err	 e = STORE_OK;
	int		 i, stored = 0;

	/* Start at 1 MiB, allowed to grow to 2: fill it past both. */
	small.db_map_size_mb = 1;
	small.db_map_max_mb = 2;
	unit_rmtree(cfg.db_path);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, &small, STORE_CREATE, err, sizeof(err)),
	    STORE_OK);
	memset(&u, 0, sizeof(u));
	memset(u.pwhash, 'h', 100);
	for (i = 0; i < CRM_UNITS_MAX; i++) {
		memset(u.units[i], 'a' + i % 26, 200);
	}
	u.nunits = CRM_UNITS_MAX;
	for (i = 0; i < 2000 && e == STORE_OK; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		e = store_user_add(st, "ACME", name, &u);
		if (e == STORE_OK)
			stored++;
	}
	/* It grew past 1 MiB (about 150 records fit there) ... */
	CU_ASSERT_TRUE(stored > 200);
	/* ... then refused cleanly at the maximum ... */
	CU_ASSERT_EQUAL(e, STORE_FULL);
	/* ... having lost nothing that was acknowledged. */
	snprintf(name, sizeof(name), "user%d", stored - 1);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", name, &g), STORE_OK);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", "user0", &g), STORE_OK);
	snprintf(name, sizeof(name), "user%d", stored);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", name, &g), STORE_NOTFOUND);
	store_close(st);
}

static int
count_key(void *arg, const struct sigkey *k)
{
	(*(int *)arg)++;
	return 0;
}

static void
t_rotation(void)
{
	struct store	*st = open_new();
	struct sigkey	 first, old, new, g;
	int64_t		 now = (int64_t)time(NULL);
	int		 n = 0;

	CU_ASSERT_EQUAL_FATAL(store_sigkey_current(st, &first), STORE_OK);
	CU_ASSERT_EQUAL(first.expires, 0);
	CU_ASSERT_EQUAL(store_sigkey_rotate(st, now, 2, &old, &new), STORE_OK);
	CU_ASSERT_STRING_EQUAL(old.kid, first.kid);
	CU_ASSERT_STRING_NOT_EQUAL(new.kid, first.kid);
	CU_ASSERT_EQUAL(old.expires, now + 2);
	CU_ASSERT_EQUAL(store_sigkey_current(st, &g), STORE_OK);
	CU_ASSERT_STRING_EQUAL(g.kid, new.kid);
	CU_ASSERT_EQUAL(memcmp(g.secret, new.secret, CRM_SIGKEY_BYTES), 0);
	/* What metrics show as the key's age: the new key's time. */
	{
		struct store_stats ss;

		CU_ASSERT_EQUAL(store_stats(st, &ss), STORE_OK);
		CU_ASSERT_EQUAL(ss.key_created, new.created);
		CU_ASSERT(ss.key_created >= first.created);
	}
	/* The old key is still there, and still verifies... */
	CU_ASSERT_EQUAL(store_sigkey_get(st, first.kid, &g), STORE_OK);
	CU_ASSERT_FALSE(g.current);
	CU_ASSERT_EQUAL(g.expires, now + 2);
	CU_ASSERT_EQUAL(memcmp(g.secret, first.secret, CRM_SIGKEY_BYTES), 0);
	CU_ASSERT_EQUAL(tok_store_key(st, first.kid, &g), 0);
	CU_ASSERT_EQUAL(store_sigkey_list(st, count_key, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 2);
	sleep(3);
	/* ... until the first write after its expiry deletes it. */
	CU_ASSERT_EQUAL(tok_store_key(st, first.kid, &g), 0);
	{
		unsigned char j[CRM_JTI_BYTES] = { 1 };

		CU_ASSERT_EQUAL(store_release(st, j, now + 100, now), STORE_OK);
	}
	CU_ASSERT_EQUAL(store_sigkey_get(st, first.kid, &g), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(tok_store_key(st, first.kid, &g), 1);
	CU_ASSERT_EQUAL(tok_store_key(st, new.kid, &g), 0);
	n = 0;
	CU_ASSERT_EQUAL(store_sigkey_list(st, count_key, &n), STORE_OK);
	CU_ASSERT_EQUAL(n, 1);
	store_close(st);
}

/* A reservation of the pair, account and address counters of one
 * account from addr, with limits 2, 3 and 4. */
static void
reservation(struct att_reserve *r, const char *user, const char *addr,
    int64_t now)
{
	static char	 subjects[3][64];

	memset(r, 0, sizeof(*r));
	r->c[0].keylen = throttle_key(r->c[0].key, 'P', ATT_USER, "ACME",
	    user, addr);
	r->c[0].limit = 2;
	r->c[0].clear = 1;
	r->c[1].keylen = throttle_key(r->c[1].key, 'A', ATT_USER, "ACME",
	    user, NULL);
	r->c[1].limit = 3;
	r->c[1].exempt = 1;
	r->c[2].keylen = throttle_key(r->c[2].key, 'N', ATT_USER, NULL, NULL,
	    addr);
	r->c[2].limit = 4;
	r->c[2].exempt = 1;
	for (int i = 0; i < 3; i++) {
		snprintf(subjects[i], sizeof(subjects[i]), "s%d\t%s\t%s", i,
		    user, addr);
		r->c[i].subject = subjects[i];
	}
	r->n = 3;
	r->trustlen = throttle_key(r->trust, 'T', ATT_USER, "ACME", user,
	    addr);
	r->now = now;
	r->window = 60;
}

static int
count_lock(void *arg, char type, const char *subject, size_t len,
    uint32_t count, int64_t end)
{
	(*(int *)arg)++;
	return 0;
}

/* The store's counting rules, the same on every backend: a reservation
 * counts in every counter or in none; limits within windows; exempt
 * counters and trust; give-back; clear; prune. */
static void
t_attempts(void)
{
	struct store		*st = open_new();
	struct att_reserve	 r, s;
	int64_t			 now = (int64_t)time(NULL);
	size_t			 n, bytes, records;
	int			 locks = 0;

	/* Two reservations fill the pair (limit 2): the third is refused
	 * until the window ends, and counts nowhere. */
	for (int i = 0; i < 2; i++) {
		reservation(&r, "alice", "10.0.0.1", now);
		CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
		CU_ASSERT_EQUAL(r.locked_until, 0);
		CU_ASSERT_EQUAL(r.c[0].end, now + 60);
	}
	reservation(&r, "alice", "10.0.0.1", now + 5);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, now + 60);
	/* Another address: its own pair, but the account reaches 3. */
	reservation(&r, "alice", "10.0.0.2", now + 5);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	reservation(&r, "alice", "10.0.0.3", now + 5);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, now + 60);	/* account locked */
	/* Locks in force have their subjects: the pair and the account. */
	CU_ASSERT_EQUAL(store_lock_list(st, count_lock, &locks), STORE_OK);
	CU_ASSERT_EQUAL(locks, 2);
	/* A success from .2 gives its count back and clears its pair, and
	 * trusts .2; the account is then at 2 of 3. */
	reservation(&r, "alice", "10.0.0.2", now + 5);
	r.c[0].end = r.c[1].end = r.c[2].end = now + 60;
	CU_ASSERT_EQUAL(store_attempt_giveback(st, &r, 1, now + 1000),
	    STORE_OK);
	reservation(&r, "alice", "10.0.0.4", now + 6);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	CU_ASSERT_FALSE(r.trusted);
	/* Now the account is at 3: locked for .5, but not for the trusted
	 * .2, whose reservation still counts. */
	reservation(&r, "alice", "10.0.0.5", now + 6);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, now + 60);
	reservation(&s, "alice", "10.0.0.2", now + 6);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &s), STORE_OK);
	CU_ASSERT_EQUAL(s.locked_until, 0);
	CU_ASSERT_TRUE(s.trusted);
	/* Past the window, all starts anew. */
	reservation(&r, "alice", "10.0.0.5", now + 61);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	CU_ASSERT_EQUAL(r.c[1].end, now + 121);
	/* A give-back from the old window does not touch the new one. */
	CU_ASSERT_EQUAL(store_attempt_giveback(st, &s, 1, 0), STORE_OK);
	/* The address counter (limit 4) holds one address over accounts. */
	for (int i = 0; i < 4; i++) {
		char user[16];

		snprintf(user, sizeof(user), "u%d", i);
		reservation(&r, user, "10.0.0.9", now);
		CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
		CU_ASSERT_EQUAL(r.locked_until, 0);
	}
	reservation(&r, "u9", "10.0.0.9", now);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, now + 60);
	/* Clear by key: the address lock goes, the next one passes. */
	CU_ASSERT_EQUAL(store_lock_clear(st, r.c[2].key, r.c[2].keylen, 0, &n),
	    STORE_OK);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	/* Clear by prefix: every pair of alice's account, .4 and .5 (.1's
	 * window passed and a later write pruned it, refused attempts
	 * counted nowhere, .2 was cleared by its success). */
	reservation(&r, "alice", "10.0.0.1", now);
	CU_ASSERT_EQUAL(store_lock_clear(st, r.c[0].key, 17, 1, &n),
	    STORE_OK);
	CU_ASSERT_EQUAL(n, 2);
	/* A give-back that was no success (a store error after reserving)
	 * takes its one off the pair, and leaves the failures before it. */
	reservation(&r, "carol", "10.0.0.7", now);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(store_attempt_giveback(st, &r, 0, 0), STORE_OK);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, now + 60);
	CU_ASSERT_EQUAL(store_attempts_usage(st, &bytes, &records), STORE_OK);
	CU_ASSERT_TRUE(bytes > 0 && records > 0);
	/* Everything passes its time and is pruned. */
	CU_ASSERT_EQUAL(store_attempts_prune(st, now + 2000, &n), STORE_OK);
	CU_ASSERT_EQUAL(store_attempts_usage(st, &bytes, &records), STORE_OK);
	CU_ASSERT_EQUAL(records, 0);
	store_close(st);
}

/* r's counters as a Web API key's lookup reads them (a peek). */
static void
peek(struct store *st, struct att_reserve *r)
{
	unsigned char	 digest[CRM_DIGEST_BYTES] = { 0 };
	struct lookup	 l;

	CU_ASSERT_EQUAL(store_lookup_apikey(st, digest, r, &l), STORE_OK);
	CU_ASSERT_FALSE(l.apikey_found);
}

/* Deciding an attempt after its check (store_attempt_decide): a failure
 * counts as a reservation does, and none once held; a success is held
 * as a reservation would be, and writes only what changes: its pair
 * cleared, the address trusted, then nothing (a peek says which). */
static void
t_attempt_decide(void)
{
	struct store		*st = open_new();
	struct att_reserve	 r;
	int64_t			 now = (int64_t)time(NULL);
	size_t			 bytes, records, before;

	/* Two failures fill the pair (limit 2): the third is refused. */
	for (int i = 0; i < 2; i++) {
		reservation(&r, "alice", "10.0.0.1", now);
		CU_ASSERT_EQUAL(store_attempt_decide(st, &r, 0), STORE_OK);
		CU_ASSERT_EQUAL(r.locked_until, 0);
	}
	reservation(&r, "alice", "10.0.0.1", now);
	CU_ASSERT_EQUAL(store_attempt_decide(st, &r, 0), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, now + 60);
	/* The right secret there waits too, and a peek says so. */
	CU_ASSERT_EQUAL(store_attempt_decide(st, &r, 1), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, now + 60);
	reservation(&r, "alice", "10.0.0.1", now);
	peek(st, &r);
	CU_ASSERT_EQUAL(r.locked_until, now + 60);
	/* From .2 (the account at 2 of 3): a success has a trust to write,
	 * then nothing more. */
	reservation(&r, "alice", "10.0.0.2", now);
	r.trust_until = now + 86400;
	peek(st, &r);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	CU_ASSERT_FALSE(r.trusted);
	CU_ASSERT_TRUE(r.settle);
	CU_ASSERT_EQUAL(store_attempt_decide(st, &r, 1), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	peek(st, &r);
	CU_ASSERT_TRUE(r.trusted);
	CU_ASSERT_FALSE(r.settle);
	CU_ASSERT_EQUAL(store_attempts_usage(st, &bytes, &before), STORE_OK);
	CU_ASSERT_EQUAL(store_attempt_decide(st, &r, 1), STORE_OK);
	CU_ASSERT_EQUAL(store_attempts_usage(st, &bytes, &records), STORE_OK);
	CU_ASSERT_EQUAL(records, before);
	/* A failure from .2 puts the account at its limit, which does not
	 * hold the trusted .2; its next success clears its pair. */
	CU_ASSERT_EQUAL(store_attempt_decide(st, &r, 0), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	peek(st, &r);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	CU_ASSERT_TRUE(r.settle);
	CU_ASSERT_EQUAL(store_attempt_decide(st, &r, 1), STORE_OK);
	peek(st, &r);
	CU_ASSERT_FALSE(r.settle);
	CU_ASSERT_EQUAL(store_attempts_usage(st, &bytes, &records), STORE_OK);
	/* The pair gone; the address's own failure stays counted. */
	CU_ASSERT_EQUAL(records, before + 1);
	/* A new address is held by the account (3 of 3). */
	reservation(&r, "alice", "10.0.0.3", now);
	CU_ASSERT_EQUAL(store_attempt_decide(st, &r, 1), STORE_OK);
	CU_ASSERT_EQUAL(r.locked_until, now + 60);
	store_close(st);
}

/* The counters file keeps at most its cap: a flood of new accounts from
 * new addresses never makes a reservation fail; what ends first goes
 * first, trusted addresses (which last days) last. */
static void
t_attempts_cap(void)
{
	struct config		 small = cfg;
	struct store		*st;
	struct att_reserve	 r;
	char			 err[CRM_ERR_MAX], user[32], addr[32];
	int64_t			 now = (int64_t)time(NULL);
	size_t			 bytes, records, most = 0;

	small.att_max_records = 300;
	unit_rmtree(cfg.db_path);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, &small, STORE_CREATE, err,
	    sizeof(err)), STORE_OK);
	reservation(&r, "owner", "10.1.0.1", now);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_EQUAL(store_attempt_giveback(st, &r, 1, now + 86400),
	    STORE_OK);
	for (int i = 0; i < 1000; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		snprintf(addr, sizeof(addr), "10.2.%d.%d", i / 250, i % 250);
		reservation(&r, user, addr, now);
		CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
		CU_ASSERT_EQUAL(r.locked_until, 0);
		CU_ASSERT_EQUAL(store_attempts_usage(st, &bytes, &records),
		    STORE_OK);
		if (records > most)
			most = records;
	}
	CU_ASSERT_TRUE(most <= 300 + 3);
	reservation(&r, "owner", "10.1.0.1", now);
	CU_ASSERT_EQUAL(store_attempt_reserve(st, &r), STORE_OK);
	CU_ASSERT_TRUE(r.trusted);
	store_close(st);
}

/*
 * A reader keeps its read transaction's handle between reads and renews
 * it: each read still sees the latest commit of another process, also
 * after that process grew the map under it (MDB_MAP_RESIZED).
 */
static void
t_kept_reader(void)
{
	struct store	*st, *other;
	struct config	 small = cfg;
	struct user_rec	 u, g;
	unsigned char	 j[CRM_JTI_BYTES];
	char		 err[CRM_ERR_MAX], name[32];
	int64_t		 now = (int64_t)time(NULL), exp;
	pid_t		 pid;
	int		 status;

	small.db_map_size_mb = 1;
	small.db_map_max_mb = 8;
	unit_rmtree(cfg.db_path);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, &small, STORE_CREATE, err,
	    sizeof(err)), STORE_OK);
	jti(j, 7);
	CU_ASSERT_EQUAL(store_released_get(st, j, &exp), STORE_NOTFOUND);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", "user399", &g),
	    STORE_NOTFOUND);
	if ((pid = fork()) == 0) {
		/* Another process: a release, then 400 big users (about
		 * 8 KiB each: the map must grow past 1 MiB, twice). */
		if (store_open(&other, &small, 0, err, sizeof(err)) != STORE_OK ||
		    store_release(other, j, now + 100, now) != STORE_OK)
			_exit(1);
		memset(&u, 0, sizeof(u));
		memset(u.pwhash, 'h', 100);
		for (int i = 0; i < CRM_UNITS_MAX; i++)
			memset(u.units[i], 'a' + i % 26, 200);
		u.nunits = CRM_UNITS_MAX;
		for (int i = 0; i < 400; i++) {
			snprintf(name, sizeof(name), "user%d", i);
			if (store_user_add(other, "ACME", name, &u) != STORE_OK)
				_exit(2);
		}
		store_close(other);
		_exit(0);
	}
	CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_EQUAL(store_released_get(st, j, &exp), STORE_OK);
	CU_ASSERT_EQUAL(exp, now + 100);
	CU_ASSERT_EQUAL(store_user_get(st, "ACME", "user399", &g), STORE_OK);
	CU_ASSERT_EQUAL(g.nunits, CRM_UNITS_MAX);
	store_close(st);
}

#ifdef CRMAUTH_LIBPQ
/*
 * PostgreSQL: an error that libpq makes itself carries no SQLSTATE; on a
 * connection it holds lost, that is a lost connection (dropped, and
 * STORE_UNAVAILABLE, which reconnects and retries a read), never a
 * generic store error (a 500).
 */
static void
t_pg_lost_without_sqlstate(void)
{
	static const char *const kw[] = { "host", "dbname", "connect_timeout",
	    NULL };
	static const char *const val[] = { "/nonexistent-crmauth-test", "x",
	    "1", NULL };
	PGresult	*(*make)(const PGconn *, ExecStatusType);
	struct pstore	 st;
	char		 err[256];
	void		*h;
	PGresult	*res;

	CU_ASSERT_FATAL(pg_load(err, sizeof(err)) == 0);
	CU_ASSERT_FATAL((h = dlopen(CRMAUTH_LIBPQ, RTLD_NOW)) != NULL);
	*(void **)&make = dlsym(h, "PQmakeEmptyPGresult");
	CU_ASSERT_FATAL(make != NULL);
	memset(&st, 0, sizeof(st));
	st.pid = getpid();
	st.conn = PQconnectdbParams(kw, val, 0);
	CU_ASSERT_FATAL(st.conn != NULL);
	CU_ASSERT_NOT_EQUAL(PQstatus(st.conn), CONNECTION_OK);
	res = make(st.conn, PGRES_FATAL_ERROR);
	CU_ASSERT_PTR_NULL(PQresultErrorField(res, PG_DIAG_SQLSTATE));
	CU_ASSERT_EQUAL(pg_failed(&st, "test", res), STORE_UNAVAILABLE);
	CU_ASSERT_PTR_NULL(st.conn);	/* dropped: the next use reconnects */
	PQclear(res);
	dlclose(h);
}
#endif

static CU_TestInfo tests[] = {
	{ "init makes missing parents as the store needs them",
	    t_make_dir_parents },
	{ "serving never creates a store", t_not_initialised },
	{ "init is idempotent and makes one signing key", t_init_idempotent },
	{ "users: put, get, update, delete, long names", t_users },
	{ "user list; deleting a user deletes its keys",
	    t_user_list_and_del_keys },
	{ "consumer keys and access tokens", t_consumer_and_access },
	{ "release is idempotent; prune removes exactly the expired",
	    t_release_and_prune },
	{ "writes prune expired releases", t_prune_on_write },
	{ "a newer or broken schema version is refused", t_schema_version },
	{ "records round-trip; damaged or foreign ones are refused",
	    t_records },
	{ "six processes releasing at once lose nothing", t_many_processes },
	{ "failed-attempt counters: all or none, windows, trust, clear",
	    t_attempts },
	{ "failed-attempt counters: deciding after the check writes only "
	    "failures and what a success changes", t_attempt_decide },
	{ "failed-attempt counters: a cap, and what ends first goes first",
	    t_attempts_cap },
	{ "rotation: old key verifies until its tokens expire, then goes",
	    t_rotation },
	{ "the map grows, then refuses cleanly at db_map_max_mb",
	    t_map_growth },
	{ "a kept reader sees other processes' commits, map growth too",
	    t_kept_reader },
#ifdef CRMAUTH_LIBPQ
	{ "PostgreSQL: a connection lost without SQLSTATE is unavailable",
	    t_pg_lost_without_sqlstate },
#endif
	CU_TEST_INFO_NULL,
};

int
main(void)
{
	int rc;

	dir = unit_tmpdir();
	unit_config(&cfg, dir);
	rc = unit_run("store", tests);
	unit_rmtree(dir);
	free(dir);
	return rc;
}
