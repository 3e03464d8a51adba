/*
 * The three ways to get a token (API.md §3): username + password +
 * organisation, a Web API key, a consumer application key with an access
 * token identifier.  Every failed authentication answers the same 401
 * body, and an unknown account costs the argon2id verify a known one
 * does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Sign a token for s with the current key; data = {"token": ...}. */
static void
issue(struct app *app, struct result *res, const struct tok_subject *s)
{
	struct sigkey	 key;
	enum store_err	 e;
	enum tok_err	 te;
	char		*tok = NULL;
	size_t		 n;

	if ((e = store_sigkey_current(app->store, &key)) != STORE_OK) {
		result_store_error(res, app, e);
		return;
	}
	te = tok_issue(&key, s, app->now(), app->cfg.token_ttl, &tok);
	memset(&key, 0, sizeof(key));
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
	}
	free(tok);
}

/*
 * The common end of the three methods.  e is the outcome of looking the
 * credentials up, every failure already folded into STORE_NOTFOUND: count
 * it, or clear the pair's count and sign.
 */
static void
conclude(struct app *app, struct result *res, struct throttle *t,
    enum store_err e, int basic, char units[][CRM_NAME_MAX + 1],
    size_t nunits, const char *unit, struct tok_subject *s)
{
	if (e == STORE_NOTFOUND) {
		if (throttle_failed(app, t, res) == 0)
			deny(res, basic);
		return;
	}
	if (e != STORE_OK) {
		result_store_error(res, app, e);
		return;
	}
	throttle_succeeded(app, t);
	if ((s->oun = pick_unit(units, nunits, unit)) == NULL) {
		result_error(res, API_INVALID_UNIT, NULL);
		return;
	}
	issue(app, res, s);
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

void
m_token(struct app *app, const struct request *req, struct result *res)
{
	const char	*user, *pw, *org, *unit;
	struct user_rec	 u;
	struct tok_subject s;
	struct throttle	 t = { .addr = req->remote_addr };
	enum store_err	 e;

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
	throttle_account(t.account, 'U', org, user);
	if (throttle_check(app, &t, res) == -1)
		return;
	u.nunits = 0;
	e = store_user_get(app->store, org, user, &u);
	if (e == STORE_NOTFOUND)
		/* Same cost as a wrong password: no timing oracle. */
		sec_pwverify(app->dummy_hash, pw, strlen(pw));
	else if (e == STORE_OK &&
	    (sec_pwverify(u.pwhash, pw, strlen(pw)) != 0 || u.disabled))
		e = STORE_NOTFOUND;
	s = (struct tok_subject){ .usr = user, .org = org };
	conclude(app, res, &t, e, 0, u.units, u.nunits, unit, &s);
}

void
m_web_api_key_token(struct app *app, const struct request *req,
    struct result *res)
{
	char			 key[CRM_NAME_MAX + 1];
	unsigned char		 digest[CRM_DIGEST_BYTES];
	const char		*unit;
	struct apikey_rec	 ak;
	struct user_rec		 u;
	struct tok_subject	 s;
	struct throttle		 t = { .addr = req->remote_addr };
	enum store_err		 e;

	if (http_basic_key(req->authorization, key, sizeof(key), res) == -1 ||
	    body_unit(req, &unit, res) == -1)
		return;
	if (app_store(app, res) == NULL)
		return;
	throttle_account(t.account, 'K', key, NULL);
	if (throttle_check(app, &t, res) == -1)
		return;
	sec_sha256(digest, key, strlen(key));
	u.nunits = 0;
	e = store_apikey_get(app->store, digest, &ak);
	if (e == STORE_OK && !ak.revoked)
		e = store_user_get(app->store, ak.org, ak.user, &u);
	else if (e == STORE_OK || e == STORE_NOTFOUND) {
		/* The same lookups as for a good key: the same cost. */
		store_user_get(app->store, "", "", &u);
		e = STORE_NOTFOUND;
	}
	if (e == STORE_OK && u.disabled)
		e = STORE_NOTFOUND;
	s = (struct tok_subject){ .usr = ak.user, .org = ak.org };
	conclude(app, res, &t, e, 1, u.units, u.nunits, unit, &s);
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
	char			 key[CRM_NAME_MAX + 1];
	unsigned char		 digest[CRM_DIGEST_BYTES], cd[CRM_DIGEST_BYTES];
	const char		*code, *ident, *pass, *unit;
	struct consumer_rec	 ck;
	struct access_rec	 at;
	struct tok_subject	 s;
	struct throttle		 t = { .addr = req->remote_addr };
	enum store_err		 e;

	if (http_basic_key(req->authorization, key, sizeof(key), res) == -1 ||
	    access_fields(req, &code, &ident, &pass, res) == -1 ||
	    body_unit(req, &unit, res) == -1)
		return;
	if (app_store(app, res) == NULL)
		return;
	/* A pass code is guessed per identifier; a code, like a key. */
	if (ident != NULL)
		throttle_account(t.account, 'I', key, ident);
	else
		throttle_account(t.account, 'C', key, NULL);
	if (throttle_check(app, &t, res) == -1)
		return;
	sec_sha256(digest, key, strlen(key));
	ck.nunits = 0;
	e = store_consumer_get(app->store, digest, &ck);
	if (e == STORE_OK && ck.revoked)
		e = STORE_NOTFOUND;
	if (e == STORE_OK && code != NULL) {
		sec_sha256(cd, code, strlen(code));
		e = store_access_get_code(app->store, ck.org, cd, &at);
	} else if (e == STORE_OK) {
		e = store_access_get_ident(app->store, ck.org, ident, &at);
		if (e == STORE_OK && (at.passhash[0] == '\0' ||
		    sec_pwverify(at.passhash, pass, strlen(pass)) != 0))
			e = STORE_NOTFOUND;
		else if (e == STORE_NOTFOUND)
			sec_pwverify(app->dummy_hash, pass, strlen(pass));
	} else if (e == STORE_NOTFOUND) {
		/* The same work as for a good key: a lookup, and a verify
		 * where a pass code was given. */
		store_access_get_code(app->store, "", digest, &at);
		if (pass != NULL)
			sec_pwverify(app->dummy_hash, pass, strlen(pass));
	}
	s = (struct tok_subject){ .usr = ck.app, .org = ck.org,
	    .cii = at.contact, .ari = at.ari };
	conclude(app, res, &t, e, 1, ck.units, ck.nunits, unit, &s);
}
