/*
 * The store, whatever the engine (store.h): opening by name, and the
 * rules every backend follows alike, written once here: how attempts are
 * counted and given back, and what a schema version says.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"

const char *
store_strerror(enum store_err e)
{
	switch (e) {
	case STORE_OK:
		return "success";
	case STORE_NOTFOUND:
		return "not found";
	case STORE_EXISTS:
		return "already exists";
	case STORE_NOTINIT:
		return "store not initialised (run crmauthctl init)";
	case STORE_VERSION:
		return "store was made by a newer crmauth (schema version): "
		    "run that version, or restore the backup taken before it";
	case STORE_FULL:
		return "store is full";
	case STORE_CORRUPT:
		return "store holds a record that cannot be read";
	case STORE_UNAVAILABLE:
		return "the database cannot be reached";
	case STORE_ERROR:
		break;
	}
	return "store error";
}

/* The backends, by the name the configuration's "store" gives. */
static const struct {
	const char	*name;
	enum store_err	 (*open)(struct store **, const struct config *, int,
			    char *, size_t);
	enum store_err	 (*restore)(const struct config *, const char *,
			    char *, size_t);
} backends[] = {
	{ "lmdb", lmdb_store_open, lmdb_store_restore },
#ifndef CRMAUTH_SHARED_HOSTING
	{ "postgresql", pgsql_store_open, NULL },
#endif
};

static int
backend(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(cfg->store, backends[i].name) == 0)
			return (int)i;
	snprintf(err, errlen, "store \"%s\" is not built into this crmauth",
	    cfg->store);
	return -1;
}

enum store_err
store_open(struct store **out, const struct config *cfg, int flags,
    char *err, size_t errlen)
{
	int i;

	*out = NULL;
	if ((i = backend(cfg, err, errlen)) == -1)
		return STORE_ERROR;
	return backends[i].open(out, cfg, flags, err, errlen);
}

enum store_err
store_restore(const struct config *cfg, const char *file, char *err,
    size_t errlen)
{
	int i;

	if ((i = backend(cfg, err, errlen)) == -1)
		return STORE_ERROR;
	if (backends[i].restore == NULL) {
		snprintf(err, errlen, "restore is for a store of files (lmdb); "
		    "restore a %s database with its own tools, or load an "
		    "export with crmauthctl import", cfg->store);
		return STORE_ERROR;
	}
	return backends[i].restore(cfg, file, err, errlen);
}

/* ---- what a token method reads ------------------------------------------------ */

void
lookup_reset(struct lookup *l)
{
	memset(&l->key, 0, sizeof(l->key));
	l->user.pwhash[0] = '\0';
	l->user.units[0][0] = '\0';
	l->user.nunits = 0;
	l->user.disabled = 0;
	l->user.created = l->user.not_before = 0;
	memset(&l->apikey, 0, sizeof(l->apikey));
	l->consumer.org[0] = l->consumer.app[0] = '\0';
	l->consumer.units[0][0] = '\0';
	l->consumer.nunits = 0;
	l->consumer.revoked = 0;
	l->consumer.created = 0;
	memset(&l->access, 0, sizeof(l->access));
	l->app_cutoff = 0;
	l->user_found = l->apikey_found = l->consumer_found = 0;
	l->access_found = l->access_legacy = 0;
}

void
lookup_wipe(struct lookup *l)
{
	explicit_bzero(&l->key, sizeof(l->key));
	explicit_bzero(l->user.pwhash, sizeof(l->user.pwhash));
	explicit_bzero(l->access.passhash, sizeof(l->access.passhash));
}

/* ---- counting attempts ------------------------------------------------------- */

/* Until when r is held: the latest end of a counter at its limit within
 * its window (an exempt one not for a trusted address); 0: not held. */
static int64_t
att_hold(const struct att_reserve *r, const struct att_value cur[],
    int trusted)
{
	int64_t	 until = 0;

	for (size_t i = 0; i < r->n; i++) {
		const struct att_counter *c = &r->c[i];

		if (!cur[i].exists || cur[i].end <= r->now)
			continue;	/* no window open */
		if (cur[i].count >= c->limit && !(c->exempt && trusted) &&
		    cur[i].end > until)
			until = cur[i].end;
	}
	return until;
}

