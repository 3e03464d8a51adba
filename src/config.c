/*
 * The configuration file: "key = value" lines and "#" comments, read
 * with libinih.  Every key is checked against a table; an unknown key,
 * a bad value, a section header or a repeated key is an error that
 * names the file and the line.
 */
#include <arpa/inet.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "extern.h"

void
config_defaults(struct config *c)
{
	const char *why;

	memset(c, 0, sizeof(*c));
	snprintf(c->store, sizeof(c->store), "lmdb");
	snprintf(c->db_path, sizeof(c->db_path), "%s", CRM_DEFAULT_DB);
	snprintf(c->audit_log, sizeof(c->audit_log), "%s", CRM_DEFAULT_AUDIT);
	c->db_map_size_mb = 256;
	c->db_map_max_mb = 4096;
	c->token_ttl = 7200;
	c->max_body = 16384;
	c->lockout_threshold = 5;
	c->lockout_account_threshold = 50;
	c->lockout_window = 900;
	c->lockout_trust_days = 30;
	c->argon2_memory_kib = 19456;
	c->argon2_iterations = 2;
	c->argon2_parallelism = 1;
	snprintf(c->metrics, sizeof(c->metrics), "on");
	snprintf(c->metrics_allow, sizeof(c->metrics_allow), "%s",
	    CRM_DEFAULT_METRICS_ALLOW);
	c->db_group = -1;
	/* (The default parses: loopback only.) */
	(void)cidr_parse(c->metrics_allow, c->metrics_nets, &c->metrics_nnets,
	    &why);
}

const char *
config_place(void)
{
#ifdef CRMAUTH_SHARED_HOSTING
	return "~/" CRM_HOME_CONF;
#else
	return CRM_DEFAULT_CONF;
#endif
}

int
config_find(struct config *cfg, const char *arg, char *err, size_t errlen)
{
	const char	*env, *how = "CRMAUTH_CONF is not set, and";
	char		 file[1024];
	struct stat	 sb;
#ifdef CRMAUTH_SHARED_HOSTING
	char		 home[1024], why[CRM_ERR_MAX];
#endif

	if (arg != NULL)
		return config_load(cfg, arg, err, errlen);
	if ((env = getenv("CRMAUTH_CONF")) != NULL && *env != '\0') {
		how = "CRMAUTH_CONF names";
		if ((size_t)snprintf(file, sizeof(file), "%s", env) >=
		    sizeof(file)) {
			snprintf(err, errlen, "CRMAUTH_CONF is too long");
			return -1;
		}
		goto found;
	}
#ifdef CRMAUTH_SHARED_HOSTING
	if (pw_home(getuid(), home, sizeof(home), why, sizeof(why)) == -1) {
		snprintf(err, errlen, "no configuration: CRMAUTH_CONF is not "
		    "set, and ~/%s: %s", CRM_HOME_CONF, why);
		return -1;
	}
	if ((size_t)snprintf(file, sizeof(file), "%s%s%s", home,
	    home[strlen(home) - 1] == '/' ? "" : "/", CRM_HOME_CONF) >=
	    sizeof(file)) {
		snprintf(err, errlen, "no configuration: the home directory "
		    "%.64s... is too long", home);
		return -1;
	}
#else
	snprintf(file, sizeof(file), "%s", CRM_DEFAULT_CONF);
#endif
found:
	/* Missing where it was looked for: say where that was. */
	if (stat(file, &sb) == -1 && errno == ENOENT) {
		snprintf(err, errlen, "no configuration: %s %s: %s", how, file,
		    strerror(errno));
		return -1;
	}
	return config_load(cfg, file, err, errlen);
}

/*
 * A relative path in the file is relative to the file's directory, as
 * the file was named (made absolute, links not followed): "./db" next
 * to ~/crmauth/crmauth.conf is ~/crmauth/db.  -1 if it does not fit.
 */
static int
resolve(char *path, size_t size, const char *file)
{
	char		 dir[1024], out[1024];
	const char	*slash, *rel = path;
	size_t		 dlen;

	if (path[0] == '/')
		return 0;
	dir[0] = '\0';
	if (file[0] != '/' && getcwd(dir, sizeof(dir) - 1) == NULL)
		return -1;
	dlen = strlen(dir);
	if ((slash = strrchr(file, '/')) != NULL) {
		if (dlen > 0)
			dir[dlen++] = '/';
		if (dlen + (size_t)(slash - file) >= sizeof(dir))
			return -1;
		memcpy(dir + dlen, file, (size_t)(slash - file));
		dlen += (size_t)(slash - file);
		dir[dlen] = '\0';
	}
	while (rel[0] == '.' && rel[1] == '/')
		for (rel += 2; *rel == '/'; rel++)
			;
	if ((size_t)snprintf(out, sizeof(out), "%s/%s", dir, rel) >=
	    sizeof(out) || strlen(out) >= size)
		return -1;
	memcpy(path, out, strlen(out) + 1);
	return 0;
}

