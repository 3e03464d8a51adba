/*
 * crmauthctl export and import (crmauthctl(8)): every record of a store as
 * JSON lines, read back into an empty store of either backend.  The
 * format is the backends' common ground, so it is written once, here:
 *
 *   {"format":"crmauth-export","version":1,"schema":1,"store":"lmdb",
 *    "made":"2026-11-29T12:00:00Z","codes_key":HEX16 (with a wrap.key)}
 *   {"type":"user","org":..,"name":..,"pwhash":"$argon2id$..",
 *    "units":[..],"disabled":false,"created":N,"not_before":N}
 *   {"type":"apikey","digest":HEX64,"org":..,"user":..,"revoked":false,
 *    "created":N}
 *   {"type":"consumer_key","digest":HEX64,"org":..,"app":..,"units":[..],
 *    "revoked":false,"created":N}
 *   {"type":"access_token","id":HEX64,"org":..,"code_sha256":HEX64 or
 *    "code_keyed":HEX64 or "identifier":..,"contact":..,"ari":..,
 *    "passhash":..,"created":N}
 *   {"type":"signing_key","kid":HEX16,"secret":B64URL,"created":N,
 *    "expires":N,"current":true}
 *   {"type":"released","jti":HEX32,"exp":N}
 *   {"type":"cutoff","org":..,"app":..,"cutoff":N}
 *   {"end":true,"records":N}
 *
 * Hashes stay hashes (passwords and pass codes as argon2id strings, keys
 * and codes as SHA-256 digests, codes kept keyed as their keyed digest);
 * the signing keys are there in the clear,
 * so the file is made 0600, as a backup is.  The last line makes a cut
 * file plain: import refuses a file without it.  An import reads the
 * whole file and checks every line before the store is touched, then
 * loads it in one transaction: a damaged or foreign file is refused with
 * its line number, and nothing is half-imported.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "extern.h"

#define EXPORT_FORMAT	"crmauth-export"
#define EXPORT_VERSION	1
#define LINE_MAX_BYTES	(256 * 1024)	/* far past any record's line */
/* Nothing a store holds ends later than the longest token_ttl from now
 * (and a minute of clock): a release, a previous signing key. */
#define LATEST		(30 * 86400 + 60)

/* ---- export -------------------------------------------------------------- */

struct out {
	FILE		*f;
	struct xcount	*n;
	int		 err;		/* errno of the first failed write */
};

static void
add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void
add_int(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static void
add_bool(json_object *o, const char *k, int v)
{
	json_object_object_add(o, k, json_object_new_boolean(v));
}

static void
add_hex(json_object *o, const char *k, const unsigned char *v, size_t n)
{
	char hex[2 * CRM_DIGEST_BYTES + 1];

	sec_hex(hex, v, n);
	add_str(o, k, hex);
}

static void
add_units(json_object *o, const char units[][CRM_NAME_MAX + 1], size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(units[i]));
	json_object_object_add(o, "units", a);
}

/* One JSON object per line, as it is (no pretty printing, no "\/"). */
static void
put_line(struct out *w, json_object *o)
{
	const char *s = json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	if (w->err == 0 && fprintf(w->f, "%s\n", s) < 0)
		w->err = errno != 0 ? errno : EIO;
}

static void
count_kind(struct xcount *n, enum xkind kind)
{
	switch (kind) {
	case XR_USER:
		n->users++;
		break;
	case XR_APIKEY:
		n->apikeys++;
		break;
	case XR_CONSUMER:
		n->consumers++;
		break;
	case XR_ACCESS:
		n->access++;
		break;
	case XR_SIGKEY:
		n->sigkeys++;
		break;
	case XR_RELEASED:
		n->released++;
		break;
	case XR_CUTOFF:
		n->cutoffs++;
		break;
	}
}

