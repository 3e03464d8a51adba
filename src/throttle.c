/*
 * Throttling guessable secrets (README.md, "Throttling failed attempts"):
 * what is counted, against which limits.  The store only counts, with
 * the same rules on every backend (store_attempt_reserve).
 *
 * The account is what the secret protects, named by what the client
 * claimed, whether or not it exists (so guessing costs the same, and a
 * locked answer looks the same): organisation + user for a password,
 * the key for a Web API key or an unknown consumer key, organisation +
 * identifier for a pass code (whichever consumer key asks), and for an
 * authentication code the consumer key from one address only, so that
 * an application's key, which ships inside the application, cannot lock
 * out its users elsewhere.
 *
 * Each attempt is counted in three counters: the (account, address)
 * pair, held at lockout_threshold; the account, held at
 * lockout_account_threshold; and the address across all accounts, held
 * at the same number, which also bounds what one address can make the
 * store keep.  When depends on what is guessed:
 *
 *   - a password or a pass code (argon2id, 200 ms): reserved before its
 *     verify (throttle_begin), given back after unless it failed
 *     (throttle_end), so that N guesses at once verify at most the
 *     limit, and the counters are not held locked meanwhile;
 *   - an authentication code (a hash looked up): decided holding the
 *     counters (throttle_decide), counted only if wrong: a guess is
 *     answered in turn with every other, the same bound;
 *   - a key (128 bits): counted after its lookup missed (throttle_end);
 *     guesses in flight at once may pass the limit by their number,
 *     which against 2^128 changes nothing.  A valid key writes nothing.
 *
 * A held pair or address is refused before the secret is looked at
 * (for a Web API key, before the key is read).  An address from which the account was used
 * successfully within lockout_trust_days is not held by the last two:
 * strangers elsewhere cannot lock its owner out.  A success gives its
 * count back and clears its pair.
 */
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include "extern.h"

static const char *
kind_name(enum att_kind k)
{
	switch (k) {
	case ATT_USER:
		return "user";
	case ATT_APIKEY:
		return "apikey";
	case ATT_CONSUMER:
		return "consumer-key";
	case ATT_IDENT:
		return "access-token";
	case ATT_CODE:
		break;
	}
	return "code";
}

void
throttle_address(char out[CRM_ADDR_MAX + 1], const char *addr)
{
	struct in6_addr	 a6;
	char		 buf[INET6_ADDRSTRLEN];

	/* IPv6 by its /64: one host may use a whole one.  An IPv4 address
	 * written as IPv6 (::ffff:a.b.c.d) is that IPv4 address. */
	if (addr != NULL && inet_pton(AF_INET6, addr, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			if (inet_ntop(AF_INET, a6.s6_addr + 12, buf,
			    sizeof(buf)) != NULL) {
				snprintf(out, CRM_ADDR_MAX + 1, "%s", buf);
				return;
			}
		} else {
			memset(a6.s6_addr + 8, 0, 8);
			if (inet_ntop(AF_INET6, &a6, buf, sizeof(buf)) !=
			    NULL) {
				snprintf(out, CRM_ADDR_MAX + 1, "%s/64", buf);
				return;
			}
		}
	}
	snprintf(out, CRM_ADDR_MAX + 1, "%s", addr != NULL ? addr : "");
}

/* The first n bytes of SHA-256 of tag, a, NUL, b. */
static void
digest(unsigned char *out, size_t n, char tag, const char *a, const char *b)
{
	unsigned char d[CRM_DIGEST_BYTES];

	sec_tagged_hash(d, tag, a, b, strlen(b));
	memcpy(out, d, n);
}

/* What a counter's key is made of: the account (16 bytes: "U" org NUL
 * user, "K" NUL key id, ...) and the address (8), each hashed once. */
struct names {
	unsigned char	 account[16], address[8];
	int		 has_address;	/* REMOTE_ADDR was given */
};

static void
names(struct names *n, enum att_kind kind, const char *org,
    const char *name, const char *addr)
{
	char norm[CRM_ADDR_MAX + 1];

	n->has_address = addr != NULL;
	if (name != NULL)
		digest(n->account, sizeof(n->account), (char)kind,
		    org != NULL ? org : "", name);
	if (addr != NULL) {
		throttle_address(norm, addr);
		digest(n->address, sizeof(n->address), 'N', "", norm);
	}
}

/* The key of type: the account unless 'N', the address if with_addr
 * (and there is one). */
static size_t
make_key(unsigned char key[ATT_KEY_MAX], char type, const struct names *n,
    int with_addr)
{
	size_t len = 1;

	key[0] = (unsigned char)type;
	if (type != 'N') {
		memcpy(key + len, n->account, sizeof(n->account));
		len += sizeof(n->account);
	}
	if (with_addr && n->has_address) {
		memcpy(key + len, n->address, sizeof(n->address));
		len += sizeof(n->address);
	}
	return len;
}

size_t
throttle_key(unsigned char key[ATT_KEY_MAX], char type, enum att_kind kind,
    const char *org, const char *name, const char *addr)
{
	struct names n;

	names(&n, kind, org, type != 'N' ? name : NULL, addr);
	return make_key(key, type, &n, 1);
}

/* A name as lock list shows it: clients chose it, so no tab (the column
 * separator) or other control character. */
static void
printable(char *out, size_t size, const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < size; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' :
		    s[i];
	out[i] = '\0';
}