int
parse_int(const char *s, long long min, long long max, long long *out,
    const char **why)
{
	char		*end;
	long long	 v;

	if (s == NULL || *s == '\0') {
		*why = "is empty";
		return -1;
	}
	/* strtoll accepts leading space and a sign; we want digits only
	 * (and a '-' only where negatives make sense). */
	if (!(s[0] >= '0' && s[0] <= '9') && !(s[0] == '-' && min < 0)) {
		*why = "is not a number";
		return -1;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0') {
		*why = "is not a number";
		return -1;
	}
	if (errno == ERANGE) {
		*why = "is out of range";
		return -1;
	}
	if (v < min) {
		*why = "is too small";
		return -1;
	}
	if (v > max) {
		*why = "is too large";
		return -1;
	}
	*out = v;
	return 0;
}

enum ckind { C_STR, C_INT };

struct ckey {
	const char	*name;
	enum ckind	 kind;
	long long	 min, max;
	size_t		 off;		/* offset in struct config */
	size_t		 size;		/* size of the field */
};

#define F(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
static const struct ckey ckeys[] = {
	{ "store", C_STR, 1, 0, F(store) },
	{ "pg_conninfo", C_STR, 1, 0, F(pg_conninfo) },
	{ "db_path", C_STR, 1, 0, F(db_path) },
	{ "audit_log", C_STR, 1, 0, F(audit_log) },
	{ "db_map_size_mb", C_INT, 1, 1 << 20, F(db_map_size_mb) },
	{ "db_map_max_mb", C_INT, 1, 1 << 20, F(db_map_max_mb) },
	{ "token_ttl", C_INT, 1, 30 * 86400, F(token_ttl) },
	{ "max_body", C_INT, 64, 1 << 20, F(max_body) },
	{ "lockout_threshold", C_INT, 1, 1000000, F(lockout_threshold) },
	{ "lockout_account_threshold", C_INT, 1, 1000000,
	    F(lockout_account_threshold) },
	{ "lockout_window", C_INT, 1, 30 * 86400, F(lockout_window) },
	/* 0: no address is ever trusted. */
	{ "lockout_trust_days", C_INT, 0, 3650, F(lockout_trust_days) },
	/* libsodium's argon2id: at least 8 KiB, at most 4 TiB; we stop at
	 * 1 GiB, 64 passes and 4 GiB of work (CRM_ARGON2_WORK_MAX, checked
	 * below), far past anything sensible per login (the same bounds hold
	 * for imported and stored hashes). */
	{ "argon2_memory_kib", C_INT, CRM_ARGON2_MEM_MIN_KIB,
	    CRM_ARGON2_MEM_MAX_KIB, F(argon2_memory_kib) },
	{ "argon2_iterations", C_INT, 1, CRM_ARGON2_T_MAX,
	    F(argon2_iterations) },
	/* libsodium implements argon2id with one lane only. */
	{ "argon2_parallelism", C_INT, 1, 1, F(argon2_parallelism) },
	{ "metrics", C_STR, 1, 0, F(metrics) },
	{ "metrics_allow", C_STR, 1, 0, F(metrics_allow) },
};
#undef F
#define NKEYS (sizeof(ckeys) / sizeof(ckeys[0]))

struct cstate {
	struct config	*cfg;
	char		 problem[300];	/* first error, without file:line */
	bool		 seen[NKEYS];
};

static void
store_int(void *field, size_t size, long long v)
{
	switch (size) {
	case sizeof(uint32_t):
		*(uint32_t *)field = (uint32_t)v;
		break;
	case sizeof(uint64_t):
		*(uint64_t *)field = (uint64_t)v;
		break;
	}
}