static int
put_rec(void *arg, const struct xrec *x)
{
	struct out	*w = arg;
	json_object	*o = json_object_new_object();
	char		 b64[64];

	switch (x->kind) {
	case XR_USER:
		add_str(o, "type", "user");
		add_str(o, "org", x->org);
		add_str(o, "name", x->name);
		add_str(o, "pwhash", x->u.user.pwhash);
		add_units(o, x->u.user.units, x->u.user.nunits);
		add_bool(o, "disabled", x->u.user.disabled);
		add_int(o, "created", x->u.user.created);
		add_int(o, "not_before", x->u.user.not_before);
		break;
	case XR_APIKEY:
		add_str(o, "type", "apikey");
		add_hex(o, "digest", x->digest, CRM_DIGEST_BYTES);
		add_str(o, "org", x->u.apikey.org);
		add_str(o, "user", x->u.apikey.user);
		add_bool(o, "revoked", x->u.apikey.revoked);
		add_int(o, "created", x->u.apikey.created);
		break;
	case XR_CONSUMER:
		add_str(o, "type", "consumer_key");
		add_hex(o, "digest", x->digest, CRM_DIGEST_BYTES);
		add_str(o, "org", x->u.consumer.org);
		add_str(o, "app", x->u.consumer.app);
		add_units(o, x->u.consumer.units, x->u.consumer.nunits);
		add_bool(o, "revoked", x->u.consumer.revoked);
		add_int(o, "created", x->u.consumer.created);
		break;
	case XR_ACCESS:
		add_str(o, "type", "access_token");
		add_hex(o, "id", x->id, CRM_DIGEST_BYTES);
		if (x->access_kind != 0)
			add_str(o, "org", x->org);
		if (x->access_kind == 'C')
			add_hex(o, "code_sha256", x->digest, CRM_DIGEST_BYTES);
		else if (x->access_kind == 'K')
			add_hex(o, "code_keyed", x->digest, CRM_DIGEST_BYTES);
		else if (x->access_kind == 'I')
			add_str(o, "identifier", x->name);
		add_str(o, "contact", x->u.access.contact);
		add_str(o, "ari", x->u.access.ari);
		add_str(o, "passhash", x->u.access.passhash);
		add_int(o, "created", x->u.access.created);
		break;
	case XR_SIGKEY:
		add_str(o, "type", "signing_key");
		add_str(o, "kid", x->u.key.kid);
		b64url_encode(b64, x->u.key.secret, CRM_SIGKEY_BYTES);
		add_str(o, "secret", b64);
		explicit_bzero(b64, sizeof(b64));
		add_int(o, "created", x->u.key.created);
		add_int(o, "expires", x->u.key.expires);
		add_bool(o, "current", x->u.key.current);
		break;
	case XR_RELEASED:
		add_str(o, "type", "released");
		add_hex(o, "jti", x->u.rel.jti, CRM_JTI_BYTES);
		add_int(o, "exp", x->u.rel.exp);
		break;
	case XR_CUTOFF:
		add_str(o, "type", "cutoff");
		add_str(o, "org", x->org);
		add_str(o, "app", x->name);
		add_int(o, "cutoff", x->u.cutoff);
		break;
	}
	count_kind(w->n, x->kind);
	put_line(w, o);
	json_object_put(o);
	return w->err != 0;
}

static size_t
xcount_total(const struct xcount *n)
{
	return n->users + n->apikeys + n->consumers + n->access + n->sigkeys +
	    n->released + n->cutoffs;
}