static void
counter(struct att_reserve *r, char type, const struct names *n,
    uint32_t limit, int exempt, int clear)
{
	struct att_counter *c = &r->c[r->n++];

	c->keylen = make_key(c->key, type, n, type != 'A');
	c->limit = limit;
	c->exempt = exempt;
	c->clear = clear;
}

/* Each counter's subject, which the store keeps once its count reaches
 * its limit (kind, org, name, address: what lock list prints): needed
 * only where an attempt may be counted. */
static void
subjects(struct attempt *a)
{
	struct att_reserve	*r = &a->r;
	char			 norm[CRM_ADDR_MAX + 1];
	char			 org[CRM_NAME_MAX + 1], name[CRM_NAME_MAX + 1];

	throttle_address(norm, a->addr);
	printable(org, sizeof(org), a->org != NULL ? a->org : "-");
	printable(name, sizeof(name), a->name);
	printable(norm, sizeof(norm), norm);
	for (size_t i = 0; i < r->n; i++) {
		char type = (char)r->c[i].key[0];

		if (type == 'N')
			snprintf(a->subjects[i], ATT_SUBJECT_MAX + 1,
			    "address\t-\t-\t%s", norm);
		else
			snprintf(a->subjects[i], ATT_SUBJECT_MAX + 1,
			    "%s\t%s\t%s\t%s", kind_name(a->kind), org, name,
			    type == 'A' ? "*" : norm);
		r->c[i].subject = a->subjects[i];
	}
}

/* a's counters (no store access yet). */
static void
prepare(struct app *app, struct attempt *a)
{
	struct att_reserve	*r = &a->r;
	const struct config	*cfg = &app->cfg;
	struct names		 n;

	memset(r, 0, sizeof(*r));
	a->state = ATT_PREPARED;
	r->now = app->now();
	r->window = cfg->lockout_window;
	names(&n, a->kind, a->org, a->name, a->addr);
	/*
	 * An authentication code's account is the application's key, which
	 * all its users share: one user's success says nothing about the
	 * codes guessed from that address, so it neither clears the pair
	 * nor makes the address trusted (it only gives its own count back).
	 */
	counter(r, 'P', &n, cfg->lockout_threshold, 0, a->kind != ATT_CODE);
	if (a->kind != ATT_CODE)
		counter(r, 'A', &n, cfg->lockout_account_threshold, 1, 0);
	counter(r, 'N', &n, cfg->lockout_account_threshold, 1, 0);
	if (a->kind != ATT_CODE) {
		r->trustlen = make_key(r->trust, 'T', &n, 1);
		if (cfg->lockout_trust_days > 0)
			r->trust_until = r->now +
			    cfg->lockout_trust_days * 86400;
	}
}

/* After the store answered for r: -1 with res set when it failed (fail
 * closed: no counting, no guessing) or r is held. */
static int
answer(struct app *app, const struct att_reserve *r, enum store_err e,
    struct result *res)
{
	if (e != STORE_OK) {
		result_store_error(res, app, e);
		return -1;
	}
	if (r->locked_until > r->now) {
		result_error(res, API_TOO_MANY_ATTEMPTS, NULL);
		res->retry_after = (unsigned)(r->locked_until - r->now);
		return -1;
	}
	return 0;
}

int
throttle_begin(struct app *app, struct attempt *a, struct result *res)
{
	prepare(app, a);
	subjects(a);
	if (answer(app, &a->r, store_attempt_reserve(app->store, &a->r),
	    res) == -1)
		return -1;
	a->state = ATT_RESERVED;
	return 0;
}

struct att_reserve *
throttle_counters(struct app *app, struct attempt *a, int decide)
{
	prepare(app, a);
	if (decide)
		subjects(a);
	return &a->r;
}

int
throttle_held(struct app *app, struct attempt *a, struct result *res)
{
	return answer(app, &a->r, STORE_OK, res);
}

int
throttle_decided(struct app *app, struct attempt *a, struct result *res)
{
	a->state = ATT_DECIDED;
	return answer(app, &a->r, STORE_OK, res);
}

int
throttle_decide(struct app *app, struct attempt *a, int ok,
    struct result *res)
{
	if (a->state == ATT_NONE)
		prepare(app, a);
	if (!ok)
		subjects(a);
	a->state = ATT_DECIDED;
	return answer(app, &a->r, store_attempt_decide(app->store, &a->r,
	    ok), res);
}

int
throttle_end(struct app *app, struct attempt *a, enum att_outcome how,
    struct result *res)
{
	enum store_err	 e = STORE_OK;
	const char	*what = "giving an attempt back";

	switch (a->state) {
	case ATT_RESERVED:	/* a failure stays counted */
		if (how != ATT_FAILED)
			e = store_attempt_giveback(app->store, &a->r,
			    how == ATT_SUCCEEDED, a->r.trust_until);
		break;
	case ATT_PREPARED:	/* counted after its check */
		if (how == ATT_FAILED) {
			subjects(a);
			a->state = ATT_DECIDED;
			return answer(app, &a->r, store_attempt_decide(
			    app->store, &a->r, 0), res);
		}
		what = "settling a success";
		if (how == ATT_SUCCEEDED && a->r.settle)
			e = store_attempt_decide(app->store, &a->r, 1);
		break;
	default:
		break;
	}
	a->state = ATT_DECIDED;
	if (e != STORE_OK)
		log_err("throttle: %s: %s: %s", what, store_strerror(e),
		    store_detail(app->store));
	return 0;
}
