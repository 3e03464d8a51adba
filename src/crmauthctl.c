/*
 * crmauthctl: the admin tool (crmauthctl(8)).  Exit 0 on success, 1 on a
 * failure with one line on stderr, 2 on a usage error.  Passwords and
 * pass codes are read from standard input, never from the command line.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "extern.h"

#define EX_FAIL	 1
#define EX_USAGE 2

struct ctx {
	struct config	 cfg;
	struct store	*store;
	/* The admin event, written when a change succeeded: the command
	 * fills in its subjects (a key by its public id, never a secret). */
	struct audit_event ev;
	char		 key_id[CRM_KEY_ID_HEX + 1], kid[CRM_KID_HEX + 1];
	char		 unit[CRM_NAME_MAX + 1];
};

/* What a command's event says (struct cmd ev). */
#define EV_CHANGE	0x1	/* an admin event when it succeeds */
#define EV_ORG_USR	0x2	/* its arguments are ORG USER */
#define EV_FILE		0x4	/* its argument is a FILE */
#define NO_STORE	0x8	/* runs without the store open */

struct cmd {
	const char	*w1, *w2;	/* command words; w2 may be NULL */
	int		 (*fn)(struct ctx *, int, char **);
	unsigned	 ev;		/* EV_* */
	int		 min, max;	/* positional arguments */
	const char	*args;		/* for usage */
	const char	*help;
};

static const struct cmd *cur;

static int
fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
fail(const char *fmt, ...)
{
	va_list ap;

	fputs("crmauthctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EX_FAIL;
}

static int
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("crmauthctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cur != NULL)
		fprintf(stderr, "\nusage: crmauthctl %s%s%s %s\n", cur->w1,
		    cur->w2 ? " " : "", cur->w2 ? cur->w2 : "", cur->args);
	else
		fputs("\nTry 'crmauthctl --help'.\n", stderr);
	return EX_USAGE;
}

static int
store_fail(struct ctx *c, enum store_err e)
{
	if (e == STORE_FULL || e == STORE_ERROR || e == STORE_CORRUPT)
		return fail("%s: %s", store_strerror(e), store_detail(c->store));
	return fail("%s", store_strerror(e));
}

/* A name given on the command line: 1 to 256 bytes of UTF-8, no
 * control characters (a token must carry it, as JSON). */
static int
check_name(const char *what, const char *s)
{
	const char *why = store_name_problem(s);

	return why != NULL ? usage_error("%s %s", what, why) : 0;
}

static void
fmt_time(char *buf, size_t size, int64_t t)
{
	int n = fmt_utc(buf, size, t);

	if (n > 0 && (size_t)n + 1 < size)
		snprintf(buf + n, size - (size_t)n, "Z");
}

/*
 * One line from standard input: the secret (at most size - 2 bytes)
 * without its line end.  On a terminal, prompt on stderr and do not
 * echo.  Secrets never come from the command line, where ps and shell
 * history would show them.
 */
static int
read_secret(const char *what, char *buf, size_t size)
{
	struct termios	 old, quiet;
	int		 tty = isatty(STDIN_FILENO), ok;
	size_t		 len;

	if (tty) {
		fprintf(stderr, "%s: ", what);
		fflush(stderr);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	ok = fgets(buf, (int)size, stdin) != NULL;
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (!ok)
		return fail("no %s on standard input", what);
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (!feof(stdin))
		return fail("%s is longer than %zu bytes", what, size - 2);
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0)
		return fail("%s is empty", what);
	if (len > size - 2)
		return fail("%s is longer than %zu bytes", what, size - 2);
	return 0;
}

/* Collected output lines, printed sorted. */
struct lines {
	char	**v;
	size_t	  n, cap;
};

static int
lines_add(struct lines *l, const char *s)
{
	if (l->n == l->cap) {
		size_t	  cap = l->cap ? l->cap * 2 : 64;
		char	**nv = realloc(l->v, cap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		l->v = nv;
		l->cap = cap;
	}
	if ((l->v[l->n] = strdup(s)) == NULL)
		return -1;
	l->n++;
	return 0;
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
lines_print(struct lines *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmpstr);
	for (size_t i = 0; i < l->n; i++) {
		puts(l->v[i]);
		free(l->v[i]);
	}
	free(l->v);
}

static void
join_units(char *buf, size_t size, char units[][CRM_NAME_MAX + 1], size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < size; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s%s",
		    i ? "," : "", units[i]);
}

/*
 * Positional arguments and repeated --unit U options of "add" commands.
 * Returns 0, or EX_USAGE after a message.
 */
static int
parse_units(int argc, char **argv, char **pos, int npos,
    char units[][CRM_NAME_MAX + 1], size_t *nunits)
{
	int got = 0, rc;

	*nunits = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--unit") == 0) {
			if (i + 1 >= argc)
				return usage_error("--unit needs a value");
			if ((rc = check_name("unit", argv[++i])) != 0)
				return rc;
			if (*nunits == CRM_UNITS_MAX)
				return usage_error("at most %d units",
				    CRM_UNITS_MAX);
			for (size_t j = 0; j < *nunits; j++)
				if (strcmp(units[j], argv[i]) == 0)
					return usage_error("unit %s given "
					    "twice", argv[i]);
			snprintf(units[(*nunits)++], CRM_NAME_MAX + 1, "%s",
			    argv[i]);
		} else if (argv[i][0] == '-' && argv[i][1] == '-')
			return usage_error("unknown option %s", argv[i]);
		else if (got == npos)
			return usage_error("too many arguments");
		else
			pos[got++] = argv[i];
	}
	if (got != npos)
		return usage_error("missing arguments");
	if (*nunits == 0)
		return usage_error("at least one --unit is needed");
	return 0;
}

/*
 * Who logged in to run this: the audit login uid (Linux, set by
 * pam_loginuid at login and kept by su and sudo), by name.  NULL when
 * there is none (a daemon, a container without it).
 */
static const char *
login_user(char buf[32])
{
	FILE		*f;
	long long	 v;
	const char	*why;
	char		 line[32];
	int		 ok;

	if ((f = fopen("/proc/self/loginuid", "re")) == NULL)
		return NULL;
	ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	if (!ok)
		return NULL;
	line[strcspn(line, "\n")] = '\0';
	/* 4294967295: unset. */
	if (parse_int(line, 0, 4294967294LL, &v, &why) == -1)
		return NULL;
	return pw_user_name((uid_t)v, buf, 32);
}

/*
 * The admin event of a change that succeeded: the command, its
 * subjects, and who ran it: the Unix user, the user who logged in,
 * and sudo's SUDO_USER.
 */
