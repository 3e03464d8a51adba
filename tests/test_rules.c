/*
 * The rules every backend follows alike (store.c) and the export format
 * (export.c), without any server: counting attempts and giving them back,
 * schema versions, names, access tokens' ids, and an export read back,
 * damaged files refused by line with nothing loaded.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit.h"

static char		*dir;
static struct config	 cfg;

/* A reservation of n counters with these limits at now, window 100. */
static void
reserve_init(struct att_reserve *r, size_t n, const uint32_t *limits,
    int64_t now)
{
	memset(r, 0, sizeof(*r));
	r->n = n;
	r->now = now;
	r->window = 100;
	for (size_t i = 0; i < n; i++) {
		r->c[i].key[0] = (unsigned char)('P' + i);
		r->c[i].keylen = 1;
		r->c[i].limit = limits[i];
		r->c[i].exempt = i > 0;
		r->c[i].clear = i == 0;
	}
}

static void
t_reserve_rule(void)
{
	const uint32_t		 limits[3] = { 5, 50, 50 };
	struct att_reserve	 r;
	struct att_value	 cur[3], next[3];

	/* Nothing yet: one in each, a window each from now. */
	reserve_init(&r, 3, limits, 1000);
	memset(cur, 0, sizeof(cur));
	CU_ASSERT_EQUAL(att_reserve_rule(&r, cur, 0, next), 0);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_TRUE(next[i].exists);
		CU_ASSERT_EQUAL(next[i].count, 1);
		CU_ASSERT_EQUAL(next[i].end, 1100);
		CU_ASSERT_EQUAL(r.c[i].end, 1100);
	}
	/* In the window: one more, the window kept. */
	cur[0] = (struct att_value){ 1, 1050, 3 };
	CU_ASSERT_EQUAL(att_reserve_rule(&r, cur, 0, next), 0);
	CU_ASSERT_EQUAL(next[0].count, 4);
	CU_ASSERT_EQUAL(next[0].end, 1050);
	/* At its limit in its window: held until its end, nothing counted. */
	cur[0].count = 5;
	cur[1] = (struct att_value){ 1, 1070, 7 };
	CU_ASSERT_EQUAL(att_reserve_rule(&r, cur, 0, next), -1);
	CU_ASSERT_EQUAL(r.locked_until, 1050);
	/* Its window over: a new one. */
	cur[0].end = 1000;
	CU_ASSERT_EQUAL(att_reserve_rule(&r, cur, 0, next), 0);
	CU_ASSERT_EQUAL(next[0].count, 1);
	CU_ASSERT_EQUAL(next[0].end, 1100);
	CU_ASSERT_EQUAL(next[1].count, 8);
	/* An exempt counter at its limit holds an untrusted address only;
	 * the latest end of those that hold is the lock's. */
	cur[0] = (struct att_value){ 1, 1060, 5 };
	cur[1] = (struct att_value){ 1, 1090, 50 };
	CU_ASSERT_EQUAL(att_reserve_rule(&r, cur, 0, next), -1);
	CU_ASSERT_EQUAL(r.locked_until, 1090);
	CU_ASSERT_FALSE(r.trusted);
	cur[0].count = 4;
	CU_ASSERT_EQUAL(att_reserve_rule(&r, cur, 1, next), 0);
	CU_ASSERT_TRUE(r.trusted);
	CU_ASSERT_EQUAL(next[1].count, 51);
	/* A count never wraps. */
	cur[2] = (struct att_value){ 1, 1090, UINT32_MAX };
	r.c[2].limit = UINT32_MAX;
	r.c[2].exempt = 1;
	CU_ASSERT_EQUAL(att_reserve_rule(&r, cur, 1, next), 0);
	CU_ASSERT_EQUAL(next[2].count, UINT32_MAX);
}