static int
handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct cstate	*st = user;
	const char	*why;
	long long	 v;
	size_t		 i;
	char		*field;

	if (section[0] != '\0') {
		snprintf(st->problem, sizeof(st->problem),
		    "section [%s] not expected: the file is flat key = value",
		    section);
		return 0;
	}
	for (i = 0; i < NKEYS; i++)
		if (strcmp(ckeys[i].name, name) == 0)
			break;
	if (i == NKEYS) {
		snprintf(st->problem, sizeof(st->problem),
		    "unknown key \"%.64s\"", name);
		return 0;
	}
	if (st->seen[i]) {
		snprintf(st->problem, sizeof(st->problem),
		    "%s is set twice", name);
		return 0;
	}
	st->seen[i] = true;
	field = (char *)st->cfg + ckeys[i].off;
	if (ckeys[i].kind == C_STR) {
		if (value[0] == '\0') {
			snprintf(st->problem, sizeof(st->problem),
			    "%s is empty", name);
			return 0;
		}
		if (strlen(value) >= ckeys[i].size) {
			snprintf(st->problem, sizeof(st->problem),
			    "%s is too long", name);
			return 0;
		}
		memcpy(field, value, strlen(value) + 1);
		return 1;
	}
	if (parse_int(value, ckeys[i].min, ckeys[i].max, &v, &why) == -1) {
		snprintf(st->problem, sizeof(st->problem),
		    "%s = \"%.64s\" %s (allowed %lld to %lld)", name, value,
		    why, ckeys[i].min, ckeys[i].max);
		return 0;
	}
	store_int(field, ckeys[i].size, v);
	return 1;
}

