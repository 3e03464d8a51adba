/*
 * The three ways to get a token (README.md, "The methods, by example"):
 * username + password + organisation, a Web API key, a consumer application key with an access
 * token identifier.  Each reads what it needs in one store read, counts
 * the attempt as throttle.c says for what is guessed, and signs with
 * the current key read with it.  Every failed authentication answers the
 * same 401 body, and an unknown account costs the argon2id verify a
 * known one does; the event (audit.c) tells the operator why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "extern.h"

/* The unit the token is for: the requested one if allowed, else the
 * default.  NULL when the requested unit is not allowed. */
static const char *
pick_unit(char units[][CRM_NAME_MAX + 1], size_t n, const char *want)
{
	if (want == NULL)
		return units[0];
	for (size_t i = 0; i < n; i++)
		if (strcmp(units[i], want) == 0)
			return units[i];
	return NULL;
}

static void
deny(struct result *res, int basic)
{
	result_error(res, API_INVALID_CREDENTIALS, NULL);
	if (basic)
		res->www_authenticate =
		    "Basic realm=\"crmauth\", charset=\"UTF-8\"";
}

/*
 * What a method read its principal with, to read it again (issue()).
 * A token's iat is the time taken just before the read that found its
 * principal valid and cutoff < iat: a revocation that read did not see
 * commits after it, and crmauthctl sets the cutoff again once its
 * commit returned, to a time at or after iat; the token is refused.
 */
struct principal_read {
	enum { PR_USER, PR_APIKEY, PR_CONSUMER } kind;
	const char		*org, *name;	/* PR_USER */
	int64_t			 created;	/* PR_USER: the same user, */
	const char		*pwhash;	/* with the password checked */
	const unsigned char	*digest;	/* the key methods */
	const unsigned char	*code;		/* PR_CONSUMER, or ident */
	const char		*ident;
};

/* Read the principal again: *why NULL and its cutoff while it may have
 * a token, else why not. */
static enum store_err
read_again(struct app *app, const struct principal_read *pr,
    int64_t *cutoff, const char **why)
{
	struct lookup	 l;
	enum store_err	 e;

	switch (pr->kind) {
	case PR_USER:
		e = store_lookup_user(app->store, pr->org, pr->name, &l);
		*why = !l.user_found || l.user.created != pr->created ?
		    "unknown_user" : strcmp(l.user.pwhash, pr->pwhash) != 0 ?
		    "bad_password" : l.user.disabled ? "disabled" : NULL;
		*cutoff = l.user.not_before;
		break;
	case PR_APIKEY:
		e = store_lookup_apikey(app->store, pr->digest, NULL, &l);
		*why = !l.apikey_found ? "unknown_key" : l.apikey.revoked ?
		    "revoked_key" : !l.user_found ? "unknown_user" :
		    l.user.disabled ? "disabled" : NULL;
		*cutoff = l.user.not_before;
		break;
	default:
		e = store_lookup_consumer(app->store, pr->digest, pr->code,
		    pr->ident, NULL, &l);
		*why = !l.consumer_found ? "unknown_key" :
		    l.consumer.revoked ? "revoked_key" : !l.access_found ?
		    "unknown_access_token" : NULL;
		*cutoff = l.app_cutoff;
		break;
	}
	lookup_wipe(&l);
	return e;
}

/*
 * Sign a token for s with key, issued at iat (when its principal was
 * read); data = {"token": ...}, and its event.  Tokens issued at or
 * before cutoff are refused: when the principal was logged out or a key
 * revoked in the very second of the read, wait for the next second and
 * read the principal again rather than issue one dead on arrival.  If
 * it was cut off again since the first read (the secret was checked
 * before that), this request gets no token; the next one will.
 */