static void
t_giveback_rule(void)
{
	struct att_counter	 c = { .end = 1100, .clear = 1 };
	struct att_value	 cur = { 1, 1100, 3 }, next;

	/* Success clears a counter marked clear, whatever its count. */
	CU_ASSERT_EQUAL(att_giveback_rule(&c, &cur, 1, &next), 1);
	/* Not a failure, not a success: one back. */
	CU_ASSERT_EQUAL(att_giveback_rule(&c, &cur, 0, &next), 0);
	CU_ASSERT_EQUAL(next.count, 2);
	CU_ASSERT_EQUAL(next.end, 1100);
	/* The last one back: the counter goes. */
	cur.count = 1;
	CU_ASSERT_EQUAL(att_giveback_rule(&c, &cur, 0, &next), 1);
	/* Another window by now, or none: left as it is. */
	cur = (struct att_value){ 1, 1200, 3 };
	CU_ASSERT_EQUAL(att_giveback_rule(&c, &cur, 1, &next), -1);
	cur.exists = 0;
	CU_ASSERT_EQUAL(att_giveback_rule(&c, &cur, 0, &next), -1);
	/* Not marked clear: a success gives its one back only. */
	c.clear = 0;
	cur = (struct att_value){ 1, 1100, 3 };
	CU_ASSERT_EQUAL(att_giveback_rule(&c, &cur, 1, &next), 0);
	CU_ASSERT_EQUAL(next.count, 2);
}

/* A read of the counters: held as a reservation would be; a success
 * has something to write only for a pair counting in its window, or a
 * trust to write anew. */
static void
t_peek_rule(void)
{
	const uint32_t		 limits[3] = { 5, 50, 50 };
	struct att_reserve	 r;
	struct att_value	 cur[3];

	reserve_init(&r, 3, limits, 1000);
	memset(cur, 0, sizeof(cur));
	att_peek_rule(&r, cur, 0);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	CU_ASSERT_FALSE(r.trusted);
	CU_ASSERT_FALSE(r.settle);
	/* A pair counting: cleared by a success; one whose window is over,
	 * or a row with no count (PostgreSQL's), is not. */
	cur[0] = (struct att_value){ 1, 1050, 2 };
	att_peek_rule(&r, cur, 0);
	CU_ASSERT_TRUE(r.settle);
	CU_ASSERT_TRUE(att_settle_rule(&r.c[0], &cur[0], 1000));
	cur[0].end = 1000;
	CU_ASSERT_FALSE(att_settle_rule(&r.c[0], &cur[0], 1000));
	cur[0] = (struct att_value){ 1, 1050, 0 };
	CU_ASSERT_FALSE(att_settle_rule(&r.c[0], &cur[0], 1000));
	/* Counters not marked clear never are. */
	cur[1] = (struct att_value){ 1, 1050, 3 };
	CU_ASSERT_FALSE(att_settle_rule(&r.c[1], &cur[1], 1000));
	att_peek_rule(&r, cur, 0);
	CU_ASSERT_FALSE(r.settle);
	/* Held by the account, unless trusted. */
	cur[1].count = 50;
	att_peek_rule(&r, cur, 0);
	CU_ASSERT_EQUAL(r.locked_until, 1050);
	att_peek_rule(&r, cur, 5000);
	CU_ASSERT_EQUAL(r.locked_until, 0);
	CU_ASSERT_TRUE(r.trusted);
	/* A trust to write: none yet, or one it would extend by more than
	 * the slack; none when the success trusts nothing. */
	r.trustlen = 1;
	r.trust_until = 1000 + 86400;
	att_peek_rule(&r, cur, 0);
	CU_ASSERT_TRUE(r.settle);
	att_peek_rule(&r, cur, r.trust_until - ATT_TRUST_SLACK);
	CU_ASSERT_FALSE(r.settle);
	r.trust_until = 0;
	att_peek_rule(&r, cur, 0);
	CU_ASSERT_FALSE(r.settle);
}

static void
t_trust_rule(void)
{
	/* None yet, or one that would gain more than the slack: written. */
	CU_ASSERT_TRUE(att_trust_rule(0, 1000000));
	CU_ASSERT_TRUE(att_trust_rule(1000000 - ATT_TRUST_SLACK - 1, 1000000));
	/* Within the slack of what it would be: left as it is. */
	CU_ASSERT_FALSE(att_trust_rule(1000000 - ATT_TRUST_SLACK, 1000000));
	CU_ASSERT_FALSE(att_trust_rule(1000000, 1000000));
	CU_ASSERT_FALSE(att_trust_rule(2000000, 1000000));
}