int
store_export(struct store *st, const char *file, struct xcount *n,
    char *err, size_t errlen)
{
	struct out	 w = { .n = n };
	char		 tmp[PATH_MAX], made[32], key[CODE_KEY_ID_HEX + 1];
	json_object	*o;
	time_t		 now = time(NULL);
	int		 mlen;
	enum store_err	 e;
	int		 fd;

	memset(n, 0, sizeof(*n));
	/* Keyed codes are named by their wrap.key; never an export that
	 * could not say which. */
	if (store_code_key(st, key) == -1) {
		snprintf(err, errlen, "%s", store_detail(st));
		return -1;
	}
	/* A new file of our own beside the target (0600, O_EXCL: nothing
	 * planted there is reused), renamed over it when whole. */
	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", file) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: %s", file, strerror(ENAMETOOLONG));
		return -1;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1 || fchmod(fd, 0600) == -1 ||
	    (w.f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		if (fd != -1) {
			close(fd);
			unlink(tmp);
		}
		return -1;
	}
	mlen = fmt_utc(made, sizeof(made) - 1, now);
	snprintf(made + mlen, sizeof(made) - (size_t)mlen, "Z");
	o = json_object_new_object();
	add_str(o, "format", EXPORT_FORMAT);
	add_int(o, "version", EXPORT_VERSION);
	add_int(o, "schema", STORE_SCHEMA_VERSION);
	add_str(o, "store", st->ops->name);
	add_str(o, "made", made);
	if (key[0] != '\0')
		add_str(o, "codes_key", key);
	put_line(&w, o);
	json_object_put(o);
	e = store_dump(st, put_rec, &w);
	if (e == STORE_OK && w.err == 0) {
		o = json_object_new_object();
		add_bool(o, "end", 1);
		add_int(o, "records", (int64_t)xcount_total(n));
		put_line(&w, o);
		json_object_put(o);
	}
	if (w.err == 0 && (fflush(w.f) == EOF || fsync(fileno(w.f)) == -1))
		w.err = errno;
	if (fclose(w.f) == EOF && w.err == 0)
		w.err = errno;
	if (e == STORE_OK && w.err == 0 && rename(tmp, file) == -1)
		w.err = errno;
	if (e != STORE_OK || w.err != 0) {
		unlink(tmp);
		if (e != STORE_OK)
			snprintf(err, errlen, "%s", store_detail(st)[0] != '\0' ?
			    store_detail(st) : store_strerror(e));
		else
			snprintf(err, errlen, "%s: %s", file, strerror(w.err));
		return -1;
	}
	return 0;
}

/* ---- import: reading and checking ------------------------------------------ */

struct in {
	struct xsource	 src;		/* first: store_load's view */
	FILE		*f;
	const char	*file;
	char		*line;		/* LINE_MAX_BYTES + 1 */
	long		 lineno;
	int		 broken;	/* the second pass could not begin */
	int64_t		 now;
	struct xcount	*n;		/* counted on each pass */
	int		 ended;
	int		 currents;	/* signing keys marked current */
	char		 codes_key[CODE_KEY_ID_HEX + 1];	/* the file's */
	char		 our_key[CODE_KEY_ID_HEX + 1];	/* the store's */
	char		*err;
	size_t		 errlen;
};

static int bad(struct in *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

static int
bad(struct in *r, const char *fmt, ...)
{
	char	 why[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* It may quote the file: nothing a terminal would act on. */
	for (unsigned char *c = (unsigned char *)why; *c != '\0'; c++)
		if (*c < 0x20 || *c == 0x7f)
			*c = '?';
		else if (*c == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f)
			c[0] = c[1] = '?';	/* C1 controls */
	if (r->lineno == 0)
		snprintf(r->err, r->errlen, "%s: %s", r->file, why);
	else
		snprintf(r->err, r->errlen, "%s:%ld: %s", r->file, r->lineno,
		    why);
	return -1;
}

/* The member k of o, of type t; NULL (and why in r) if it is not. */
static json_object *
member(struct in *r, json_object *o, const char *k, json_type t)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v)) {
		bad(r, "no \"%s\"", k);
		return NULL;
	}
	if (!json_object_is_type(v, t)) {
		bad(r, "\"%s\" is not %s", k, t == json_type_string ?
		    "a string" : t == json_type_int ? "an integer" :
		    t == json_type_boolean ? "true or false" : "an array");
		return NULL;
	}
	return v;
}

/* A name as crmauthctl takes them (org, user, unit, ...) into buf. */
static int
get_name(struct in *r, json_object *o, const char *k, char *buf,
    int may_be_empty)
{
	json_object	*v = member(r, o, k, json_type_string);
	const char	*s, *why;

	if (v == NULL)
		return -1;
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s))
		return bad(r, "\"%s\" holds a NUL", k);
	if (!(may_be_empty && s[0] == '\0') &&
	    (why = store_name_problem(s)) != NULL)
		return bad(r, "\"%s\": %s", k, why);
	memcpy(buf, s, strlen(s) + 1);
	return 0;
}

static int
get_int(struct in *r, json_object *o, const char *k, int64_t *out)
{
	json_object *v = member(r, o, k, json_type_int);

	if (v == NULL)
		return -1;
	errno = 0;
	*out = json_object_get_int64(v);
	if (errno != 0 || *out < 0)
		return bad(r, "\"%s\" is not a time", k);
	return 0;
}