static void
issue(struct app *app, struct result *res, const struct sigkey *key,
    const struct tok_subject *s, int64_t iat, int64_t cutoff,
    const struct principal_read *pr, int basic, struct audit_event *ev)
{
	struct timespec	 tick = { 0, 100 * 1000 * 1000 };
	enum tok_err	 te;
	enum store_err	 e;
	const char	*why;
	char		*tok = NULL, jti[CRM_JTI_HEX + 1];
	int64_t		 again, retry;
	size_t		 n;

	if (iat <= cutoff) {
		/* Cut off seconds ahead (several revocations in one
		 * second): no wait can end it; say when to come back. */
		if ((retry = cutoff - app->now() + 1) > 3)
			goto later;
		for (int i = 0; i < 30 && app->now() <= cutoff; i++)
			nanosleep(&tick, NULL);
		if ((iat = app->now()) <= cutoff) {
			retry = cutoff - iat + 1;
			goto later;
		}
		if ((e = read_again(app, pr, &again, &why)) != STORE_OK) {
			result_store_error(res, app, e);
			return;
		}
		if (why != NULL) {
			deny(res, basic);
			app_event(app, res, ev, "auth_failed", why);
			return;
		}
		if (again != cutoff) {
			retry = again - iat + 1;
			goto later;
		}
	}
	te = tok_issue(key, s, iat, app->cfg.token_ttl, &tok, jti);
	if (te != TOK_OK) {
		log_err("token: %s", tok_strerror(te));
		result_error(res, API_INTERNAL_ERROR, NULL);
		return;
	}
	/* The token is base64url and dots: no JSON escaping needed. */
	n = strlen(tok);
	if ((res->data = malloc(n + sizeof("{\"token\":\"\"}"))) == NULL) {
		result_error(res, API_INTERNAL_ERROR, NULL);
	} else {
		memcpy(res->data, "{\"token\":\"", 10);
		memcpy(res->data + 10, tok, n);
		memcpy(res->data + 10 + n, "\"}", 3);
		res->status = API_OK;
		ev->unit = s->oun;
		ev->jti = jti;
		ev->kid = key->kid;
		app_event(app, res, ev, "token_issued", NULL);
		ev->jti = NULL;		/* this function's */
	}
	free(tok);
	return;
later:
	result_error(res, API_SERVICE_UNAVAILABLE, "The account was "
	    "changed just now; try again in a moment.");
	res->retry_after = retry < 2 ? 2 : retry > 60 ? 60 : (unsigned)retry;
}

/* An attempt refused by the counters (-1 from throttle.c): its event,
 * when it was held back rather than not counted for a store failure. */
static void
held(struct app *app, struct result *res, struct audit_event *ev)
{
	if (res->status == API_TOO_MANY_ATTEMPTS)
		app_event(app, res, ev, "auth_throttled", NULL);
}

/*
 * The common end of the three methods, once the secret was checked (ok;
 * why not, for the operator) or the store failed (e): settle the
 * attempt, then refuse, or sign for the unit asked for.
 */
static void
conclude(struct app *app, struct result *res, struct attempt *a,
    enum store_err e, int ok, const char *why, int basic,
    const struct lookup *l, char units[][CRM_NAME_MAX + 1], size_t nunits,
    const char *unit, struct tok_subject *s, int64_t iat, int64_t cutoff,
    const struct principal_read *pr, struct audit_event *ev)
{
	if (e != STORE_OK) {
		(void)throttle_end(app, a, ATT_UNUSED, res);
		result_store_error(res, app, e);
		return;
	}
	if (!ok) {
		if (throttle_end(app, a, ATT_FAILED, res) == -1) {
			held(app, res, ev);
			return;
		}
		deny(res, basic);
		app_event(app, res, ev, "auth_failed", why);
		return;
	}
	(void)throttle_end(app, a, ATT_SUCCEEDED, res);
	if ((s->oun = pick_unit(units, nunits, unit)) == NULL) {
		result_error(res, API_INVALID_UNIT, NULL);
		app_event(app, res, ev, "auth_failed", "unit_not_allowed");
		return;
	}
	issue(app, res, &l->key, s, iat, cutoff, pr, basic, ev);
}

/* Optional "unit" of the body, which may itself be absent. */
static int
body_unit(const struct request *req, const char **unit, struct result *res)
{
	*unit = NULL;
	if (req->body == NULL)
		return 0;
	return json_field_string(req->body, NULL, "unit", 0, CRM_NAME_MAX,
	    unit, res) == -1 ? -1 : 0;
}

struct rehash {
	const char	*old, *new;
};

/* store_user_change: the new hash, unless the password changed since. */
static int
rehash_user(struct user_rec *u, void *arg)
{
	struct rehash *r = arg;

	if (strcmp(u->pwhash, r->old) != 0)
		return 1;
	snprintf(u->pwhash, sizeof(u->pwhash), "%s", r->new);
	return 0;
}