static void
admin_event(struct ctx *c, const struct cmd *cmd, int argc, char **argv)
{
	struct audit	 a;
	char		 words[64], uid[32], login[32];

	if (!(cmd->ev & EV_CHANGE))
		return;
	snprintf(words, sizeof(words), "%s%s%s", cmd->w1,
	    cmd->w2 ? " " : "", cmd->w2 ? cmd->w2 : "");
	c->ev.event = "admin";
	c->ev.command = words;
	if (cmd->ev & EV_ORG_USR) {
		c->ev.org = argv[0];
		c->ev.usr = argv[1];
	}
	if (cmd->ev & EV_FILE)
		c->ev.file = argv[0];
	c->ev.unix_user = pw_user_name(getuid(), uid, sizeof(uid));
	c->ev.login_user = login_user(login);
	/* As sudo set it: the user could have set it too, login_user
	 * not. */
	c->ev.sudo_user = getenv("SUDO_USER");
	audit_init(&a, c->cfg.audit_log);
	audit_emit(&a, &c->ev);
	audit_close(&a);
}

/* ---- commands ---------------------------------------------------------- */

static int
c_init(struct ctx *c, int argc, char **argv)
{
	/* The work (and --group) was done by opening with STORE_CREATE. */
	printf("store %s is ready\n", c->store->where);
	if (strcmp(c->cfg.store, "postgresql") == 0)
		printf("its signing keys are sealed with %s/wrap.key: copy that "
		    "file, readable by the responders' user only, to db_path "
		    "on every web node\n", c->cfg.db_path);
	return 0;
}

static int
c_user_add(struct ctx *c, int argc, char **argv)
{
	char		*pos[2], pw[CRM_SECRET_MAX + 2];
	struct user_rec	 u, old;
	enum store_err	 e;
	int		 rc;

	memset(&u, 0, sizeof(u));
	if ((rc = parse_units(argc, argv, pos, 2, u.units, &u.nunits)) != 0 ||
	    (rc = check_name("organisation", pos[0])) != 0 ||
	    (rc = check_name("user", pos[1])) != 0)
		return rc;
	/* Before asking for a password; the put below checks again. */
	if (store_user_get(c->store, pos[0], pos[1], &old) == STORE_OK)
		return fail("user %s of %s already exists", pos[1], pos[0]);
	if (read_secret("password", pw, sizeof(pw)) != 0)
		return EX_FAIL;
	rc = sec_pwhash(u.pwhash, pw, strlen(pw), &c->cfg);
	explicit_bzero(pw, sizeof(pw));
	if (rc != 0)
		return fail("password hashing failed (out of memory?)");
	u.created = (int64_t)time(NULL);
	/* A user deleted and added again within one second: tokens of the
	 * one before, issued that second, are not this one's. */
	u.not_before = u.created;
	e = store_user_add(c->store, pos[0], pos[1], &u);
	if (e == STORE_EXISTS)
		return fail("user %s of %s already exists", pos[1], pos[0]);
	if (e != STORE_OK)
		return store_fail(c, e);
	c->ev.org = pos[0];
	c->ev.usr = pos[1];
	snprintf(c->unit, sizeof(c->unit), "%s", u.units[0]);
	c->ev.unit = c->unit;
	return 0;
}

/* Fetch a user that must exist. */
static int
get_user(struct ctx *c, const char *org, const char *user,
    struct user_rec *u)
{
	enum store_err e = store_user_get(c->store, org, user, u);

	if (e == STORE_NOTFOUND)
		return fail("no user %s in organisation %s", user, org);
	if (e != STORE_OK)
		return store_fail(c, e);
	return 0;
}

/* Apply change to an existing user, in one transaction. */
static int
change_user(struct ctx *c, const char *org, const char *user,
    user_change_fn change, void *arg)
{
	enum store_err e;

	e = store_user_change(c->store, org, user, change, arg, NULL);
	if (e == STORE_NOTFOUND)
		return fail("no user %s in organisation %s", user, org);
	if (e != STORE_OK)
		return store_fail(c, e);
	return 0;
}

static int
set_password(struct user_rec *u, void *arg)
{
	snprintf(u->pwhash, sizeof(u->pwhash), "%s", (const char *)arg);
	return 0;
}

static int
c_user_passwd(struct ctx *c, int argc, char **argv)
{
	char		 pw[CRM_SECRET_MAX + 2], hash[CRM_PWHASH_MAX];
	struct user_rec	 u;
	int		 rc;

	/* Only the hash is written, with nothing else of the record read
	 * before the prompt: a change made meanwhile stays. */
	if ((rc = get_user(c, argv[0], argv[1], &u)) != 0)
		return rc;
	explicit_bzero(&u, sizeof(u));
	if (read_secret("password", pw, sizeof(pw)) != 0)
		return EX_FAIL;
	rc = sec_pwhash(hash, pw, strlen(pw), &c->cfg);
	explicit_bzero(pw, sizeof(pw));
	if (rc != 0)
		return fail("password hashing failed (out of memory?)");
	rc = change_user(c, argv[0], argv[1], set_password, hash);
	explicit_bzero(hash, sizeof(hash));
	return rc;
}

struct cut {
	int	 disabled;	/* -1: leave as it is */
	int64_t	 now;
	int	 step;		/* cutoff_next() */
};

/*
 * Disable, enable, log out: disabling and logging out also refuse every
 * token the user was issued so far, and every token whose request read
 * the user before the command's commit.  Such a token's iat is the time
 * its request took before that read (auth.c), which may be later than
 * the time taken here: so the cutoff is set again once the commit
 * returned (cut_again(); key_revoke() does the same).  The first change
 * moves the cutoff past the one before even within a second, so that a
 * request reading the user again (auth.c, issue()) sees that it moved.
 */
static int
cut_user(struct user_rec *u, void *arg)
{
	struct cut *k = arg;

	if (k->disabled != -1)
		u->disabled = k->disabled;
	if (k->disabled != 0)
		u->not_before = cutoff_next(u->not_before, k->now, k->step);
	return 0;
}

/*
 * The second cutoff is a second past the time taken after the commit:
 * the responder that took a token's iat may be another machine, whose
 * clock may be ahead of this one's by up to that (README.md, "Running on
 * several machines": clocks in step).
 */
#define CLOCK_SLACK	1

/* The cutoff again, at a time taken after the revocation's commit; a
 * user deleted meanwhile has no token left to refuse. */