/*
 * A moment that has happened: no later than now and a clock's error
 * (SKEW).  A creation time, a user's not_before or an application's
 * cutoff from the future would refuse every login or token until then.
 */
#define SKEW	60
static int
get_past(struct in *r, json_object *o, const char *k, int64_t *out)
{
	if (get_int(r, o, k, out) == -1)
		return -1;
	if (*out > r->now + SKEW)
		return bad(r, "\"%s\" is in the future", k);
	return 0;
}

static int
get_bool(struct in *r, json_object *o, const char *k, int *out)
{
	json_object *v = member(r, o, k, json_type_boolean);

	if (v == NULL)
		return -1;
	*out = json_object_get_boolean(v);
	return 0;
}

static int
get_hex(struct in *r, json_object *o, const char *k, unsigned char *out,
    size_t n)
{
	json_object	*v = member(r, o, k, json_type_string);
	const char	*s;

	if (v == NULL)
		return -1;
	s = json_object_get_string(v);
	if (strlen(s) != 2 * n || sec_unhex(out, n, s, strlen(s)) != 0)
		return bad(r, "\"%s\" is not %zu hex digits", k, 2 * n);
	return 0;
}

/* An argon2id PHC string, as crmauth writes them. */
static int
get_hash(struct in *r, json_object *o, const char *k, char *buf,
    size_t size, int may_be_empty)
{
	json_object	*v = member(r, o, k, json_type_string);
	const char	*s;
	uint32_t	 m, t, p;
	int		 cost;

	if (v == NULL)
		return -1;
	s = json_object_get_string(v);
	if (may_be_empty && s[0] == '\0') {
		buf[0] = '\0';
		return 0;
	}
	if (strncmp(s, "$argon2id$v=19$m=", 17) != 0 || strlen(s) >= size ||
	    strspn(s, "$=,+/0123456789abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(s) ||
	    (cost = sec_pwcost(s, &m, &t, &p)) == -1)
		return bad(r, "\"%s\" is not an argon2id hash", k);
	if (cost != 0)
		return bad(r, "\"%s\": argon2id cost m=%lu,t=%lu,p=%lu is past "
		    "the bounds (m %d to %d KiB, t 1 to %d, p 1 to %d, m "
		    "times t at most %d)", k,
		    (unsigned long)m, (unsigned long)t, (unsigned long)p,
		    CRM_ARGON2_MEM_MIN_KIB, CRM_ARGON2_MEM_MAX_KIB,
		    CRM_ARGON2_T_MAX, CRM_ARGON2_P_MAX, CRM_ARGON2_WORK_MAX);
	memcpy(buf, s, strlen(s) + 1);
	return 0;
}

static int
get_units(struct in *r, json_object *o, char units[][CRM_NAME_MAX + 1],
    size_t *nunits)
{
	json_object	*a = member(r, o, "units", json_type_array), *u;
	const char	*why;
	size_t		 n;

	if (a == NULL)
		return -1;
	if ((n = json_object_array_length(a)) < 1 || n > CRM_UNITS_MAX)
		return bad(r, "\"units\" holds 1 to %d names", CRM_UNITS_MAX);
	for (size_t i = 0; i < n; i++) {
		u = json_object_array_get_idx(a, i);
		if (!json_object_is_type(u, json_type_string) ||
		    (why = store_name_problem(json_object_get_string(u))) !=
		    NULL)
			return bad(r, "\"units\": not a unit name");
		snprintf(units[i], CRM_NAME_MAX + 1, "%s",
		    json_object_get_string(u));
	}
	*nunits = n;
	return 0;
}

/* The members a record of this type has, and no others. */
static int
members_are(struct in *r, json_object *o, const char *const names[])
{
	size_t n = 0;

	for (; names[n] != NULL; n++)
		;
	json_object_object_foreach(o, k, v) {
		size_t i;

		(void)v;
		for (i = 0; i < n && strcmp(k, names[i]) != 0; i++)
			;
		if (i == n)
			return bad(r, "\"%s\" is not a member of a record of "
			    "this type", k);
	}
	return 0;
}

static int
read_user(struct in *r, json_object *o, struct xrec *x)
{
	static const char *const m[] = { "type", "org", "name", "pwhash",
	    "units", "disabled", "created", "not_before", NULL };
	struct user_rec *u = &x->u.user;

	x->kind = XR_USER;
	return members_are(r, o, m) == -1 ||
	    get_name(r, o, "org", x->org, 0) == -1 ||
	    get_name(r, o, "name", x->name, 0) == -1 ||
	    get_hash(r, o, "pwhash", u->pwhash, sizeof(u->pwhash), 0) == -1 ||
	    get_units(r, o, u->units, &u->nunits) == -1 ||
	    get_bool(r, o, "disabled", &u->disabled) == -1 ||
	    get_past(r, o, "created", &u->created) == -1 ||
	    get_past(r, o, "not_before", &u->not_before) == -1 ? -1 : 0;
}

static int
read_apikey(struct in *r, json_object *o, struct xrec *x)
{
	static const char *const m[] = { "type", "digest", "org", "user",
	    "revoked", "created", NULL };
	struct apikey_rec *a = &x->u.apikey;

	x->kind = XR_APIKEY;
	return members_are(r, o, m) == -1 ||
	    get_hex(r, o, "digest", x->digest, CRM_DIGEST_BYTES) == -1 ||
	    get_name(r, o, "org", a->org, 0) == -1 ||
	    get_name(r, o, "user", a->user, 0) == -1 ||
	    get_bool(r, o, "revoked", &a->revoked) == -1 ||
	    get_past(r, o, "created", &a->created) == -1 ? -1 : 0;
}

static int
read_consumer(struct in *r, json_object *o, struct xrec *x)
{
	static const char *const m[] = { "type", "digest", "org", "app",
	    "units", "revoked", "created", NULL };
	struct consumer_rec *c = &x->u.consumer;

	x->kind = XR_CONSUMER;
	return members_are(r, o, m) == -1 ||
	    get_hex(r, o, "digest", x->digest, CRM_DIGEST_BYTES) == -1 ||
	    get_name(r, o, "org", c->org, 0) == -1 ||
	    get_name(r, o, "app", c->app, 0) == -1 ||
	    get_units(r, o, c->units, &c->nunits) == -1 ||
	    get_bool(r, o, "revoked", &c->revoked) == -1 ||
	    get_past(r, o, "created", &c->created) == -1 ? -1 : 0;
}

/*
 * An access token: its owner (org, and the code's digest or the
 * identifier), from which its id follows; the id must be that.  Only
 * tokens of an older LMDB store may lack the owner: the id alone.
 */
static int
read_access(struct in *r, json_object *o, struct xrec *x)
{
	static const char *const m[] = { "type", "id", "org", "code_sha256",
	    "code_keyed", "identifier", "contact", "ari", "passhash",
	    "created", NULL };
	struct access_rec	*a = &x->u.access;
	unsigned char		 id[CRM_DIGEST_BYTES];
	const char		*cf = "code_sha256";
	int			 code, keyed, ident;

	x->kind = XR_ACCESS;
	code = json_object_object_get_ex(o, "code_sha256", NULL);
	keyed = json_object_object_get_ex(o, "code_keyed", NULL);
	ident = json_object_object_get_ex(o, "identifier", NULL);
	if (keyed) {
		if (code)
			return bad(r, "both \"code_sha256\" and "
			    "\"code_keyed\"");
		code = 1;
		cf = "code_keyed";
	}
	if (members_are(r, o, m) == -1 ||
	    get_hex(r, o, "id", x->id, CRM_DIGEST_BYTES) == -1 ||
	    get_name(r, o, "contact", a->contact, 0) == -1 ||
	    get_name(r, o, "ari", a->ari, 1) == -1 ||
	    get_hash(r, o, "passhash", a->passhash, sizeof(a->passhash),
	    1) == -1 ||
	    get_past(r, o, "created", &a->created) == -1)
		return -1;
	if (code && ident)
		return bad(r, "both \"%s\" and \"identifier\"", cf);
	if (!code && !ident) {
		if (json_object_object_get_ex(o, "org", NULL))
			return bad(r, "\"org\" without \"code_sha256\" or "
			    "\"identifier\"");
		return 0;		/* an older LMDB store's: the id only */
	}
	if (get_name(r, o, "org", x->org, 0) == -1 ||
	    (code && get_hex(r, o, cf, x->digest, CRM_DIGEST_BYTES) == -1) ||
	    (ident && get_name(r, o, "identifier", x->name, 0) == -1))
		return -1;
	x->access_kind = keyed ? 'K' : code ? 'C' : 'I';
	/* Found only under the wrap.key it was keyed with. */
	if (keyed && (r->codes_key[0] == '\0' ||
	    strcmp(r->codes_key, r->our_key) != 0))
		return bad(r, "an authentication code kept keyed with wrap.key "
		    "%s, and this store has %s%s: copy that wrap.key into its "
		    "db_path first", r->codes_key[0] ? r->codes_key :
		    "(unnamed)", r->our_key[0] ? "wrap.key " : "none",
		    r->our_key);
	if ((a->passhash[0] != '\0') != ident)
		return bad(r, "\"passhash\" is for an identifier's pass code "
		    "only");
	store_access_id(id, x->org, code ? x->digest : NULL, x->name);
	if (memcmp(id, x->id, sizeof(id)) != 0)
		return bad(r, "\"id\" is not this access token's");
	return 0;
}

static int
read_sigkey(struct in *r, json_object *o, struct xrec *x)
{
	static const char *const m[] = { "type", "kid", "secret", "created",
	    "expires", "current", NULL };
	struct sigkey	*k = &x->u.key;
	json_object	*v;
	const char	*s;
	size_t		 len;

	x->kind = XR_SIGKEY;
	if (members_are(r, o, m) == -1 ||
	    (v = member(r, o, "kid", json_type_string)) == NULL)
		return -1;
	s = json_object_get_string(v);
	if (strlen(s) != CRM_KID_HEX ||
	    strspn(s, "0123456789ABCDEF") != CRM_KID_HEX)
		return bad(r, "\"kid\" is not %d upper-case hex digits",
		    CRM_KID_HEX);
	memcpy(k->kid, s, CRM_KID_HEX + 1);
	if ((v = member(r, o, "secret", json_type_string)) == NULL)
		return -1;
	s = json_object_get_string(v);
	if (b64url_decode(k->secret, sizeof(k->secret), &len, s,
	    strlen(s)) != 0 || len != CRM_SIGKEY_BYTES)
		return bad(r, "\"secret\" is not %d bytes in base64url",
		    CRM_SIGKEY_BYTES);
	if (get_past(r, o, "created", &k->created) == -1 ||
	    get_int(r, o, "expires", &k->expires) == -1 ||
	    get_bool(r, o, "current", &k->current) == -1)
		return -1;
	if (k->current != (k->expires == 0))
		return bad(r, "a current key does not expire, and only it");
	if (k->expires > r->now + LATEST)
		return bad(r, "\"expires\" is later than any token's");
	return 0;
}

static int
read_released(struct in *r, json_object *o, struct xrec *x)
{
	static const char *const m[] = { "type", "jti", "exp", NULL };

	x->kind = XR_RELEASED;
	if (members_are(r, o, m) == -1 ||
	    get_hex(r, o, "jti", x->u.rel.jti, CRM_JTI_BYTES) == -1 ||
	    get_int(r, o, "exp", &x->u.rel.exp) == -1)
		return -1;
	if (x->u.rel.exp > r->now + LATEST)
		return bad(r, "\"exp\" is later than any token's");
	return 0;
}

static int
read_cutoff(struct in *r, json_object *o, struct xrec *x)
{
	static const char *const m[] = { "type", "org", "app", "cutoff",
	    NULL };

	x->kind = XR_CUTOFF;
	return members_are(r, o, m) == -1 ||
	    get_name(r, o, "org", x->org, 0) == -1 ||
	    get_name(r, o, "app", x->name, 0) == -1 ||
	    get_past(r, o, "cutoff", &x->u.cutoff) == -1 ? -1 : 0;
}

static const struct {
	const char	*type;
	int		 (*read)(struct in *, json_object *, struct xrec *);
} readers[] = {
	{ "user", read_user }, { "apikey", read_apikey },
	{ "consumer_key", read_consumer }, { "access_token", read_access },
	{ "signing_key", read_sigkey }, { "released", read_released },
	{ "cutoff", read_cutoff },
};

/* The next line as a JSON object: 1, 0 at the end of the file, -1.  A
 * line is read into a buffer of its own bounded size (never one that
 * grows with the input), and must be one JSON object, strictly, and
 * nothing after it. */
static int
next_object(struct in *r, json_object **o)
{
	struct json_tokener	*tok;
	size_t			 len = 0;
	int			 c = EOF;

	*o = NULL;
	if (r->broken)
		return bad(r, "the file changed or cannot be read again");
	errno = 0;
	while (len < LINE_MAX_BYTES && (c = getc(r->f)) != EOF && c != '\n') {
		if (c == '\0')
			break;
		r->line[len++] = (char)c;
	}
	if (c == EOF && len == 0) {
		if (ferror(r->f))
			return bad(r, "%s", strerror(errno != 0 ? errno : EIO));
		return 0;
	}
	r->lineno++;
	if (c == '\0')
		return bad(r, "a NUL byte");
	if (len == LINE_MAX_BYTES)
		return bad(r, "a line longer than any record's");
	if (c == EOF)
		return bad(r, "the file ends in the middle of a line");
	r->line[len] = '\0';
	if ((tok = json_tokener_new()) == NULL)
		return bad(r, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	*o = json_tokener_parse_ex(tok, r->line, (int)len);
	if (*o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(*o, json_type_object)) {
		json_tokener_free(tok);
		json_object_put(*o);
		*o = NULL;
		return bad(r, "not a JSON object");
	}
	json_tokener_free(tok);
	return 1;
}

/* The first line: ours, of a version and schema we read. */
static int
read_header(struct in *r)
{
	json_object	*o, *v;
	int64_t		 n;
	int		 rc;

	if ((rc = next_object(r, &o)) != 1)
		return rc == 0 ? bad(r, "an empty file") : -1;
	rc = -1;
	if (!json_object_object_get_ex(o, "format", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), EXPORT_FORMAT) != 0)
		bad(r, "not a crmauth export (no \"format\":\"%s\")",
		    EXPORT_FORMAT);
	else if (get_int(r, o, "version", &n) == -1)
		;
	else if (n != EXPORT_VERSION)
		bad(r, "an export of version %lld; this crmauth reads version "
		    "%d", (long long)n, EXPORT_VERSION);
	else if (get_int(r, o, "schema", &n) == -1)
		;
	else if (n > STORE_SCHEMA_VERSION)
		bad(r, "exported by a newer crmauth (schema %lld)",
		    (long long)n);
	else if (json_object_object_get_ex(o, "codes_key", &v) &&
	    (!json_object_is_type(v, json_type_string) ||
	    strlen(json_object_get_string(v)) != CODE_KEY_ID_HEX))
		bad(r, "\"codes_key\" is not a key id");
	else {
		r->codes_key[0] = '\0';
		if (json_object_object_get_ex(o, "codes_key", &v))
			snprintf(r->codes_key, sizeof(r->codes_key), "%s",
			    json_object_get_string(v));
		rc = 0;
	}
	json_object_put(o);
	return rc;
}

/* xsource's next: the next record, checked; at the end, the end line. */
static int
in_next(struct xsource *s, struct xrec *x)
{
	struct in	*r = (struct in *)s;
	json_object	*o, *v;
	const char	*type;
	size_t		 i;
	int64_t		 n;
	int		 rc;

	for (;;) {
		if (r->ended) {
			if ((rc = next_object(r, &o)) == 0)
				return 0;
			json_object_put(o);
			return rc == 1 ? bad(r, "a line after the end") : -1;
		}
		if ((rc = next_object(r, &o)) != 1)
			return rc == 0 ? bad(r, "the file is cut short (no end "
			    "line)") : -1;
		if (json_object_object_get_ex(o, "end", NULL)) {
			rc = get_int(r, o, "records", &n);
			json_object_put(o);
			if (rc == -1)
				return -1;
			if ((size_t)n != xcount_total(r->n) + r->n->skipped)
				return bad(r, "the end line counts %lld records, "
				    "the file holds %zu", (long long)n,
				    xcount_total(r->n) + r->n->skipped);
			if (r->currents != 1)
				return bad(r, "%d current signing keys (an "
				    "export has one)", r->currents);
			r->ended = 1;
			continue;
		}
		if (!json_object_object_get_ex(o, "type", &v) ||
		    !json_object_is_type(v, json_type_string)) {
			json_object_put(o);
			return bad(r, "a record without a \"type\"");
		}
		type = json_object_get_string(v);
		for (i = 0; i < sizeof(readers) / sizeof(readers[0]) &&
		    strcmp(type, readers[i].type) != 0; i++)
			;
		memset(x, 0, sizeof(*x));
		if (i == sizeof(readers) / sizeof(readers[0]))
			rc = bad(r, "\"%.64s\" is not a type of record", type);
		else
			rc = readers[i].read(r, o, x);
		json_object_put(o);
		if (rc == -1) {
			explicit_bzero(x, sizeof(*x));
			return -1;
		}
		x->line = r->lineno;
		if (x->kind == XR_SIGKEY && x->u.key.current)
			r->currents++;
		/* Past its time it would be pruned at once: left out. */
		if ((x->kind == XR_RELEASED && x->u.rel.exp <= r->now) ||
		    (x->kind == XR_SIGKEY && !x->u.key.current &&
		    x->u.key.expires <= r->now)) {
			r->n->skipped++;
			explicit_bzero(x, sizeof(*x));
			continue;
		}
		count_kind(r->n, x->kind);
		return 1;
	}
}

/* xsource's rewind: from the first record again, counting anew. */
static void
in_rewind(struct xsource *s)
{
	struct in *r = (struct in *)s;

	memset(r->n, 0, sizeof(*r->n));
	r->currents = 0;
	r->ended = 0;
	r->lineno = 0;
	r->broken = 0;
	clearerr(r->f);
	/* Read whole and checked before; if it cannot be read again from
	 * its start (or now reads otherwise), every next() says so. */
	if (fseeko(r->f, 0, SEEK_SET) == -1 || read_header(r) == -1)
		r->broken = 1;
}

int
store_import(struct store *st, const char *file, struct xcount *n,
    char *err, size_t errlen)
{
	struct in	 r = { .src = { in_next, in_rewind }, .file = file,
			    .n = n, .err = err, .errlen = errlen,
			    .now = (int64_t)time(NULL) };
	struct xrec	*x;
	enum store_err	 e;
	int		 fd, rc;

	err[0] = '\0';
	memset(n, 0, sizeof(*n));
	if (store_code_key(st, r.our_key) == -1) {
		snprintf(err, errlen, "%s", store_detail(st));
		return -1;
	}
	/* Read twice (checked whole, then loaded): a file, not a pipe, and
	 * a FIFO is refused without waiting for its writer. */
	if ((fd = open_regular(file, 0, err, errlen)) == -1) {
		if (strstr(err, ": not a regular file") != NULL)
			snprintf(err, errlen, "%s: not a regular file (import "
			    "reads it twice: save it to a file first)", file);
		return -1;
	}
	if ((r.f = fdopen(fd, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		close(fd);
		return -1;
	}
	if ((x = malloc(sizeof(*x))) == NULL ||
	    (r.line = malloc(LINE_MAX_BYTES + 1)) == NULL) {
		free(x);
		fclose(r.f);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Every line checked before the store is touched. */
	if ((rc = read_header(&r)) == 0)
		while ((rc = in_next(&r.src, x)) == 1)
			;
	explicit_bzero(x, sizeof(*x));
	free(x);
	if (rc == 0) {
		e = store_load(st, &r.src);
		if (e != STORE_OK && err[0] == '\0') {
			/* The store's words; a line it names is the file's. */
			if (strncmp(store_detail(st), "line ", 5) == 0)
				snprintf(err, errlen, "%s:%s", file,
				    store_detail(st) + 5);
			else
				snprintf(err, errlen, "%s", store_detail(st)[0] ?
				    store_detail(st) : store_strerror(e));
		}
		rc = e == STORE_OK ? 0 : -1;
	}
	explicit_bzero(r.line, LINE_MAX_BYTES + 1);	/* signing secrets */
	free(r.line);
	fclose(r.f);
	return rc;
}