/*
 * A secret that was right, hashed at another cost than the configured
 * one (argon2_* changed since): hash it again at the configured cost, so
 * that its verify costs what an unknown account's does.  ident NULL: a
 * user's password, and *now the user's hash afterwards (the new one, or
 * old when none was written); else the pass code of org's identifier.
 */
static void
rehash(struct app *app, const char *org, const char *name,
    const char *ident, const char *old, const char *secret, char *now)
{
	char		 new[CRM_PWHASH_MAX];
	struct rehash	 r = { old, new };
	struct user_rec	 after;
	enum store_err	 e;

	if (now != NULL)
		snprintf(now, CRM_PWHASH_MAX, "%s", old);
	if (!sec_pwstale(old, &app->cfg) ||
	    sec_pwhash(new, secret, strlen(secret), &app->cfg) != 0)
		return;
	if (ident == NULL) {
		e = store_user_change(app->store, org, name, rehash_user, &r,
		    &after);
		/* Not written when the password changed meanwhile: then the
		 * hash checked is no longer the user's, and now stays old. */
		if (e == STORE_OK && now != NULL &&
		    strcmp(after.pwhash, new) == 0)
			snprintf(now, CRM_PWHASH_MAX, "%s", new);
		explicit_bzero(&after, sizeof(after));
	} else
		e = store_access_rehash(app->store, org, ident, old, new);
	if (e != STORE_OK && e != STORE_NOTFOUND)
		log_err("rehash: %s: %s", store_strerror(e),
		    store_detail(app->store));
}

void
m_token(struct app *app, const struct request *req, struct result *res)
{
	const char		*user, *pw, *org, *unit, *why = NULL;
	char			 hash[CRM_PWHASH_MAX] = "";
	struct lookup		 l;
	struct tok_subject	 s;
	struct principal_read	 pr;
	struct attempt		 a;
	struct audit_event	 ev;
	enum store_err		 e;
	int64_t			 iat;
	int			 ok;

	/* An empty password is a failed login like any wrong one: the same
	 * answer, the same argon2id cost, counted. */
	if (json_field_string(req->body, NULL, "username", 1, CRM_NAME_MAX,
	    &user, res) == -1 ||
	    json_field_string(req->body, NULL, "password", FIELD_MANDATORY |
	    FIELD_EMPTY_OK, CRM_SECRET_MAX, &pw, res) == -1 ||
	    json_field_string(req->body, NULL, "organisation", 1,
	    CRM_NAME_MAX, &org, res) == -1 ||
	    body_unit(req, &unit, res) == -1)
		return;
	if (app_store(app, res) == NULL)
		return;
	ev = (struct audit_event){ .method = req->path, .org = org,
	    .usr = user, .unit = unit, .client = req->remote_addr };
	a = (struct attempt){ .kind = ATT_USER, .org = org, .name = user,
	    .addr = req->remote_addr };
	if (throttle_begin(app, &a, res) == -1) {
		held(app, res, &ev);
		return;
	}
	iat = app->now();
	e = store_lookup_user(app->store, org, user, &l);
	if (e == STORE_OK && !l.user_found) {
		/* Same cost as a wrong password: no timing oracle. */
		sec_pwverify(app->dummy_hash, pw, strlen(pw));
		ok = 0;
		why = "unknown_user";
	} else {
		ok = e == STORE_OK &&
		    sec_pwverify(l.user.pwhash, pw, strlen(pw)) == 0;
		if (!ok)
			why = "bad_password";
		else if (l.user.disabled) {
			ok = 0;
			why = "disabled";
		}
	}
	if (ok)
		rehash(app, org, user, NULL, l.user.pwhash, pw, hash);
	s = (struct tok_subject){ .usr = user, .org = org };
	pr = (struct principal_read){ .kind = PR_USER, .org = org,
	    .name = user, .created = l.user.created, .pwhash = hash };
	conclude(app, res, &a, e, ok, why, 0, &l, l.user.units,
	    l.user.nunits, unit, &s, iat, l.user.not_before, &pr, &ev);
	lookup_wipe(&l);
}