static int
cut_again(struct ctx *c, const char *org, const char *user)
{
	struct cut	 k = { -1, (int64_t)time(NULL) + CLOCK_SLACK, 0 };
	enum store_err	 e;

	e = store_user_change(c->store, org, user, cut_user, &k, NULL);
	if (e == STORE_OK || e == STORE_NOTFOUND)
		return 0;
	return fail("done, but its second write failed (%s: %s): run the "
	    "command again, or a request that was reading the user as it "
	    "ran may keep its token", store_strerror(e),
	    store_detail(c->store));
}

/* Disable (disabled 1) or log out (-1): cut off, then cut again. */
static int
cut_off(struct ctx *c, char **argv, int disabled)
{
	struct cut	 k = { disabled, (int64_t)time(NULL), 1 };
	int		 rc;

	if ((rc = change_user(c, argv[0], argv[1], cut_user, &k)) != 0)
		return rc;
	return cut_again(c, argv[0], argv[1]);
}

static int
c_user_disable(struct ctx *c, int argc, char **argv)
{
	return cut_off(c, argv, 1);
}

static int
c_user_enable(struct ctx *c, int argc, char **argv)
{
	struct cut k = { 0, 0, 0 };

	return change_user(c, argv[0], argv[1], cut_user, &k);
}

static int
c_user_logout(struct ctx *c, int argc, char **argv)
{
	return cut_off(c, argv, -1);
}

static int
user_line(void *arg, const char *org, const char *user,
    const struct user_rec *u)
{
	char	 units[CRM_UNITS_MAX * (CRM_NAME_MAX + 1)], t[32];
	char	*line;
	int	 rc;

	join_units(units, sizeof(units), (char (*)[CRM_NAME_MAX + 1])u->units,
	    u->nunits);
	fmt_time(t, sizeof(t), u->created);
	if (asprintf(&line, "%s\t%s\t%s\t%s\t%s", org, user, units,
	    u->disabled ? "disabled" : "enabled", t) == -1)
		return -1;
	rc = lines_add(arg, line);
	free(line);
	return rc;
}

/* Clear the counters of an account: the pair with addr, or (addr NULL)
 * the account counter and every pair of it. */
static int
clear_account(struct ctx *c, enum att_kind kind, const char *org,
    const char *name, const char *addr, size_t *n)
{
	unsigned char	 k[ATT_KEY_MAX];
	size_t		 len, m;
	enum store_err	 e;

	if (addr != NULL) {
		len = throttle_key(k, 'P', kind, org, name, addr);
		e = store_lock_clear(c->store, k, len, 0, &m);
	} else {
		len = throttle_key(k, 'A', kind, org, name, NULL);
		if ((e = store_lock_clear(c->store, k, len, 0, &m)) ==
		    STORE_OK) {
			*n += m;
			k[0] = 'P';
			e = store_lock_clear(c->store, k, len, 1, &m);
		}
	}
	if (e != STORE_OK)
		return store_fail(c, e);
	*n += m;
	return 0;
}

/*
 * A deleted user's failed-attempt counters and trusted addresses go with
 * it: whoever is added later under that name inherits neither a lock nor
 * the old owner's trust.
 */
static int
c_user_del(struct ctx *c, int argc, char **argv)
{
	enum store_err	 e = store_user_del(c->store, argv[0], argv[1]);
	unsigned char	 k[ATT_KEY_MAX];
	size_t		 len, n = 0, m;

	if (e == STORE_NOTFOUND)
		return fail("no user %s in organisation %s", argv[1], argv[0]);
	if (e != STORE_OK)
		return store_fail(c, e);
	if (clear_account(c, ATT_USER, argv[0], argv[1], NULL, &n) != 0)
		return 1;
	len = throttle_key(k, 'T', ATT_USER, argv[0], argv[1], NULL);
	if ((e = store_lock_clear(c->store, k, len, 1, &m)) != STORE_OK)
		return store_fail(c, e);
	return 0;
}

static int
c_user_unlock(struct ctx *c, int argc, char **argv)
{
	size_t n = 0;

	/* Unknown users are counted too: no existence check here. */
	return clear_account(c, ATT_USER, argv[0], argv[1], NULL, &n);
}

static int
c_user_list(struct ctx *c, int argc, char **argv)
{
	struct lines	 l = { 0 };
	enum store_err	 e;

	e = store_user_list(c->store, argc ? argv[0] : NULL, user_line, &l);
	if (e != STORE_OK)
		return store_fail(c, e);
	lines_print(&l);
	return 0;
}

/* A new key: 128 random bits as 32 upper-case hex characters, stored as
 * its SHA-256 digest only. */
static void
new_key(char key[CRM_KEY_HEX + 1], unsigned char digest[CRM_DIGEST_BYTES])
{
	sec_random_hex(key, CRM_KEY_BYTES);
	sec_sha256(digest, key, CRM_KEY_HEX);
}

static int
c_apikey_add(struct ctx *c, int argc, char **argv)
{
	char			 key[CRM_KEY_HEX + 1];
	unsigned char		 digest[CRM_DIGEST_BYTES];
	struct apikey_rec	 ak;
	struct user_rec		 u;
	enum store_err		 e;
	int			 rc;

	if ((rc = get_user(c, argv[0], argv[1], &u)) != 0)
		return rc;
	memset(&ak, 0, sizeof(ak));
	snprintf(ak.org, sizeof(ak.org), "%s", argv[0]);
	snprintf(ak.user, sizeof(ak.user), "%s", argv[1]);
	ak.created = (int64_t)time(NULL);
	new_key(key, digest);
	/* The user is checked again as the key is written: a user del
	 * between the two leaves no key behind. */
	e = store_apikey_put(c->store, digest, &ak, 1);
	explicit_bzero(&u, sizeof(u));
	if (e == STORE_NOTFOUND) {
		explicit_bzero(key, sizeof(key));
		return fail("no user %s in organisation %s", argv[1], argv[0]);
	}
	if (e != STORE_OK) {
		explicit_bzero(key, sizeof(key));
		return store_fail(c, e);
	}
	printf("%s\n", key);
	explicit_bzero(key, sizeof(key));
	sec_key_id(c->key_id, digest);
	c->ev.key_id = c->key_id;
	return 0;
}

/*
 * Find a key by the key itself (32 hex characters) or by the id that
 * the list commands print (the first 16 hex characters of its digest).
 */
struct find_arg {
	const char	*id;
	unsigned char	 digest[CRM_DIGEST_BYTES];
	int		 found;
};

static int
find_apikey(void *arg, const unsigned char d[CRM_DIGEST_BYTES],
    const struct apikey_rec *r)
{
	struct find_arg	*f = arg;
	char		 id[CRM_KEY_ID_HEX + 1];

	sec_key_id(id, d);
	if (strcasecmp(id, f->id) == 0) {
		memcpy(f->digest, d, CRM_DIGEST_BYTES);
		f->found++;
	}
	return 0;
}

