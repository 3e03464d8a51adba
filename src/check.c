/*
 * authentication/token/check, and the same check for the FastCGI
 * authorizer role: is this token authentic, unexpired and not released?
 * Reads only: no write transaction on this path.  Refusals carry the
 * RFC 6750 §3 challenge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "extern.h"

#define CHALLENGE_NONE	  "Bearer"
#define CHALLENGE_INVALID "Bearer error=\"invalid_token\""

int
token_check(struct app *app, const char *authz, const char *body_token,
    struct result *res, struct claims *c)
{
	const char	*tok = NULL;
	size_t		 len = 0;
	enum tok_err	 te;
	int		 rc;

	tok_claims_init(c);
	rc = http_bearer(authz, &tok, &len);
	if (rc == 1 && body_token != NULL)
		/* RFC 6750 §2: one method per request. */
		return result_error(res, API_INVALID_REQUEST, "Send the token "
		    "in the Authorization header or in the body, not both.");
	if (rc == -1) {
		result_error(res, API_INVALID_TOKEN, NULL);
		res->www_authenticate = CHALLENGE_INVALID;
		return -1;
	}
	if (rc == 0 && body_token != NULL) {
		tok = body_token;
		len = strlen(body_token);
	}
	if (tok == NULL) {
		/* No credentials: a bare challenge, no error code (§3.1). */
		result_error(res, API_INVALID_TOKEN, "No token was sent; send "
		    "it as Authorization: Bearer TOKEN.");
		res->www_authenticate = CHALLENGE_NONE;
		return -1;
	}
	if (app_store(app, res) == NULL)
		return -1;
	te = tok_check(app->store, tok, len, app->now(), app->cfg.token_ttl, c);
	switch (te) {
	case TOK_OK:
		return 0;
	case TOK_EXPIRED:
		result_error(res, API_TOKEN_EXPIRED, NULL);
		break;
	case TOK_RELEASED:
	case TOK_REVOKED:
		result_error(res, API_TOKEN_RELEASED, NULL);
		break;
	case TOK_STORE:
		tok_claims_free(c);
		result_store_error(res, app, app_store_why(app));
		return -1;
	case TOK_INTERNAL:
		tok_claims_free(c);
		return result_error(res, API_INTERNAL_ERROR, NULL);
	default:
		result_error(res, API_INVALID_TOKEN, NULL);
		break;
	}
	tok_claims_free(c);
	res->www_authenticate = CHALLENGE_INVALID;
	return -1;
}

void
m_check(struct app *app, const struct request *req, struct result *res)
{
	const char	*body_token = NULL;
	struct claims	 c;

	if (req->body != NULL && json_field_string(req->body, NULL, "token", 0,
	    app->cfg.max_body, &body_token, res) == -1)
		return;
	if (token_check(app, req->authorization, body_token, res, &c) == -1)
		return;
	if ((res->data = strdup(c.json)) == NULL)
		result_error(res, API_INTERNAL_ERROR, NULL);
	else
		res->status = API_OK;
	tok_claims_free(&c);
}

/* A claim as a Variable- header, unless its value could break the
 * header block (names come from our own store, but never trust). */
static size_t
variable(char *buf, size_t size, const char *name, const char *value)
{
	int n;

	if (value == NULL)
		return 0;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if (*p < 0x20 || *p == 0x7f) {
			log_err("authorizer: claim %s has a control character; "
			    "not passed on", name);
			return 0;
		}
	n = snprintf(buf, size, "Variable-CRMAUTH_%s: %s\r\n", name, value);
	return n < 0 || (size_t)n >= size ? size : (size_t)n;
}

void
http_authorize(struct app *app, const struct http_io *io)
{
	struct result	 res;
	struct claims	 c;
	char		 out[4 * CRM_TOKEN_MAX], num[32];
	size_t		 off;

	result_init(&res);
	/* Not ready: res is the 503. */
	if (app_ready(app, io, &res) == 0 && token_check(app,
	    io->param(io->ctx, "HTTP_AUTHORIZATION"), NULL, &res, &c) == 0) {
		/* FastCGI §6.3: 200 authorizes; Variable-NAME headers are
		 * passed on to whatever serves the request. */
		off = (size_t)snprintf(out, sizeof(out), "Status: 200 OK\r\n");
		off += variable(out + off, sizeof(out) - off, "JTI", c.jti);
		off += variable(out + off, sizeof(out) - off, "USR", c.usr);
		off += variable(out + off, sizeof(out) - off, "ORG", c.org);
		off += variable(out + off, sizeof(out) - off, "OUN", c.oun);
		off += variable(out + off, sizeof(out) - off, "CII", c.cii);
		off += variable(out + off, sizeof(out) - off, "ARI", c.ari);
		snprintf(num, sizeof(num), "%lld", (long long)c.iat);
		off += variable(out + off, sizeof(out) - off, "IAT", num);
		snprintf(num, sizeof(num), "%lld", (long long)c.exp);
		off += variable(out + off, sizeof(out) - off, "EXP", num);
		tok_claims_free(&c);
		if (off + sizeof("Content-Length: 0\r\n\r\n") <= sizeof(out)) {
			memcpy(out + off, "Content-Length: 0\r\n\r\n", 22);
			io->write(io->ctx, out, off + 21);
			return;
		}
		result_error(&res, API_INTERNAL_ERROR, NULL);
	}
	http_respond(io, &res);
	result_free(&res);
}