void
m_web_api_key_token(struct app *app, const struct request *req,
    struct result *res)
{
	char			 key[CRM_NAME_MAX + 1], id[CRM_KEY_ID_HEX + 1];
	unsigned char		 digest[CRM_DIGEST_BYTES];
	const char		*unit, *why = NULL;
	struct lookup		 l;
	struct tok_subject	 s;
	struct principal_read	 pr;
	struct attempt		 a;
	struct audit_event	 ev;
	enum store_err		 e;
	int64_t			 iat;
	int			 ok;

	if (http_basic_key(req->authorization, key, sizeof(key), res) == -1 ||
	    body_unit(req, &unit, res) == -1)
		return;
	if (app_store(app, res) == NULL)
		return;
	sec_sha256(digest, key, strlen(key));
	sec_key_id(id, digest);
	/* What was sent is named by its id only once it is known to be a
	 * key: the digest of a password sent by mistake could be guessed
	 * back from it. */
	ev = (struct audit_event){ .method = req->path, .unit = unit,
	    .client = req->remote_addr };
	a = (struct attempt){ .kind = ATT_APIKEY, .name = id,
	    .addr = req->remote_addr };
	/* A key is counted after its lookup missed (throttle.c): a valid
	 * one writes nothing.  Held: refused before the key is read. */
	iat = app->now();
	e = store_lookup_apikey(app->store, digest,
	    throttle_counters(app, &a, 0), &l);
	if (e == STORE_OK && throttle_held(app, &a, res) == -1) {
		held(app, res, &ev);
		lookup_wipe(&l);
		return;
	}
	ok = e == STORE_OK && l.apikey_found && !l.apikey.revoked &&
	    l.user_found && !l.user.disabled;
	if (e == STORE_OK && l.apikey_found) {
		ev.key_id = id;
		ev.org = l.apikey.org;
		ev.usr = l.apikey.user;
	}
	why = !l.apikey_found ? "unknown_key" : l.apikey.revoked ?
	    "revoked_key" : !l.user_found ? "unknown_user" : "disabled";
	s = (struct tok_subject){ .usr = l.apikey.user, .org = l.apikey.org };
	pr = (struct principal_read){ .kind = PR_APIKEY, .digest = digest };
	conclude(app, res, &a, e, ok, why, 1, &l, l.user.units,
	    l.user.nunits, unit, &s, iat, l.user.not_before, &pr, &ev);
	lookup_wipe(&l);
	explicit_bzero(key, sizeof(key));
}

/* The access_token_identifier object: either authentication_code, or
 * identifier with pass_code. */
static int
access_fields(const struct request *req, const char **code,
    const char **ident, const char **pass, struct result *res)
{
	static const char	 w[] = "access_token_identifier";
	json_object		*ati;
	int			 rc, hc, hi, hp;

	if (!json_object_object_get_ex(req->body, w, &ati) || ati == NULL)
		return result_error(res, API_INVALID_REQUEST,
		    "The field '%s' is missing.", w);
	if (!json_object_is_type(ati, json_type_object))
		return result_error(res, API_INVALID_REQUEST,
		    "The field '%s' must be an object.", w);
	*code = *ident = *pass = NULL;
	if ((rc = json_field_string(ati, w, "authentication_code", 0,
	    CRM_SECRET_MAX, code, res)) == -1)
		return -1;
	hc = rc == 0;
	if ((rc = json_field_string(ati, w, "identifier", 0, CRM_NAME_MAX,
	    ident, res)) == -1)
		return -1;
	hi = rc == 0;
	if ((rc = json_field_string(ati, w, "pass_code", FIELD_EMPTY_OK,
	    CRM_SECRET_MAX, pass, res)) == -1)
		return -1;
	hp = rc == 0;
	if (hc && (hi || hp))
		return result_error(res, API_INVALID_REQUEST, "The field '%s' "
		    "must hold either authentication_code, or identifier "
		    "with pass_code, not both.", w);
	if (hc)
		return 0;
	if (!hi && !hp)
		return result_error(res, API_INVALID_REQUEST, "The field '%s' "
		    "needs authentication_code, or identifier with "
		    "pass_code.", w);
	if (!hi)
		return result_error(res, API_INVALID_REQUEST,
		    "The field '%s.identifier' is missing.", w);
	if (!hp)
		return result_error(res, API_INVALID_REQUEST,
		    "The field '%s.pass_code' is missing.", w);
	return 0;
}