static void
t_schema_and_names(void)
{
	char	 long_name[CRM_NAME_MAX + 2];

	CU_ASSERT_EQUAL(store_schema_check("1", 1), STORE_OK);
	CU_ASSERT_EQUAL(store_schema_check("99", 2), STORE_VERSION);
	CU_ASSERT_EQUAL(store_schema_check("x", 1), STORE_CORRUPT);
	CU_ASSERT_EQUAL(store_schema_check("", 0), STORE_CORRUPT);
	CU_ASSERT_EQUAL(store_schema_check("1 ", 2), STORE_CORRUPT);

	CU_ASSERT_PTR_NULL(store_name_problem("ACME"));
	CU_ASSERT_PTR_NULL(store_name_problem("Zürich HQ"));
	CU_ASSERT_PTR_NOT_NULL(store_name_problem(""));
	CU_ASSERT_PTR_NOT_NULL(store_name_problem("a\tb"));
	CU_ASSERT_PTR_NOT_NULL(store_name_problem("a\x7f"));
	CU_ASSERT_PTR_NOT_NULL(store_name_problem("\xc3\x28"));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[CRM_NAME_MAX] = '\0';
	CU_ASSERT_PTR_NULL(store_name_problem(long_name));
	long_name[CRM_NAME_MAX] = 'a';
	long_name[CRM_NAME_MAX + 1] = '\0';
	CU_ASSERT_PTR_NOT_NULL(store_name_problem(long_name));
}

static void
t_access_id(void)
{
	unsigned char	 a[CRM_DIGEST_BYTES], b[CRM_DIGEST_BYTES];
	unsigned char	 code[CRM_DIGEST_BYTES];

	sec_sha256(code, "CODE-1", 6);
	store_access_id(a, "ACME", code, NULL);
	store_access_id(b, "ACME", code, NULL);
	CU_ASSERT_EQUAL(memcmp(a, b, sizeof(a)), 0);
	store_access_id(b, "OTHER", code, NULL);
	CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof(a)), 0);
	/* An identifier that spells a code's digest is another token. */
	store_access_id(a, "ACME", NULL, "card");
	store_access_id(b, "ACME", NULL, "card");
	CU_ASSERT_EQUAL(memcmp(a, b, sizeof(a)), 0);
	sec_tagged_hash(b, 'I', "ACME", "card", 4);
	CU_ASSERT_EQUAL(memcmp(a, b, sizeof(a)), 0);
}

/* ---- export and import, through an LMDB store in a directory ------------- */

static struct store *
fresh(const char *name)
{
	struct store	*st;
	char		 err[CRM_ERR_MAX];

	snprintf(cfg.db_path, sizeof(cfg.db_path), "%s/%s", dir, name);
	unit_rmtree(cfg.db_path);
	CU_ASSERT_EQUAL_FATAL(store_open(&st, &cfg, STORE_CREATE, err,
	    sizeof(err)), STORE_OK);
	return st;
}