int
config_load(struct config *cfg, const char *file, char *err, size_t errlen)
{
	struct cstate	 st;
	enum audit_sink	 sink;
	const char	*why;
	FILE		*f;
	int		 fd, rc;

	memset(&st, 0, sizeof(st));
	st.cfg = cfg;

	if ((fd = open_regular(file, 0, err, errlen)) == -1)
		return -1;
	if ((f = fdopen(fd, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		close(fd);
		return -1;
	}
	/* Strict reading: no continuation lines, no inline comments (a ';'
	 * or '#' may be part of a path), stop at the first error. */
	ini_allow_multiline = false;
	ini_allow_inline_comments = false;
	ini_stop_on_first_error = true;
	/* Lines up to 4 KiB (the stack default is 200 bytes, and a longer
	 * line is silently split in two). */
	ini_use_stack = false;
	ini_allow_realloc = false;
	ini_initial_alloc = 4096;
	ini_max_line = 4096;
	rc = ini_parse_file(f, handler, &st);
	fclose(f);
	if (rc == -2) {
		snprintf(err, errlen, "%s: out of memory", file);
		return -1;
	}
	if (rc > 0) {
		snprintf(err, errlen, "%s:%d: %s", file, rc,
		    st.problem[0] != '\0' ? st.problem :
		    "syntax error: expected key = value");
		return -1;
	}
#ifdef CRMAUTH_SHARED_HOSTING
	if (strcmp(cfg->store, "postgresql") == 0) {
		snprintf(err, errlen, "%s: store = postgresql: this is the "
		    "shared-hosting build, which keeps its store in LMDB "
		    "(shared hosting is one machine)", file);
		return -1;
	}
#endif
	if (strcmp(cfg->store, "lmdb") != 0 &&
	    strcmp(cfg->store, "postgresql") != 0) {
		snprintf(err, errlen, "%s: store = \"%.32s\" is not lmdb or "
		    "postgresql", file, cfg->store);
		return -1;
	}
	/* A file's relative path starts with ./ or ../: a misspelt
	 * keyword is an error, not a file of that name. */
	if ((strncmp(cfg->audit_log, "./", 2) == 0 ||
	    strncmp(cfg->audit_log, "../", 3) == 0) &&
	    resolve(cfg->audit_log, sizeof(cfg->audit_log), file) == -1) {
		snprintf(err, errlen, "%s: audit_log is too long", file);
		return -1;
	}
	if (audit_sink_parse(cfg->audit_log, &sink) == -1) {
		snprintf(err, errlen, "%s: audit_log = \"%.64s\" is not "
		    "syslog, stderr, off or a file (an absolute path, or "
		    "./FILE next to this one)", file, cfg->audit_log);
		return -1;
	}
	if (resolve(cfg->db_path, sizeof(cfg->db_path), file) == -1) {
		snprintf(err, errlen, "%s: db_path is too long", file);
		return -1;
	}
	if (strcmp(cfg->store, "postgresql") == 0 &&
	    cfg->pg_conninfo[0] == '\0') {
		snprintf(err, errlen, "%s: store = postgresql needs "
		    "pg_conninfo", file);
		return -1;
	}
	if ((uint64_t)cfg->argon2_memory_kib * cfg->argon2_iterations >
	    CRM_ARGON2_WORK_MAX) {
		snprintf(err, errlen, "%s: argon2_memory_kib (%d) times "
		    "argon2_iterations (%d) is past %d: a login would take "
		    "seconds of CPU", file, (int)cfg->argon2_memory_kib,
		    (int)cfg->argon2_iterations, CRM_ARGON2_WORK_MAX);
		return -1;
	}
	if (strcmp(cfg->metrics, "on") != 0 &&
	    strcmp(cfg->metrics, "off") != 0) {
		snprintf(err, errlen, "%s: metrics = \"%.16s\" is not on or "
		    "off", file, cfg->metrics);
		return -1;
	}
	if (cidr_parse(cfg->metrics_allow, cfg->metrics_nets,
	    &cfg->metrics_nnets, &why) == -1) {
		snprintf(err, errlen, "%s: metrics_allow: %s", file, why);
		return -1;
	}
	if (cfg->db_map_size_mb > cfg->db_map_max_mb) {
		snprintf(err, errlen, "%s: db_map_size_mb (%llu) is larger "
		    "than db_map_max_mb (%llu)", file,
		    (unsigned long long)cfg->db_map_size_mb,
		    (unsigned long long)cfg->db_map_max_mb);
		return -1;
	}
	snprintf(cfg->path, sizeof(cfg->path), "%s", file);
	return 0;
}

/* ---- networks (metrics_allow) ----------------------------------------- */

int
cidr_parse(const char *list, struct cidr *nets, size_t *n, const char **why)
{
	static char	 msg[160];
	char		 word[128], *slash;
	const char	*p = list, *end;
	size_t		 len, k = 0;
	long long	 bits;
	struct cidr	 c;

	*n = 0;
	for (;;) {
		p += strspn(p, " \t,");
		if (*p == '\0')
			break;
		len = strcspn(p, " \t,");
		end = p + len;
		if (len >= sizeof(word)) {
			*why = "a network is too long";
			return -1;
		}
		memcpy(word, p, len);
		word[len] = '\0';
		p = end;
		if (strcmp(word, "none") == 0)
			continue;
		memset(&c, 0, sizeof(c));
		if ((slash = strchr(word, '/')) != NULL)
			*slash = '\0';
		if (inet_pton(AF_INET, word, c.addr) == 1)
			c.family = 4;
		else if (inet_pton(AF_INET6, word, c.addr) == 1)
			c.family = 6;
		else {
			snprintf(msg, sizeof(msg), "\"%.64s\" is not an IPv4 "
			    "or IPv6 address", word);
			*why = msg;
			return -1;
		}
		/* Clients' mapped addresses are matched as IPv4: an entry
		 * written mapped would never match. */
		if (c.family == 6 && memcmp(c.addr, "\0\0\0\0\0\0\0\0\0\0"
		    "\xff\xff", 12) == 0) {
			snprintf(msg, sizeof(msg), "\"%.64s\" is an IPv4 "
			    "address mapped into IPv6: write it as IPv4", word);
			*why = msg;
			return -1;
		}
		c.bits = c.family == 4 ? 32 : 128;
		if (slash != NULL) {
			const char *w;

			if (parse_int(slash + 1, 0, c.bits, &bits, &w) == -1) {
				snprintf(msg, sizeof(msg), "\"/%.16s\" after "
				    "%.64s %s (allowed 0 to %d)", slash + 1,
				    word, w, c.bits);
				*why = msg;
				return -1;
			}
			c.bits = (uint8_t)bits;
		}
		if (k == CRM_CIDR_MAX) {
			*why = "more than 16 networks";
			return -1;
		}
		nets[k++] = c;
	}
	*n = k;
	return (int)k;
}

static int
prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned	 whole = bits / 8, rest = bits % 8;
	uint8_t		 mask;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

int
cidr_match(const struct cidr *nets, size_t n, const char *addr)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	uint8_t		 a[16];
	int		 fam;

	if (addr == NULL)
		return 0;
	if (inet_pton(AF_INET, addr, a) == 1)
		fam = 4;
	else if (inet_pton(AF_INET6, addr, a) == 1) {
		fam = 6;
		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
			memmove(a, a + 12, 4);
			fam = 4;
		}
	} else
		return 0;
	for (size_t i = 0; i < n; i++)
		if (nets[i].family == fam &&
		    prefix_eq(a, nets[i].addr, nets[i].bits))
			return 1;
	return 0;
}