static int
find_consumer(void *arg, const unsigned char d[CRM_DIGEST_BYTES],
    const struct consumer_rec *r)
{
	return find_apikey(arg, d, NULL);
}

/* 1 when s is n hex digits (either case). */
static int
is_hex(const char *s, size_t n)
{
	return strlen(s) == n && strspn(s, "0123456789abcdefABCDEF") == n;
}

/*
 * The digest of the key to act on: named by its public id on the command
 * line (16 hex digits, as the list commands print), or, with no
 * argument, the key itself read from standard input.  A key on the
 * command line is refused: ps and shell history would show it.
 */
static int
key_digest(struct ctx *c, int argc, char **argv, int consumer,
    unsigned char digest[CRM_DIGEST_BYTES])
{
	char		 key[CRM_NAME_MAX + 2];
	struct find_arg	 f = { .id = argc > 0 ? argv[0] : NULL };
	enum store_err	 e;

	if (argc == 0) {
		if (read_secret(consumer ? "consumer application key" :
		    "Web API key", key, sizeof(key)) != 0)
			return EX_FAIL;
		sec_sha256(digest, key, strlen(key));
		explicit_bzero(key, sizeof(key));
		return 0;
	}
	if (!is_hex(f.id, CRM_KEY_ID_HEX))
		return usage_error("give the key's id (16 hex digits, from "
		    "%s list), or the key itself on standard input; never "
		    "the key on the command line",
		    consumer ? "consumer-key" : "apikey");
	e = consumer ? store_consumer_list(c->store, find_consumer, &f) :
	    store_apikey_list(c->store, find_apikey, &f);
	if (e != STORE_OK)
		return store_fail(c, e);
	if (f.found != 1)
		return fail("no key with id %s", f.id);
	memcpy(digest, f.digest, CRM_DIGEST_BYTES);
	return 0;
}

static int
key_revoke(struct ctx *c, int argc, char **argv, int consumer)
{
	unsigned char	 digest[CRM_DIGEST_BYTES];
	enum store_err	 e;
	int		 rc;

	if ((rc = key_digest(c, argc, argv, consumer, digest)) != 0)
		return rc;
	/* Twice, as user disable (cut_user()): the second cutoff is taken
	 * after the first commit, so that a request that read the key before
	 * it has its token refused.  Revoking again is harmless. */
	e = store_key_revoke(c->store, consumer, digest, (int64_t)time(NULL),
	    1);
	if (e == STORE_OK) {
		e = store_key_revoke(c->store, consumer, digest,
		    (int64_t)time(NULL) + CLOCK_SLACK, 0);
		if (e != STORE_OK && e != STORE_NOTFOUND)
			return fail("revoked, but the second write failed "
			    "(%s: %s): run the command again, or a request "
			    "that was reading the key as it ran may keep its "
			    "token", store_strerror(e), store_detail(c->store));
		e = STORE_OK;	/* NOTFOUND: deleted meanwhile */
	}
	if (e == STORE_NOTFOUND)
		return fail("no such %s", consumer ?
		    "consumer application key" : "Web API key");
	if (e != STORE_OK)
		return store_fail(c, e);
	sec_key_id(c->key_id, digest);
	c->ev.key_id = c->key_id;
	return 0;
}

static int
c_apikey_revoke(struct ctx *c, int argc, char **argv)
{
	return key_revoke(c, argc, argv, 0);
}

struct klist {
	struct lines	 l;
	const char	*org;
};

static int
apikey_line(void *arg, const unsigned char d[CRM_DIGEST_BYTES],
    const struct apikey_rec *r)
{
	struct klist	*k = arg;
	char		 id[CRM_KEY_ID_HEX + 1], t[32], *line;
	int		 rc;

	if (k->org != NULL && strcmp(k->org, r->org) != 0)
		return 0;
	sec_key_id(id, d);
	fmt_time(t, sizeof(t), r->created);
	/* Columns: org, user, id, state, created. */
	if (asprintf(&line, "%s\t%s\t%s\t%s\t%s", r->org, r->user, id,
	    r->revoked ? "revoked" : "active", t) == -1)
		return -1;
	rc = lines_add(&k->l, line);
	free(line);
	return rc;
}

static int
c_apikey_list(struct ctx *c, int argc, char **argv)
{
	struct klist	 k = { .org = argc ? argv[0] : NULL };
	enum store_err	 e;

	if ((e = store_apikey_list(c->store, apikey_line, &k)) != STORE_OK)
		return store_fail(c, e);
	lines_print(&k.l);
	return 0;
}

static int
c_consumer_add(struct ctx *c, int argc, char **argv)
{
	char			 key[CRM_KEY_HEX + 1], *pos[2];
	unsigned char		 digest[CRM_DIGEST_BYTES];
	struct consumer_rec	 ck;
	enum store_err		 e;
	int			 rc;

	memset(&ck, 0, sizeof(ck));
	if ((rc = parse_units(argc, argv, pos, 2, ck.units, &ck.nunits)) != 0 ||
	    (rc = check_name("organisation", pos[0])) != 0 ||
	    (rc = check_name("application", pos[1])) != 0)
		return rc;
	snprintf(ck.org, sizeof(ck.org), "%s", pos[0]);
	snprintf(ck.app, sizeof(ck.app), "%s", pos[1]);
	ck.created = (int64_t)time(NULL);
	new_key(key, digest);
	if ((e = store_consumer_put(c->store, digest, &ck, 1)) != STORE_OK)
		return store_fail(c, e);
	printf("%s\n", key);
	explicit_bzero(key, sizeof(key));
	sec_key_id(c->key_id, digest);
	c->ev.key_id = c->key_id;
	c->ev.org = pos[0];
	c->ev.usr = pos[1];
	snprintf(c->unit, sizeof(c->unit), "%s", ck.units[0]);
	c->ev.unit = c->unit;
	return 0;
}

static int
c_consumer_revoke(struct ctx *c, int argc, char **argv)
{
	return key_revoke(c, argc, argv, 1);
}

static int
consumer_line(void *arg, const unsigned char d[CRM_DIGEST_BYTES],
    const struct consumer_rec *r)
{
	struct klist	*k = arg;
	char		 id[CRM_KEY_ID_HEX + 1], t[32], *line;
	char		 units[CRM_UNITS_MAX * (CRM_NAME_MAX + 1)];
	int		 rc;

	if (k->org != NULL && strcmp(k->org, r->org) != 0)
		return 0;
	sec_key_id(id, d);
	fmt_time(t, sizeof(t), r->created);
	join_units(units, sizeof(units),
	    (char (*)[CRM_NAME_MAX + 1])r->units, r->nunits);
	if (asprintf(&line, "%s\t%s\t%s\t%s\t%s\t%s", r->org, r->app, id,
	    units, r->revoked ? "revoked" : "active", t) == -1)
		return -1;
	rc = lines_add(&k->l, line);
	free(line);
	return rc;
}