void
m_consumer_token(struct app *app, const struct request *req,
    struct result *res)
{
	char			 key[CRM_NAME_MAX + 1], id[CRM_KEY_ID_HEX + 1];
	unsigned char		 digest[CRM_DIGEST_BYTES], cd[CRM_DIGEST_BYTES];
	const char		*code, *ident, *pass, *unit, *why = NULL;
	struct lookup		 l;
	struct tok_subject	 s;
	struct principal_read	 pr;
	struct attempt		 a;
	struct audit_event	 ev;
	enum store_err		 e;
	int64_t			 iat;
	int			 ok, known, rc;

	if (http_basic_key(req->authorization, key, sizeof(key), res) == -1 ||
	    access_fields(req, &code, &ident, &pass, res) == -1 ||
	    body_unit(req, &unit, res) == -1)
		return;
	if (app_store(app, res) == NULL)
		return;
	sec_sha256(digest, key, strlen(key));
	sec_key_id(id, digest);
	if (code != NULL)
		sec_sha256(cd, code, strlen(code));
	/*
	 * The access token is the key's organisation's: read it all first
	 * (no secret is checked by reading), to know what is guessed.  What
	 * throttle.c says for each: an authentication code is decided in
	 * that read, holding its counters, counted only if wrong; a key
	 * that is not one (or revoked) is a failure whatever else was sent,
	 * counted then, before any pass code's verify; a pass code is
	 * counted before its verify.
	 */
	if (code != NULL)
		a = (struct attempt){ .kind = ATT_CODE, .name = id,
		    .addr = req->remote_addr };
	iat = app->now();
	if ((e = store_lookup_consumer(app->store, digest, code ? cd : NULL,
	    ident, code ? throttle_counters(app, &a, 1) : NULL, &l)) !=
	    STORE_OK) {
		result_store_error(res, app, e);
		lookup_wipe(&l);
		return;
	}
	known = l.consumer_found && !l.consumer.revoked;
	ev = (struct audit_event){ .method = req->path, .unit = unit,
	    .identifier = ident, .client = req->remote_addr };
	if (l.consumer_found) {
		ev.key_id = id;
		ev.org = l.consumer.org;
		ev.usr = l.consumer.app;
	}
	if (!known) {
		a = (struct attempt){ .kind = ATT_CONSUMER, .name = id,
		    .addr = req->remote_addr };
		rc = throttle_decide(app, &a, 0, res);
	} else if (code != NULL)
		rc = throttle_decided(app, &a, res);
	else {
		a = (struct attempt){ .kind = ATT_IDENT,
		    .org = l.consumer.org, .name = ident,
		    .addr = req->remote_addr };
		rc = throttle_begin(app, &a, res);
	}
	if (rc == -1) {
		held(app, res, &ev);
		lookup_wipe(&l);
		return;
	}
	if (pass == NULL)
		ok = known && l.access_found;
	else if (known && l.access_found && l.access.passhash[0] != '\0') {
		ok = sec_pwverify(l.access.passhash, pass, strlen(pass)) == 0;
		why = "bad_pass_code";
	} else {
		/* The verify a real pass code costs. */
		sec_pwverify(app->dummy_hash, pass, strlen(pass));
		ok = 0;
	}
	if (!known)
		why = l.consumer_found ? "revoked_key" : "unknown_key";
	else if (why == NULL)
		why = "unknown_access_token";
	if (ok && pass != NULL)
		rehash(app, l.consumer.org, NULL, ident, l.access.passhash,
		    pass, NULL);
	/* A code added before codes were keyed: keyed now that it is
	 * known right (PostgreSQL; README.md, "PostgreSQL"). */
	if (ok && code != NULL && l.access_legacy &&
	    (e = store_access_rekey(app->store, l.consumer.org, cd)) !=
	    STORE_OK)
		log_err("rekey: %s: %s", store_strerror(e),
		    store_detail(app->store));
	s = (struct tok_subject){ .usr = l.consumer.app,
	    .org = l.consumer.org, .cii = l.access.contact,
	    .ari = l.access.ari };
	pr = (struct principal_read){ .kind = PR_CONSUMER, .digest = digest,
	    .code = code ? cd : NULL, .ident = ident };
	conclude(app, res, &a, STORE_OK, ok, why, 1, &l, l.consumer.units,
	    l.consumer.nunits, unit, &s, iat, l.app_cutoff, &pr, &ev);
	lookup_wipe(&l);
	explicit_bzero(key, sizeof(key));
}