int
att_reserve_rule(struct att_reserve *r, const struct att_value cur[],
    int trusted, struct att_value next[])
{
	size_t i;

	r->trusted = trusted;
	/* Held: then nothing is counted. */
	if ((r->locked_until = att_hold(r, cur, trusted)) > r->now)
		return -1;
	/* Else one more in each, in its window or a new one. */
	for (i = 0; i < r->n; i++) {
		next[i].exists = 1;
		if (!cur[i].exists || cur[i].end <= r->now) {
			next[i].end = r->now + r->window;
			next[i].count = 1;
		} else {
			next[i].end = cur[i].end;
			next[i].count = cur[i].count < UINT32_MAX ?
			    cur[i].count + 1 : cur[i].count;
		}
		r->c[i].end = next[i].end;
	}
	return 0;
}

void
att_peek_rule(struct att_reserve *r, const struct att_value cur[],
    int64_t trust_end)
{
	r->trusted = trust_end > r->now;
	r->locked_until = att_hold(r, cur, r->trusted);
	r->settle = r->trustlen > 0 && r->trust_until > r->now &&
	    att_trust_rule(trust_end, r->trust_until);
	for (size_t i = 0; i < r->n; i++)
		if (att_settle_rule(&r->c[i], &cur[i], r->now))
			r->settle = 1;
}

int
att_settle_rule(const struct att_counter *c, const struct att_value *cur,
    int64_t now)
{
	return c->clear && cur->exists && cur->count > 0 && cur->end > now;
}

int
att_giveback_rule(const struct att_counter *c, const struct att_value *cur,
    int success, struct att_value *next)
{
	/* Only in the window the reservation counted in. */
	if (!cur->exists || cur->end != c->end)
		return -1;
	if ((success && c->clear) || cur->count <= 1)
		return 1;
	*next = *cur;
	next->count--;
	return 0;
}

int
att_trust_rule(int64_t cur, int64_t next)
{
	return cur < next - ATT_TRUST_SLACK;
}

/* ---- schema versions ---------------------------------------------------------- */

enum store_err
store_schema_check(const char *text, size_t len)
{
	char		 ver[16];
	long long	 v;
	const char	*why;

	if (len == 0 || len >= sizeof(ver))
		return STORE_CORRUPT;
	memcpy(ver, text, len);
	ver[len] = '\0';
	if (parse_int(ver, 1, 1000000, &v, &why) == -1)
		return STORE_CORRUPT;
	return v > STORE_SCHEMA_VERSION ? STORE_VERSION : STORE_OK;
}

/* ---- the store's directory ------------------------------------------------- */

int
store_make_dir(const struct config *cfg, char *detail, size_t len)
{
	char	 path[sizeof(cfg->db_path)];
	char	*p;
	int	 shared = cfg->db_group != -1;

	/* Missing parents first, as the store needs them: 0700, or for a
	 * store shared with a group 0750 and that group's, so that its
	 * members reach it and nobody else looks in.  Those there already
	 * are left as they are. */
	snprintf(path, sizeof(path), "%s", cfg->db_path);
	for (p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(path, shared ? 0750 : 0700) == 0) {
			if (shared && (chown(path, (uid_t)-1,
			    (gid_t)cfg->db_group) == -1 ||
			    chmod(path, 0750) == -1)) {
				snprintf(detail, len, "%s: %s", path,
				    strerror(errno));
				return -1;
			}
		} else if (errno != EEXIST) {
			snprintf(detail, len, "mkdir %s: %s", path,
			    strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(cfg->db_path, 0700) == -1 && errno != EEXIST) {
		snprintf(detail, len, "mkdir %s: %s", cfg->db_path,
		    strerror(errno));
		return -1;
	}
	/* Shared with the web server's group: setgid, so that every file
	 * made in it belongs to the group too. */
	if (cfg->db_group != -1 &&
	    (chown(cfg->db_path, (uid_t)-1, (gid_t)cfg->db_group) == -1 ||
	    chmod(cfg->db_path, 02770) == -1)) {
		snprintf(detail, len, "%s: %s", cfg->db_path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- access tokens' ids ------------------------------------------------------- */

void
store_access_id(unsigned char id[CRM_DIGEST_BYTES], const char *org,
    const unsigned char *code, const char *ident)
{
	if (code != NULL)
		sec_tagged_hash(id, 'C', org, code, CRM_DIGEST_BYTES);
	else
		sec_tagged_hash(id, 'I', org, ident, strlen(ident));
}

/* ---- names ------------------------------------------------------------------------ */

_Static_assert(CRM_NAME_MAX == 256, "store_name_problem's words");

const char *
store_name_problem(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > CRM_NAME_MAX)
		return "must be 1 to 256 bytes";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "must not contain control characters";
	if (!utf8_valid(s))
		return "must be UTF-8";
	return NULL;
}