static int
c_consumer_list(struct ctx *c, int argc, char **argv)
{
	struct klist	 k = { .org = argc ? argv[0] : NULL };
	enum store_err	 e;

	if ((e = store_consumer_list(c->store, consumer_line, &k)) != STORE_OK)
		return store_fail(c, e);
	lines_print(&k.l);
	return 0;
}

static int
c_access_add(struct ctx *c, int argc, char **argv)
{
	const char		*org = NULL, *cii = NULL, *ari = NULL;
	const char		*ident = NULL;
	char			 secret[CRM_SECRET_MAX + 2];
	unsigned char		 digest[CRM_DIGEST_BYTES];
	struct access_rec	 at;
	enum store_err		 e;
	int			 rc, code = 0;

	for (int i = 0; i < argc; i++) {
		const char **dst = NULL;

		if (strcmp(argv[i], "--contact") == 0)
			dst = &cii;
		else if (strcmp(argv[i], "--accounts-receivable") == 0)
			dst = &ari;
		else if (strcmp(argv[i], "--identifier") == 0)
			dst = &ident;
		else if (strcmp(argv[i], "--authentication-code") == 0) {
			/* The code itself comes on standard input. */
			if (code)
				return usage_error("%s given twice", argv[i]);
			code = 1;
			continue;
		} else if (argv[i][0] == '-' && argv[i][1] == '-')
			return usage_error("unknown option %s", argv[i]);
		else if (org == NULL) {
			org = argv[i];
			continue;
		} else
			return usage_error("too many arguments (the "
			    "authentication code is read from standard "
			    "input, never taken from the command line)");
		if (i + 1 >= argc)
			return usage_error("%s needs a value", argv[i]);
		if (*dst != NULL)
			return usage_error("%s given twice", argv[i]);
		*dst = argv[++i];
	}
	if (org == NULL || cii == NULL)
		return usage_error("ORG and --contact are needed");
	if (code == (ident != NULL))
		return usage_error("give one of --authentication-code or "
		    "--identifier ID");
	if ((rc = check_name("organisation", org)) != 0 ||
	    (rc = check_name("contact", cii)) != 0 ||
	    (ari != NULL && (rc = check_name("accounts receivable", ari))) ||
	    (ident != NULL && (rc = check_name("identifier", ident))))
		return rc;
	memset(&at, 0, sizeof(at));
	snprintf(at.contact, sizeof(at.contact), "%s", cii);
	snprintf(at.ari, sizeof(at.ari), "%s", ari ? ari : "");
	at.created = (int64_t)time(NULL);
	if (read_secret(code ? "authentication code" : "pass code", secret,
	    sizeof(secret)) != 0)
		return EX_FAIL;
	if (code) {
		sec_sha256(digest, secret, strlen(secret));
		rc = 0;
	} else if ((rc = sec_pwhash(at.passhash, secret, strlen(secret),
	    &c->cfg)) != 0)
		rc = fail("pass code hashing failed (out of memory?)");
	explicit_bzero(secret, sizeof(secret));
	if (rc != 0)
		return rc;
	e = store_access_add(c->store, org, code ? digest : NULL, ident, &at);
	explicit_bzero(digest, sizeof(digest));
	if (e == STORE_EXISTS)
		return fail("that access token already exists in %s", org);
	if (e != STORE_OK)
		return store_fail(c, e);
	c->ev.org = org;
	c->ev.identifier = ident;
	return 0;
}

static int
key_line(void *arg, const struct sigkey *k)
{
	char t[32], until[32], *line;
	int  rc;

	fmt_time(t, sizeof(t), k->created);
	if (k->expires != 0)
		fmt_time(until, sizeof(until), k->expires);
	/* Columns: kid, created, state, verifies until (- for current). */
	if (asprintf(&line, "%s\t%s\t%s\t%s", k->kid, t,
	    k->current ? "current" : "previous",
	    k->expires != 0 ? until : "-") == -1)
		return -1;
	rc = lines_add(arg, line);
	free(line);
	return rc;
}

static int
c_key_list(struct ctx *c, int argc, char **argv)
{
	struct lines	 l = { 0 };
	enum store_err	 e;

	if ((e = store_sigkey_list(c->store, key_line, &l)) != STORE_OK)
		return store_fail(c, e);
	lines_print(&l);
	return 0;
}

static int
c_key_rotate(struct ctx *c, int argc, char **argv)
{
	struct sigkey	 old, new;
	char		 until[32];
	enum store_err	 e;

	e = store_sigkey_rotate(c->store, (int64_t)time(NULL),
	    c->cfg.token_ttl, &old, &new);
	if (e != STORE_OK)
		return store_fail(c, e);
	fmt_time(until, sizeof(until), old.expires);
	printf("%s is the current key; %s verifies until %s\n", new.kid,
	    old.kid, until);
	snprintf(c->kid, sizeof(c->kid), "%s", new.kid);
	c->ev.kid = c->kid;
	explicit_bzero(&old, sizeof(old));
	explicit_bzero(&new, sizeof(new));
	return 0;
}

static int
c_key_retire(struct ctx *c, int argc, char **argv)
{
	struct sigkey	 new;
	char		 kid[CRM_KID_HEX + 1];
	enum store_err	 e;
	int		 made;

	if (!is_hex(argv[0], CRM_KID_HEX))
		return usage_error("KID is %d hex digits, as key list "
		    "prints it", CRM_KID_HEX);
	for (size_t i = 0; i <= CRM_KID_HEX; i++)
		kid[i] = (char)toupper((unsigned char)argv[0][i]);
	e = store_sigkey_retire(c->store, kid, &new, &made);
	if (e == STORE_NOTFOUND)
		return fail("no signing key %s", kid);
	if (e != STORE_OK)
		return store_fail(c, e);
	if (made)
		printf("%s is the current key; ", new.kid);
	printf("%s is retired: it verifies nothing any more\n", kid);
	snprintf(c->kid, sizeof(c->kid), "%s", kid);
	c->ev.kid = c->kid;
	explicit_bzero(&new, sizeof(new));
	return 0;
}

