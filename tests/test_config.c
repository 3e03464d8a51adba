/* config.c: defaults, the file format, every kind of error. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

static char	*dir;

/* Load text as a config file; returns config_load's result. */
static int
load(const char *text, struct config *cfg, char *err, size_t errlen)
{
	char	*p = unit_write(dir, "t.conf", text);
	int	 rc;

	config_defaults(cfg);
	err[0] = '\0';
	rc = config_load(cfg, p, err, errlen);
	free(p);
	return rc;
}

static void
t_defaults(void)
{
	struct config c;

	config_defaults(&c);
	CU_ASSERT_STRING_EQUAL(c.db_path, CRM_DEFAULT_DB);
	CU_ASSERT_EQUAL(c.db_map_size_mb, 256);
	CU_ASSERT_EQUAL(c.db_map_max_mb, 4096);
	CU_ASSERT_EQUAL(c.token_ttl, 7200);
	CU_ASSERT_EQUAL(c.max_body, 16384);
	CU_ASSERT_EQUAL(c.lockout_threshold, 5);
	CU_ASSERT_EQUAL(c.lockout_account_threshold, 50);
	CU_ASSERT_EQUAL(c.lockout_window, 900);
	CU_ASSERT_EQUAL(c.argon2_memory_kib, 19456);
	CU_ASSERT_EQUAL(c.argon2_iterations, 2);
	CU_ASSERT_EQUAL(c.argon2_parallelism, 1);
	CU_ASSERT_STRING_EQUAL(c.audit_log, "syslog");
}

static void
t_every_key(void)
{
	struct config	c;
	char		err[CRM_ERR_MAX];

	CU_ASSERT_EQUAL(load("# comment\n; other comment\n\n"
	    "db_path = /srv/crm auth;x#y\n"
	    "db_map_size_mb = 16\n db_map_max_mb=32\n"
	    "token_ttl = 60\nmax_body = 1024\nlockout_threshold = 3\n"
	    "lockout_account_threshold = 9\nlockout_window = 30\n"
	    "argon2_memory_kib = 65536\nargon2_iterations = 3\n"
	    "argon2_parallelism = 1\naudit_log = /var/log/crm auth.log\n",
	    &c, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.audit_log, "/var/log/crm auth.log");
	CU_ASSERT_STRING_EQUAL(c.db_path, "/srv/crm auth;x#y");
	CU_ASSERT_EQUAL(c.db_map_size_mb, 16);
	CU_ASSERT_EQUAL(c.db_map_max_mb, 32);
	CU_ASSERT_EQUAL(c.token_ttl, 60);
	CU_ASSERT_EQUAL(c.max_body, 1024);
	CU_ASSERT_EQUAL(c.lockout_threshold, 3);
	CU_ASSERT_EQUAL(c.lockout_account_threshold, 9);
	CU_ASSERT_EQUAL(c.lockout_window, 30);
	CU_ASSERT_EQUAL(c.argon2_memory_kib, 65536);
	CU_ASSERT_EQUAL(c.argon2_iterations, 3);
	CU_ASSERT(strstr(c.path, "t.conf") != NULL);
}

/* Each bad file must fail with "FILE:LINE: problem". */
static void
expect_error(const char *text, const char *line, const char *problem)
{
	struct config	c;
	char		err[CRM_ERR_MAX], want[64];

	CU_ASSERT_EQUAL(load(text, &c, err, sizeof(err)), -1);
	/* line NULL: a problem of the whole file, said without one. */
	snprintf(want, sizeof(want), line != NULL ? "t.conf:%s: " : "t.conf: ",
	    line);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, problem));
	if (strstr(err, want) == NULL || strstr(err, problem) == NULL)
		fprintf(stderr, "got: %s\n", err);
}

static void
t_errors(void)
{
	expect_error("token_ttl = 60\nbogus = 1\n", "2", "unknown key \"bogus\"");
	expect_error("token_ttl = sixty\n", "1", "token_ttl = \"sixty\" is not a number");
	expect_error("\n\ntoken_ttl = 0\n", "3", "is too small");
	expect_error("max_body = 99999999999\n", "1", "is too large");
	expect_error("max_body = 99999999999999999999999\n", "1", "out of range");
	expect_error("max_body = -5\n", "1", "is not a number");
	expect_error("max_body = 12k\n", "1", "is not a number");
	expect_error("max_body = 100 # bytes\n", "1", "is not a number");
	expect_error("token_ttl = 60\ntoken_ttl = 70\n", "2", "set twice");
	expect_error("[main]\ntoken_ttl = 60\n", "2", "section [main]");
	expect_error("just words\n", "1", "syntax error");
	expect_error("db_path =\n", "1", "db_path is empty");
	expect_error("argon2_parallelism = 2\n", "1", "is too large");
	expect_error("argon2_memory_kib = 4\n", "1", "is too small");
	expect_error("argon2_memory_kib = 1048577\n", "1", "is too large");
	expect_error("argon2_iterations = 65\n", "1", "is too large");
	/* Each within bounds, their work not: seconds a login. */
	expect_error("argon2_memory_kib = 1048576\nargon2_iterations = 5\n",
	    NULL, "argon2_memory_kib (1048576) times argon2_iterations (5) "
	    "is past 4194304");
}