static char *
slurp(const char *path)
{
	FILE	*f = fopen(path, "r");
	char	*s;
	long	 n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	s = calloc(1, (size_t)n + 1);
	CU_ASSERT_EQUAL(fread(s, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return s;
}

static struct store	*src;
static char		*exported;	/* the export of src, as text */

static void
t_export(void)
{
	struct user_rec		 u = { .nunits = 2, .created = 1, .not_before = 1 };
	struct access_rec	 a = { .created = 1 };
	unsigned char		 d[CRM_DIGEST_BYTES], jti[CRM_JTI_BYTES];
	struct xcount		 n;
	struct stat		 sb;
	char			 err[CRM_ERR_MAX], *path;
	int64_t			 now = (int64_t)time(NULL);

	src = fresh("src");
	snprintf(u.pwhash, sizeof(u.pwhash), "$argon2id$v=19$m=8,t=1,p=1$"
	    "c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA");
	snprintf(u.units[0], sizeof(u.units[0]), "HQ");
	snprintf(u.units[1], sizeof(u.units[1]), "EU");
	CU_ASSERT_EQUAL(store_user_add(src, "ACME", "alice", &u), STORE_OK);
	sec_sha256(d, "CODE-1", 6);
	snprintf(a.contact, sizeof(a.contact), "C-1");
	CU_ASSERT_EQUAL(store_access_add(src, "ACME", d, NULL, &a), STORE_OK);
	memset(jti, 7, sizeof(jti));
	CU_ASSERT_EQUAL(store_release(src, jti, now + 100, now), STORE_OK);
	memset(jti, 8, sizeof(jti));
	CU_ASSERT_EQUAL(store_release(src, jti, now + 200, now), STORE_OK);

	path = unit_write(dir, "export.jsonl", "planted\n");
	CU_ASSERT_EQUAL_FATAL(store_export(src, path, &n, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(n.users, 1);
	CU_ASSERT_EQUAL(n.access, 1);
	CU_ASSERT_EQUAL(n.sigkeys, 1);
	CU_ASSERT_EQUAL(n.released, 2);
	CU_ASSERT_EQUAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 0777, 0600);
	exported = slurp(path);
	CU_ASSERT_EQUAL(strncmp(exported, "{\"format\":\"crmauth-export\"", 26),
	    0);
	CU_ASSERT_PTR_NOT_NULL(strstr(exported, "\"end\":true,\"records\":5}\n"));
	CU_ASSERT_PTR_NULL(strstr(exported, "planted"));
	free(path);
}

static void
t_import_round_trip(void)
{
	struct store	*dst = fresh("dst");
	struct user_rec	 u;
	struct xcount	 n;
	char		 err[CRM_ERR_MAX], *path, *again;
	int64_t		 exp;
	unsigned char	 jti[CRM_JTI_BYTES];

	path = unit_write(dir, "in.jsonl", exported);
	CU_ASSERT_EQUAL_FATAL(store_import(dst, path, &n, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(n.users + n.access + n.sigkeys + n.released, 5);
	CU_ASSERT_EQUAL(store_user_get(dst, "ACME", "alice", &u), STORE_OK);
	CU_ASSERT_EQUAL(u.nunits, 2);
	CU_ASSERT_STRING_EQUAL(u.units[1], "EU");
	memset(jti, 8, sizeof(jti));
	CU_ASSERT_EQUAL(store_released_get(dst, jti, &exp), STORE_OK);
	/* What it exports is what was exported (but for the header). */
	free(path);
	path = unit_write(dir, "again.jsonl", "");
	CU_ASSERT_EQUAL(store_export(dst, path, &n, err, sizeof(err)), 0);
	again = slurp(path);
	CU_ASSERT_STRING_EQUAL(strchr(again, '\n'), strchr(exported, '\n'));
	/* Not empty now: refused. */
	CU_ASSERT_EQUAL(store_import(dst, path, &n, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not empty"));
	free(again);
	free(path);
	store_close(dst);
}

/* The export with line `line` (1-based) replaced by text (NULL: cut
 * there), imported into an empty store: refused with why at that line,
 * and nothing loaded. */
static void
refused(int line, const char *text, int at, const char *why)
{
	struct store	*dst = fresh("bad");
	struct xcount	 n;
	struct user_rec	 u;
	char		 err[CRM_ERR_MAX], want[CRM_ERR_MAX], *copy, *path;
	char		*p, *out;
	size_t		 len = 0;
	int		 i = 1;

	out = calloc(1, strlen(exported) + strlen(text ? text : "") + 2);
	copy = strdup(exported);
	for (p = strtok(copy, "\n"); p != NULL; p = strtok(NULL, "\n"), i++) {
		if (i == line && text == NULL)
			break;
		len += (size_t)sprintf(out + len, "%s\n", i == line ? text : p);
	}
	path = unit_write(dir, "bad.jsonl", out);
	CU_ASSERT_EQUAL(store_import(dst, path, &n, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:%d: %s", path, at, why);
	CU_ASSERT_EQUAL(strncmp(err, want, strlen(want)), 0);
	if (strncmp(err, want, strlen(want)) != 0)
		fprintf(stderr, "want %s\ngot  %s\n", want, err);
	CU_ASSERT_EQUAL(store_user_get(dst, "ACME", "alice", &u),
	    STORE_NOTFOUND);
	store_close(dst);
	free(path);
	free(copy);
	free(out);
}

static void
t_import_refusals(void)
{
	refused(7, NULL, 6, "the file is cut short");
	refused(1, "{\"hello\":1}", 1, "not a crmauth export");
	refused(1, "{\"format\":\"crmauth-export\",\"version\":2,\"schema\":1}",
	    1, "an export of version 2");
	refused(1, "{\"format\":\"crmauth-export\",\"version\":1,\"schema\":99}",
	    1, "exported by a newer crmauth");
	refused(2, "{\"type\":\"user\"", 2, "not a JSON object");
	refused(2, "[]", 2, "not a JSON object");
	refused(2, "{\"type\":\"robot\"}", 2, "\"robot\" is not a type");
	refused(2, "{\"type\":\"user\",\"org\":\"ACME\",\"name\":\"a\","
	    "\"pwhash\":\"plain\",\"units\":[\"HQ\"],\"disabled\":false,"
	    "\"created\":1,\"not_before\":1}", 2,
	    "\"pwhash\" is not an argon2id hash");
	refused(2, "{\"type\":\"user\",\"org\":\"ACME\",\"name\":\"a\","
	    "\"pwhash\":\"$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA\","
	    "\"units\":[],\"disabled\":false,\"created\":1,\"not_before\":1}",
	    2, "\"units\" holds 1 to 32 names");
	refused(2, "{\"type\":\"user\",\"org\":\"ACME\",\"name\":\"a\","
	    "\"pwhash\":\"$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA\","
	    "\"units\":[\"HQ\"],\"disabled\":false,\"created\":-5,"
	    "\"not_before\":1}", 2, "\"created\" is not a time");
	refused(2, "{\"type\":\"user\",\"org\":\"ACME\",\"name\":\"a\","
	    "\"pwhash\":\"$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA\","
	    "\"units\":[\"HQ\"],\"disabled\":false,\"created\":1,"
	    "\"not_before\":1,\"admin\":true}", 2,
	    "\"admin\" is not a member");
	refused(3, "{\"type\":\"access_token\",\"id\":\"00\",\"contact\":\"C\","
	    "\"ari\":\"\",\"passhash\":\"\",\"created\":1}", 3,
	    "\"id\" is not 64 hex digits");
	refused(4, "{\"type\":\"signing_key\",\"kid\":\"0123456789ABCDEF\","
	    "\"secret\":\"short\",\"created\":1,\"expires\":0,\"current\":true}",
	    4, "\"secret\" is not 32 bytes");
	refused(7, "{\"end\":true,\"records\":4}", 7,
	    "the end line counts 4 records, the file holds 5");
	refused(2, "{\"type\":\"user\"} {}", 2, "not a JSON object");
	/* Security: a Web API key of no user (an orphan of a store that
	 * had the add/del race, or a hand-made file) would serve whoever is
	 * added later under that name. */
	refused(2, "{\"type\":\"apikey\",\"digest\":\"00000000000000000000"
	    "000000000000000000000000000000000000000000AB\",\"org\":\"ACME\","
	    "\"user\":\"ghost\",\"revoked\":false,\"created\":1}", 2,
	    "a Web API key of user ghost in organisation ACME, who is not in "
	    "the file (before it)");
	refused(2, "{'type':'user'}", 2, "not a JSON object");
	refused(5, "{\"type\":\"released\",\"jti\":"
	    "\"0102030405060708090A0B0C0D0E0F10\",\"exp\":99999999999}", 5,
	    "\"exp\" is later than any token's");
	/* What the file says is quoted with nothing a terminal acts on. */
	refused(2, "{\"type\":\"x\\u001b[2Jy\"}", 2,
	    "\"x?[2Jy\" is not a type of record");
}

/*
 * Security: a hostile import cannot pin a responder on one login (an
 * argon2 cost past the bounds) nor hold a user's logins off (a time in
 * the future): each is refused with its line.
 */
static void
t_import_hostile_costs_and_times(void)
{
	static const char *costs[] = { "m=19456,t=4000000000,p=1",
	    "m=4194304,t=2,p=1", "m=19456,t=65,p=1", "m=19456,t=2,p=17",
	    "m=4,t=2,p=1", "m=19456,t=0,p=1",
	    /* each within its own bound, but a minute of work a login */
	    "m=1048576,t=64,p=1", "m=1048576,t=5,p=16",
	    "m=262144,t=17,p=1" };
	char	 line[512], why[256];
	long	 future = (long)time(NULL) + 3600;

	for (size_t i = 0; i < sizeof(costs) / sizeof(costs[0]); i++) {
		snprintf(line, sizeof(line), "{\"type\":\"user\",\"org\":"
		    "\"ACME\",\"name\":\"a\",\"pwhash\":\"$argon2id$v=19$%s"
		    "$c2FsdA$aGFzaA\",\"units\":[\"HQ\"],\"disabled\":false,"
		    "\"created\":1,\"not_before\":1}", costs[i]);
		snprintf(why, sizeof(why), "\"pwhash\": argon2id cost %s is "
		    "past the bounds (m 8 to 1048576 KiB, t 1 to 64, p 1 to 16, "
		    "m times t at most 4194304)", costs[i]);
		refused(2, line, 2, why);
	}
	snprintf(line, sizeof(line), "{\"type\":\"user\",\"org\":\"ACME\","
	    "\"name\":\"a\",\"pwhash\":\"$argon2id$v=19$m=8,t=1,p=1$c2FsdA"
	    "$aGFzaA\",\"units\":[\"HQ\"],\"disabled\":false,\"created\":1,"
	    "\"not_before\":%ld}", future);
	refused(2, line, 2, "\"not_before\" is in the future");
	snprintf(line, sizeof(line), "{\"type\":\"user\",\"org\":\"ACME\","
	    "\"name\":\"a\",\"pwhash\":\"$argon2id$v=19$m=8,t=1,p=1$c2FsdA"
	    "$aGFzaA\",\"units\":[\"HQ\"],\"disabled\":false,\"created\":%ld,"
	    "\"not_before\":1}", future);
	refused(2, line, 2, "\"created\" is in the future");
}

static void
t_import_not_a_file(void)
{
	struct store	*dst = fresh("notfile");
	struct xcount	 n;
	char		 err[CRM_ERR_MAX];

	/* Import reads the file twice: a pipe or a directory is refused
	 * before anything is touched. */
	CU_ASSERT_EQUAL(store_import(dst, dir, &n, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
	store_close(dst);
}

static CU_TestInfo tests[] = {
	{ "attempts: counted in their window, held at a limit, trusted",
	    t_reserve_rule },
	{ "attempts: given back in their window, cleared on success",
	    t_giveback_rule },
	{ "attempts: a read says held, trusted, what a success "
	    "writes", t_peek_rule },
	{ "trust: written again only when it gains more than an hour",
	    t_trust_rule },
	{ "schema versions and names", t_schema_and_names },
	{ "access tokens' ids", t_access_id },
	{ "export: every record, 0600, over a planted file", t_export },
	{ "import: the same records back, into an empty store only",
	    t_import_round_trip },
	{ "import: damaged or foreign lines refused by number, nothing loaded",
	    t_import_refusals },
	{ "security: import refuses argon2 costs past the bounds, future times",
	    t_import_hostile_costs_and_times },
	{ "import: a pipe or a directory is refused", t_import_not_a_file },
	CU_TEST_INFO_NULL,
};

int
main(void)
{
	int rc;

	dir = unit_tmpdir();
	unit_config(&cfg, dir);
	rc = unit_run("rules", tests);
	if (src != NULL)
		store_close(src);
	free(exported);
	unit_rmtree(dir);
	return rc;
}