static int
c_key_export(struct ctx *c, int argc, char **argv)
{
	struct sigkey	 k;
	char		 b64[64];
	enum store_err	 e;

	if ((e = store_sigkey_current(c->store, &k)) != STORE_OK)
		return store_fail(c, e);
	b64url_encode(b64, k.secret, sizeof(k.secret));
	printf("%s %s\n", k.kid, b64);
	snprintf(c->kid, sizeof(c->kid), "%s", k.kid);
	c->ev.kid = c->kid;
	explicit_bzero(&k, sizeof(k));
	explicit_bzero(b64, sizeof(b64));
	return 0;
}

static int
c_released_count(struct ctx *c, int argc, char **argv)
{
	size_t		 n;
	enum store_err	 e;

	if ((e = store_released_count(c->store, &n)) != STORE_OK)
		return store_fail(c, e);
	printf("%zu\n", n);
	return 0;
}

/* What GET metrics gives, from a copy of the file (never mapped: a file
 * truncated meanwhile cannot harm crmauthctl) and one read of the store,
 * which may be down (crmauth_store_up 0, as in a scrape). */
static int
c_stats(struct ctx *c, int argc, char **argv)
{
	struct metrics		 m;
	struct metrics_gauges	 g;
	struct store		*st = NULL;
	char			 err[CRM_ERR_MAX];
	int			 json = argc == 1, rc = 0;

	if (argc == 1 && strcmp(argv[0], "--json") != 0)
		return usage_error("stats takes only --json");
	if (strcmp(c->cfg.metrics, "on") != 0)
		return fail("metrics = off: responders count nothing");
	if (metrics_open(&m, &c->cfg, METRICS_COPY, err, sizeof(err)) == -1)
		return fail("%s%s", err, errno == ENOENT ? " (nothing counted "
		    "yet: a responder makes it at its first request)" : "");
	if (store_open(&st, &c->cfg, STORE_RDONLY, err, sizeof(err)) !=
	    STORE_OK) {
		fprintf(stderr, "crmauthctl: %s\n", err);
		st = NULL;
	}
	metrics_gauges_read(st, &c->cfg, (int64_t)time(NULL), &g);
	store_close(st);
	if (stats_print(stdout, &m, &g, json) == -1)
		rc = fail("out of memory");
	metrics_close(&m);
	return rc;
}

static int
c_released_prune(struct ctx *c, int argc, char **argv)
{
	size_t		 n;
	enum store_err	 e;

	e = store_released_prune(c->store, (int64_t)time(NULL), &n);
	if (e != STORE_OK)
		return store_fail(c, e);
	printf("pruned %zu\n", n);
	return 0;
}

static int
c_backup(struct ctx *c, int argc, char **argv)
{
	enum store_err e;

	if ((e = store_backup(c->store, argv[0])) != STORE_OK)
		return store_fail(c, e);
	printf("backup of %s written to %s\n", c->store->where, argv[0]);
	return 0;
}

/* Called without the store open: the store has no say in it. */
static int
c_events_rotate(struct ctx *c, int argc, char **argv)
{
	char		 err[CRM_ERR_MAX];
	long long	 keep = 7;
	const char	*why;
	enum audit_sink	 sink;

	if (argc == 2 && strcmp(argv[0], "--keep") == 0) {
		if (parse_int(argv[1], 1, 1000, &keep, &why) == -1)
			return usage_error("--keep %s %s (1 to 1000)", argv[1],
			    why);
	} else if (argc != 0)
		return usage_error("events rotate takes only --keep N");
	if (audit_sink_parse(c->cfg.audit_log, &sink) == -1 ||
	    sink != AUDIT_FILE)
		return fail("audit_log = %s in %s: events go to no file here",
		    c->cfg.audit_log, c->cfg.path);
	switch (audit_rotate(c->cfg.audit_log, (int)keep, err, sizeof(err))) {
	case -1:
		return fail("%s", err);
	case 0:
		printf("%s does not exist: nothing to rotate\n",
		    c->cfg.audit_log);
		break;
	default:
		printf("%s is now %s.1; %lld kept\n", c->cfg.audit_log,
		    c->cfg.audit_log, keep);
	}
	return 0;
}

/* Called without the store open: it is about to be replaced. */
static int
c_restore(struct ctx *c, int argc, char **argv)
{
	char err[CRM_ERR_MAX];

	if (store_restore(&c->cfg, argv[0], err, sizeof(err)) != STORE_OK)
		return fail("%s", err);
	printf("%s restored from %s\n", c->cfg.db_path, argv[0]);
	return 0;
}

static void
print_counts(const char *verb, const char *file, const struct xcount *n)
{
	printf("%s %s: %zu users, %zu Web API keys, %zu consumer keys, "
	    "%zu access tokens, %zu signing keys, %zu released tokens, "
	    "%zu cutoffs", verb, file, n->users, n->apikeys, n->consumers,
	    n->access, n->sigkeys, n->released, n->cutoffs);
	if (n->skipped > 0)
		printf(" (%zu past their time left out)", n->skipped);
	putchar('\n');
}

static int
c_export(struct ctx *c, int argc, char **argv)
{
	struct xcount	 n;
	char		 err[CRM_ERR_MAX];

	if (store_export(c->store, argv[0], &n, err, sizeof(err)) == -1)
		return fail("%s", err);
	print_counts("exported to", argv[0], &n);
	return 0;
}

static int
c_import(struct ctx *c, int argc, char **argv)
{
	struct xcount	 n;
	char		 err[CRM_ERR_MAX];

	if (store_import(c->store, argv[0], &n, err, sizeof(err)) == -1)
		return fail("%s", err);
	print_counts("imported from", argv[0], &n);
	return 0;
}