static void
t_long_line(void)
{
	struct config	c;
	char		err[CRM_ERR_MAX], text[1200], want[1100];

	/* Past inih's 200-byte stack buffer, within our 1 KiB paths. */
	strcpy(want, "/srv");
	for (int i = 0; i < 100; i++)
		strcat(want, "/abcdefghi");
	snprintf(text, sizeof(text), "db_path = %s\ntoken_ttl = 5\n", want);
	CU_ASSERT_EQUAL(load(text, &c, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.db_path, want);
	CU_ASSERT_EQUAL(c.token_ttl, 5);
}

static void
t_map_sizes(void)
{
	struct config	c;
	char		err[CRM_ERR_MAX];

	CU_ASSERT_EQUAL(load("db_map_size_mb = 64\ndb_map_max_mb = 32\n", &c,
	    err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "db_map_size_mb (64) is larger"));
}

static void
t_missing_file(void)
{
	struct config	 c;
	char		 err[CRM_ERR_MAX], *p;

	config_defaults(&c);
	CU_ASSERT_EQUAL(config_load(&c, "/nonexistent/crmauth.conf", err,
	    sizeof(err)), -1);
	CU_ASSERT_STRING_EQUAL(err,
	    "/nonexistent/crmauth.conf: No such file or directory");
	/* A directory opens with fopen(3) but is no config. */
	CU_ASSERT_EQUAL(config_load(&c, dir, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ": not a regular file"));
	p = unit_write(dir, "empty.conf", "");
	CU_ASSERT_EQUAL(config_load(&c, p, err, sizeof(err)), 0);
	free(p);
}

/* -c, then $CRMAUTH_CONF, then the build's place; a missing file is an
 * error wherever it was looked for, naming the places tried. */
static void
t_find(void)
{
	struct config	 c;
	char		 err[CRM_ERR_MAX], *a, *b;

	a = unit_write(dir, "a.conf", "token_ttl = 100\n");
	b = unit_write(dir, "b.conf", "token_ttl = 200\n");
	unsetenv("CRMAUTH_CONF");
	config_defaults(&c);
	CU_ASSERT_EQUAL(config_find(&c, a, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.token_ttl, 100);
	CU_ASSERT_STRING_EQUAL(c.path, a);
	setenv("CRMAUTH_CONF", b, 1);
	config_defaults(&c);
	CU_ASSERT_EQUAL(config_find(&c, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.token_ttl, 200);
	config_defaults(&c);
	CU_ASSERT_EQUAL(config_find(&c, a, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.token_ttl, 100);
	setenv("CRMAUTH_CONF", "/nonexistent/x.conf", 1);
	CU_ASSERT_EQUAL(config_find(&c, NULL, err, sizeof(err)), -1);
	CU_ASSERT_STRING_EQUAL(err, "no configuration: CRMAUTH_CONF names "
	    "/nonexistent/x.conf: No such file or directory");
	/* Named with -c: as named. */
	CU_ASSERT_EQUAL(config_find(&c, "/nonexistent/y.conf", err,
	    sizeof(err)), -1);
	CU_ASSERT_STRING_EQUAL(err,
	    "/nonexistent/y.conf: No such file or directory");
	/* Empty is unset; then the build's place, which this build's
	 * prefix does not hold. */
	setenv("CRMAUTH_CONF", "", 1);
	if (access(CRM_DEFAULT_CONF, F_OK) == -1) {
		CU_ASSERT_EQUAL(config_find(&c, NULL, err, sizeof(err)), -1);
		CU_ASSERT_STRING_EQUAL(err, "no configuration: CRMAUTH_CONF "
		    "is not set, and " CRM_DEFAULT_CONF ": No such file or "
		    "directory");
	}
	CU_ASSERT_STRING_EQUAL(config_place(), CRM_DEFAULT_CONF);
	unsetenv("CRMAUTH_CONF");
	free(a);
	free(b);
}

/* Relative paths are relative to the file's directory, as named. */
static void
t_relative(void)
{
	struct config	 c;
	char		 err[CRM_ERR_MAX], want[2048], cwd[1024], *p;

	p = unit_write(dir, "rel.conf",
	    "db_path = ./store\naudit_log = ./logs/events.log\n");
	config_defaults(&c);
	CU_ASSERT_EQUAL_FATAL(config_load(&c, p, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/store", dir);
	CU_ASSERT_STRING_EQUAL(c.db_path, want);
	snprintf(want, sizeof(want), "%s/logs/events.log", dir);
	CU_ASSERT_STRING_EQUAL(c.audit_log, want);
	free(p);
	p = unit_write(dir, "rel2.conf", "db_path = db\n");
	config_defaults(&c);
	CU_ASSERT_EQUAL(config_load(&c, p, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/db", dir);
	CU_ASSERT_STRING_EQUAL(c.db_path, want);
	/* A file named relative to the working directory. */
	CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
	CU_ASSERT_EQUAL_FATAL(chdir(dir), 0);
	config_defaults(&c);
	CU_ASSERT_EQUAL(config_load(&c, "rel2.conf", err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.db_path, want);
	CU_ASSERT_EQUAL_FATAL(chdir(cwd), 0);
	free(p);
	/* Absolute paths stay as they are. */
	CU_ASSERT_EQUAL(load("db_path = /srv/db\n", &c, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.db_path, "/srv/db");
}

static void
t_parse_int(void)
{
	long long	 v;
	const char	*why;

	CU_ASSERT_EQUAL(parse_int("42", 0, 100, &v, &why), 0);
	CU_ASSERT_EQUAL(v, 42);
	CU_ASSERT_EQUAL(parse_int("", 0, 100, &v, &why), -1);
	CU_ASSERT_EQUAL(parse_int(" 42", 0, 100, &v, &why), -1);
	CU_ASSERT_EQUAL(parse_int("+42", 0, 100, &v, &why), -1);
	CU_ASSERT_EQUAL(parse_int("42 ", 0, 100, &v, &why), -1);
	CU_ASSERT_EQUAL(parse_int("0x10", 0, 100, &v, &why), -1);
	CU_ASSERT_EQUAL(parse_int("101", 0, 100, &v, &why), -1);
	CU_ASSERT_STRING_EQUAL(why, "is too large");
	CU_ASSERT_EQUAL(parse_int("-1", -5, 5, &v, &why), 0);
	CU_ASSERT_EQUAL(v, -1);
	CU_ASSERT_EQUAL(parse_int("-1", 0, 5, &v, &why), -1);
	CU_ASSERT_EQUAL(parse_int("9223372036854775808", 0, 100, &v, &why),
	    -1);
	CU_ASSERT_STRING_EQUAL(why, "is out of range");
}

/* audit_log: the three words or a path (absolute, or ./ or ../ next to
 * the file), nothing else. */
static void
t_audit_log(void)
{
	static const char *good[] = { "syslog", "stderr", "off", "/a" };
	static const char *bad[] = { "Syslog", "audit.log", ".audit.log",
	    "file", "none", "~/audit.log" };
	struct config	 c;
	char		 err[CRM_ERR_MAX], text[64];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "audit_log = %s\n", good[i]);
		CU_ASSERT_EQUAL(load(text, &c, err, sizeof(err)), 0);
		CU_ASSERT_STRING_EQUAL(c.audit_log, good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "audit_log = %s\n", bad[i]);
		CU_ASSERT_EQUAL(load(text, &c, err, sizeof(err)), -1);
		CU_ASSERT(strstr(err, "is not syslog, stderr, off or a file "
		    "(an absolute path, or ./FILE next to this one)") != NULL);
		CU_ASSERT(strstr(err, bad[i]) != NULL);
	}
}

static void
t_metrics_allow(void)
{
	struct config	 c;
	char		 err[CRM_ERR_MAX];
	struct cidr	 nets[CRM_CIDR_MAX];
	size_t		 n;
	const char	*why;

	/* The default: loopback only, both families. */
	config_defaults(&c);
	CU_ASSERT_STRING_EQUAL(c.metrics, "on");
	CU_ASSERT_EQUAL(c.metrics_nnets, 2);
	CU_ASSERT(cidr_match(c.metrics_nets, c.metrics_nnets, "127.0.0.1"));
	CU_ASSERT(cidr_match(c.metrics_nets, c.metrics_nnets, "127.9.8.7"));
	CU_ASSERT(cidr_match(c.metrics_nets, c.metrics_nnets, "::1"));
	CU_ASSERT(cidr_match(c.metrics_nets, c.metrics_nnets,
	    "::ffff:127.0.0.1"));
	CU_ASSERT(!cidr_match(c.metrics_nets, 2, "128.0.0.1"));
	CU_ASSERT(!cidr_match(c.metrics_nets, 2, "10.0.0.1"));
	CU_ASSERT(!cidr_match(c.metrics_nets, 2, "::2"));
	CU_ASSERT(!cidr_match(c.metrics_nets, 2, ""));
	CU_ASSERT(!cidr_match(c.metrics_nets, 2, "localhost"));
	CU_ASSERT(!cidr_match(c.metrics_nets, 2, NULL));

	/* Prefixes that end inside a byte; commas or spaces. */
	CU_ASSERT_EQUAL(cidr_parse("192.0.2.64/27, 2001:db8::/33", nets, &n,
	    &why), 2);
	CU_ASSERT(cidr_match(nets, n, "192.0.2.95"));
	CU_ASSERT(!cidr_match(nets, n, "192.0.2.96"));
	CU_ASSERT(!cidr_match(nets, n, "192.0.2.63"));
	CU_ASSERT(cidr_match(nets, n, "2001:db8:7fff::1"));
	CU_ASSERT(!cidr_match(nets, n, "2001:db8:8000::1"));
	CU_ASSERT_EQUAL(cidr_parse("0.0.0.0/0", nets, &n, &why), 1);
	CU_ASSERT(cidr_match(nets, n, "203.0.113.9"));
	CU_ASSERT(!cidr_match(nets, n, "2001:db8::1"));
	CU_ASSERT_EQUAL(cidr_parse("none", nets, &n, &why), 0);
	CU_ASSERT(!cidr_match(nets, n, "127.0.0.1"));

	/* Refused, each with its reason in the file's error. */
	CU_ASSERT_EQUAL(load("metrics_allow = 127.0.0.1/33\n", &c, err,
	    sizeof(err)), -1);
	CU_ASSERT(strstr(err, "metrics_allow: \"/33\" after 127.0.0.1 is "
	    "too large (allowed 0 to 32)") != NULL);
	CU_ASSERT_EQUAL(load("metrics_allow = localhost\n", &c, err,
	    sizeof(err)), -1);
	CU_ASSERT(strstr(err, "\"localhost\" is not an IPv4 or IPv6 address")
	    != NULL);
	CU_ASSERT_EQUAL(load("metrics_allow = 10.0.0.1/x\n", &c, err,
	    sizeof(err)), -1);
	/* Clients' mapped addresses are matched as IPv4: a mapped entry
	 * would never match, and is refused rather than kept silently. */
	CU_ASSERT_EQUAL(load("metrics_allow = ::ffff:10.0.0.0/104\n", &c, err,
	    sizeof(err)), -1);
	CU_ASSERT(strstr(err, "\"::ffff:10.0.0.0\" is an IPv4 address mapped "
	    "into IPv6: write it as IPv4") != NULL);
	CU_ASSERT_EQUAL(load("metrics = yes\n", &c, err, sizeof(err)), -1);
	CU_ASSERT(strstr(err, "metrics = \"yes\" is not on or off") != NULL);
	CU_ASSERT_EQUAL(load("metrics_allow = 1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 "
	    "1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 1.1.1.9 1.1.1.10 1.1.1.11 1.1.1.12 "
	    "1.1.1.13 1.1.1.14 1.1.1.15 1.1.1.16 1.1.1.17\n", &c, err,
	    sizeof(err)), -1);
	CU_ASSERT(strstr(err, "more than 16 networks") != NULL);
	CU_ASSERT_EQUAL(load("metrics = off\nmetrics_allow = 10.1.2.3\n", &c,
	    err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.metrics, "off");
	CU_ASSERT(cidr_match(c.metrics_nets, c.metrics_nnets, "10.1.2.3"));
	CU_ASSERT(!cidr_match(c.metrics_nets, c.metrics_nnets, "127.0.0.1"));
}

static CU_TestInfo tests[] = {
	{ "defaults match the README's Configuration", t_defaults },
	{ "every key is read", t_every_key },
	{ "errors name file, line and problem", t_errors },
	{ "lines longer than 200 bytes are read whole", t_long_line },
	{ "db_map_size_mb must not exceed db_map_max_mb", t_map_sizes },
	{ "a missing file is an error", t_missing_file },
	{ "-c, then $CRMAUTH_CONF, then the default; places named", t_find },
	{ "relative paths are next to the file", t_relative },
	{ "parse_int is strict and bounded", t_parse_int },
	{ "audit_log: syslog, stderr, off or a file", t_audit_log },
	{ "metrics, metrics_allow: networks matched to the bit", t_metrics_allow },
	CU_TEST_INFO_NULL,
};

int
main(void)
{
	int rc;

	dir = unit_tmpdir();
	rc = unit_run("config", tests);
	unit_rmtree(dir);
	free(dir);
	return rc;
}