static int
c_token_verify(struct ctx *c, int argc, char **argv)
{
	char		 tok[CRM_TOKEN_MAX + 2];
	struct claims	 cl;
	json_object	*o;
	enum tok_err	 e;

	if (read_secret("token", tok, sizeof(tok)) != 0)
		return EX_FAIL;
	e = tok_check(c->store, tok, strlen(tok), (int64_t)time(NULL),
	    c->cfg.token_ttl, &cl);
	explicit_bzero(tok, sizeof(tok));
	if (e != TOK_OK) {
		tok_claims_free(&cl);
		if (e == TOK_STORE)
			return fail("%s: %s", tok_strerror(e),
			    store_detail(c->store));
		return fail("%s", tok_strerror(e));
	}
	/* Verified JSON: json-c reads it back, to print it indented. */
	if ((o = json_tokener_parse(cl.json)) == NULL) {
		tok_claims_free(&cl);
		return fail("out of memory");
	}
	puts(json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	tok_claims_free(&cl);
	return 0;
}

struct locks {
	struct lines	 l;
	const struct config *cfg;
	int64_t		 now;
};

/* A counter at its limit in its window: a lock in force. */
static int
lock_line(void *arg, char type, const char *subject, size_t len,
    uint32_t count, int64_t end)
{
	struct locks	*k = arg;
	uint32_t	 limit = type == 'P' ? k->cfg->lockout_threshold :
			    k->cfg->lockout_account_threshold;
	char		 t[32], *line, safe[ATT_SUBJECT_MAX + 1];
	size_t		 i;
	int		 rc;

	if (count < limit || end <= k->now)
		return 0;
	/* Names came from clients (throttle.c took their tabs and other
	 * control characters out already): none reaches the terminal. */
	for (i = 0; i < len && i < ATT_SUBJECT_MAX; i++)
		safe[i] = subject[i] == '\t' || ((unsigned char)subject[i] >=
		    0x20 && subject[i] != 0x7f) ? subject[i] : '?';
	safe[i] = '\0';
	fmt_time(t, sizeof(t), end);
	/* kind, org, name, address (* for all), failures, until */
	if (asprintf(&line, "%s\t%u\t%s", safe, count, t) == -1)
		return -1;
	rc = lines_add(&k->l, line);
	free(line);
	return rc;
}

static int
c_lock_list(struct ctx *c, int argc, char **argv)
{
	struct locks	 k = { .cfg = &c->cfg, .now = (int64_t)time(NULL) };
	enum store_err	 e;

	if ((e = store_lock_list(c->store, lock_line, &k)) != STORE_OK)
		return store_fail(c, e);
	lines_print(&k.l);
	return 0;
}

/*
 * lock clear user ORG USER [ADDRESS], apikey ID [ADDRESS], consumer-key
 * ID [ADDRESS], access-token ORG IDENTIFIER [ADDRESS], address ADDRESS.
 * Without an address: the account's own lock and those of every address.
 */
static int
c_lock_clear(struct ctx *c, int argc, char **argv)
{
	unsigned char	 k[ATT_KEY_MAX];
	char		 id[CRM_KEY_ID_HEX + 1];
	const char	*kind = argv[0], *addr = NULL;
	size_t		 n = 0, len;
	enum store_err	 e;
	int		 rc, names;

	if (strcmp(kind, "address") == 0) {
		if (argc != 2)
			return usage_error("lock clear address ADDRESS");
		c->ev.address = argv[1];
		len = throttle_key(k, 'N', ATT_USER, NULL, NULL, argv[1]);
		if ((e = store_lock_clear(c->store, k, len, 0, &n)) !=
		    STORE_OK)
			return store_fail(c, e);
		printf("cleared %zu\n", n);
		return 0;
	}
	names = strcmp(kind, "user") == 0 ||
	    strcmp(kind, "access-token") == 0 ? 2 : 1;
	if (names == 1 && strcmp(kind, "apikey") != 0 &&
	    strcmp(kind, "consumer-key") != 0)
		return usage_error("unknown kind %s (user, apikey, "
		    "consumer-key, access-token or address)", kind);
	if (argc != 1 + names && argc != 2 + names)
		return usage_error("wrong number of arguments");
	if (argc == 2 + names)
		c->ev.address = addr = argv[1 + names];
	if (names == 2) {
		c->ev.org = argv[1];
		if (kind[0] == 'u')
			c->ev.usr = argv[2];
		else
			c->ev.identifier = argv[2];
	}
	if (names == 2)
		rc = clear_account(c, kind[0] == 'u' ? ATT_USER : ATT_IDENT,
		    argv[1], argv[2], addr, &n);
	else {
		if (!is_hex(argv[1], CRM_KEY_ID_HEX))
			return usage_error("ID is the key's 16 hex digits, as "
			    "lock list prints it");
		for (size_t i = 0; i <= CRM_KEY_ID_HEX; i++)
			id[i] = (char)toupper((unsigned char)argv[1][i]);
		snprintf(c->key_id, sizeof(c->key_id), "%s", id);
		c->ev.key_id = c->key_id;
		if (kind[0] == 'a')
			rc = clear_account(c, ATT_APIKEY, NULL, id, addr, &n);
		else if ((rc = clear_account(c, ATT_CONSUMER, NULL, id, addr,
		    &n)) == 0)
			rc = clear_account(c, ATT_CODE, NULL, id, addr, &n);
	}
	if (rc == 0)
		printf("cleared %zu\n", n);
	return rc;
}

static const struct cmd cmds[] = {
	{ "init", NULL, c_init, EV_CHANGE, 0, 2, "[--group GROUP]",
	    "create the store and a first signing key (idempotent); with "
	    "--group, shared with that group (02770, files 0660)" },
	{ "user", "add", c_user_add, EV_CHANGE, 2, 2 + 2 * CRM_UNITS_MAX,
	    "ORG USER --unit U [--unit U2 ...]",
	    "add a user; first --unit is the default; password from stdin" },
	{ "user", "passwd", c_user_passwd, EV_CHANGE | EV_ORG_USR, 2, 2, "ORG USER",
	    "set a new password, read from stdin" },
	{ "user", "disable", c_user_disable, EV_CHANGE | EV_ORG_USR, 2, 2, "ORG USER",
	    "refuse the user's logins, Web API keys and tokens issued so far" },
	{ "user", "enable", c_user_enable, EV_CHANGE | EV_ORG_USR, 2, 2, "ORG USER",
	    "undo disable" },
	{ "user", "del", c_user_del, EV_CHANGE | EV_ORG_USR, 2, 2, "ORG USER",
	    "delete the user, its Web API keys, counters and trusted "
	    "addresses" },
	{ "user", "unlock", c_user_unlock, EV_CHANGE | EV_ORG_USR, 2, 2, "ORG USER",
	    "clear the user's failed-attempt counters (every address)" },
	{ "user", "logout", c_user_logout, EV_CHANGE | EV_ORG_USR, 2, 2, "ORG USER",
	    "refuse every token issued to the user so far" },
	{ "user", "list", c_user_list, 0, 0, 1, "[ORG]",
	    "org, user, units, state, created" },
	{ "apikey", "add", c_apikey_add, EV_CHANGE | EV_ORG_USR, 2, 2, "ORG USER",
	    "print a new Web API key for the user" },
	{ "apikey", "revoke", c_apikey_revoke, EV_CHANGE, 0, 1, "[ID]",
	    "revoke a Web API key (by id, or the key from stdin) and refuse "
	    "the tokens its user was issued so far" },
	{ "apikey", "list", c_apikey_list, 0, 0, 1, "[ORG]",
	    "org, user, id, state, created (never whole keys)" },
	{ "consumer-key", "add", c_consumer_add, EV_CHANGE, 2, 2 + 2 * CRM_UNITS_MAX,
	    "ORG APP --unit U [--unit U2 ...]",
	    "print a new consumer application key" },
	{ "consumer-key", "revoke", c_consumer_revoke, EV_CHANGE, 0, 1, "[ID]",
	    "revoke a consumer application key (by id, or the key from stdin) "
	    "and refuse the tokens its application was issued so far" },
	{ "consumer-key", "list", c_consumer_list, 0, 0, 1, "[ORG]",
	    "org, app, id, units, state, created" },
	{ "access-token", "add", c_access_add, EV_CHANGE, 4, 7,
	    "ORG --contact CII [--accounts-receivable ARI] "
	    "(--authentication-code | --identifier ID)",
	    "add an access token; the authentication code, or the pass code "
	    "of the identifier, is read from stdin" },
	{ "key", "rotate", c_key_rotate, EV_CHANGE, 0, 0, "",
	    "new current signing key; the old one verifies until its tokens "
	    "expire" },
	{ "key", "retire", c_key_retire, EV_CHANGE, 1, 1, "KID",
	    "the key verifies nothing from now on (after a leak); a new "
	    "current key is made first if it was the current one" },
	{ "key", "list", c_key_list, 0, 0, 0, "",
	    "kid, created, state, verifies until" },
	{ "key", "export", c_key_export, EV_CHANGE, 0, 0, "",
	    "print \"KID SECRET\" of the current signing key" },
	{ "released", "count", c_released_count, 0, 0, 0, "",
	    "number of released token ids kept" },
	{ "released", "prune", c_released_prune, EV_CHANGE, 0, 0, "",
	    "delete released ids past their exp" },
	{ "stats", NULL, c_stats, NO_STORE, 0, 1, "[--json]",
	    "the node's figures, as GET metrics gives them: the counters not "
	    "0 and latency per method; with --json every series" },
	{ "backup", NULL, c_backup, EV_CHANGE | EV_FILE, 1, 1, "FILE",
	    "a consistent, compacted copy of the store, taken while it serves" },
	{ "events", "rotate", c_events_rotate, EV_CHANGE | NO_STORE, 0, 2,
	    "[--keep N]",
	    "rename the events file (audit_log) to FILE.1, FILE.1 to FILE.2 "
	    "..., keeping N (7); the programs write to a new FILE at once" },
	{ "restore", NULL, c_restore, EV_CHANGE | EV_FILE | NO_STORE, 1, 1,
	    "FILE",
	    "replace the store with a backup (stop the service first)" },
	{ "export", NULL, c_export, EV_CHANGE | EV_FILE, 1, 1, "FILE",
	    "every record as JSON lines (0600; it holds the signing keys), "
	    "for import into a store of either backend" },
	{ "import", NULL, c_import, EV_CHANGE | EV_FILE, 1, 1, "FILE",
	    "load an export into an empty store (after crmauthctl init), "
	    "all of it or nothing" },
	{ "token", "verify", c_token_verify, 0, 0, 0, "",
	    "token from stdin: exit 0 and print the claims if it is usable" },
	{ "lock", "list", c_lock_list, 0, 0, 0, "",
	    "every lock in force: kind, org, name, address (* all), "
	    "failures, until" },
	{ "lock", "clear", c_lock_clear, EV_CHANGE, 2, 4,
	    "user ORG USER | apikey ID | consumer-key ID | access-token ORG "
	    "IDENTIFIER [ADDRESS] | address ADDRESS",
	    "clear a lock (without ADDRESS: the account's and every "
	    "address's)" },
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static void
usage(FILE *f)
{
	fputs("usage: crmauthctl [-c FILE] COMMAND ...\n\n", f);
	for (size_t i = 0; i < NCMDS; i++) {
		char words[64];

		snprintf(words, sizeof(words), "%s%s%s", cmds[i].w1,
		    cmds[i].w2 ? " " : "", cmds[i].w2 ? cmds[i].w2 : "");
		fprintf(f, "  %s %s\n      %s\n", words, cmds[i].args,
		    cmds[i].help);
	}
	fprintf(f, "\nConfiguration: -c FILE, else $CRMAUTH_CONF, else %s\n"
	    "Exit status: 0 success, 1 failure, 2 usage error.\n",
	    config_place());
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctx	 c;
	const char	*conf = NULL;
	char		 err[CRM_ERR_MAX];
	enum store_err	 e;
	int		 ch, nargs, rc, skip;

	log_init("crmauthctl");
	opterr = 0;	/* our own one-line message instead */
	while ((ch = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("crmauthctl %s\n", PACKAGE_VERSION);
			return 0;
		default:
			if (optopt == 'c')
				return usage_error("-c needs a FILE");
			return usage_error("unknown option '%s'",
			    argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return EX_USAGE;
	}
	for (size_t i = 0; i < NCMDS; i++) {
		if (strcmp(argv[0], cmds[i].w1) != 0)
			continue;
		if (cmds[i].w2 != NULL && (argc < 2 ||
		    strcmp(argv[1], cmds[i].w2) != 0))
			continue;
		cur = &cmds[i];
		break;
	}
	if (cur == NULL)
		return usage_error("unknown command '%s%s%s'", argv[0],
		    argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
	skip = cur->w2 != NULL ? 2 : 1;
	nargs = argc - skip;
	if (nargs < cur->min || nargs > cur->max)
		return usage_error("wrong number of arguments");

	if (sec_init() == -1)
		return fail("libsodium failed to initialise");
	config_defaults(&c.cfg);
	if (config_find(&c.cfg, conf, err, sizeof(err)) == -1)
		return fail("%s", err);
	if (cur->fn == c_init && nargs > 0) {
		gid_t gid;

		if (nargs != 2 || strcmp(argv[skip], "--group") != 0)
			return usage_error("init takes only --group GROUP");
		if (pw_group_id(argv[skip + 1], &gid) == -1)
			return fail("no group %s", argv[skip + 1]);
		c.cfg.db_group = (long)gid;
	}
	memset(&c.ev, 0, sizeof(c.ev));
	if (cur->ev & NO_STORE)
		rc = cur->fn(&c, nargs, argv + skip);
	else {
		e = store_open(&c.store, &c.cfg, cur->fn == c_init ?
		    STORE_CREATE : 0, err, sizeof(err));
		if (e != STORE_OK)
			return fail("%s", err);
		rc = cur->fn(&c, nargs, argv + skip);
		store_close(c.store);
	}
	if (rc == 0)
		admin_event(&c, cur, nargs, argv + skip);
	return rc;
}
