/*
 * Tokens: JWS compact serialisation (RFC 7515), HS256 only.
 *
 * Signing uses libjwt.  Verification does not call jwt_decode(): libjwt
 * 1.10 lets the token's header choose the algorithm, turns verification
 * off for a NULL or empty key, compares HMACs with strcmp and crashes on
 * very long input.  So we check the length first, read the header with
 * json-c, insist on "alg":"HS256" (case-sensitive, RFC 7515 §4.1.1),
 * choose the key by kid, compute the HMAC ourselves and compare it in
 * constant time, and only then read the claims.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <jwt.h>

#include "extern.h"

#define HEADER_MAX	512	/* decoded JOSE header */

const char *
tok_strerror(enum tok_err e)
{
	switch (e) {
	case TOK_OK:
		return "valid";
	case TOK_MALFORMED:
		return "token is malformed";
	case TOK_BADALG:
		return "token algorithm is not HS256";
	case TOK_UNKNOWN_KID:
		return "token signing key is unknown";
	case TOK_BADSIG:
		return "token signature does not match";
	case TOK_BADCLAIMS:
		return "token claims are not ours";
	case TOK_EXPIRED:
		return "token has expired";
	case TOK_RELEASED:
		return "token was released";
	case TOK_STORE:
		return "store failure while checking the token";
	case TOK_INTERNAL:
		break;
	}
	return "internal error";
}

void
tok_claims_free(struct claims *c)
{
	if (c->obj != NULL)
		json_object_put(c->obj);
	memset(c, 0, sizeof(*c));
}

enum tok_err
tok_issue(const struct sigkey *key, const struct tok_subject *s,
    int64_t now, int64_t ttl, char **out)
{
	jwt_t		*j = NULL;
	char		 jti[CRM_JTI_HEX + 1];
	enum tok_err	 e = TOK_INTERNAL;

	*out = NULL;
	sec_random_hex(jti, CRM_JTI_BYTES);
	if (jwt_new(&j) != 0)
		return TOK_INTERNAL;
	if (jwt_set_alg(j, JWT_ALG_HS256, key->secret,
	    CRM_SIGKEY_BYTES) != 0 ||
	    jwt_add_header(j, "kid", key->kid) != 0 ||
	    jwt_add_grant(j, "jti", jti) != 0 ||
	    jwt_add_grant(j, "usr", s->usr) != 0 ||
	    jwt_add_grant(j, "org", s->org) != 0 ||
	    jwt_add_grant(j, "oun", s->oun) != 0 ||
	    jwt_add_grant_int(j, "iat", (long)now) != 0 ||
	    jwt_add_grant_int(j, "exp", (long)(now + ttl)) != 0)
		goto out;
	if (s->cii != NULL && jwt_add_grant(j, "cii", s->cii) != 0)
		goto out;
	if (s->acr != NULL && s->acr[0] != '\0' &&
	    jwt_add_grant(j, "acr", s->acr) != 0)
		goto out;
	if ((*out = jwt_encode_str(j)) != NULL)
		e = TOK_OK;
out:
	jwt_free(j);
	return e;
}

/* Parse a decoded JSON object (header or claims); NULL if not one. */
static json_object *
parse_object(const unsigned char *buf, size_t len)
{
	json_tokener	*tok;
	json_object	*o;

	if ((tok = json_tokener_new_ex(CRM_JSON_DEPTH)) == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, (const char *)buf, (int)len);
	if (o != NULL && (json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* A string member, or NULL when absent or not a string. */
static const char *
member_str(json_object *o, const char *name, int *present)
{
	json_object *m;

	*present = json_object_object_get_ex(o, name, &m);
	if (!*present || !json_object_is_type(m, json_type_string))
		return NULL;
	/* Refuse embedded NUL: the C string would not be the JSON one. */
	if (strlen(json_object_get_string(m)) !=
	    (size_t)json_object_get_string_len(m))
		return NULL;
	return json_object_get_string(m);
}

static enum tok_err
read_claims(struct claims *c)
{
	json_object	*m;
	int		 present;

	c->jti = member_str(c->obj, "jti", &present);
	c->usr = member_str(c->obj, "usr", &present);
	c->org = member_str(c->obj, "org", &present);
	c->oun = member_str(c->obj, "oun", &present);
	if (c->jti == NULL || c->usr == NULL || c->org == NULL ||
	    c->oun == NULL)
		return TOK_BADCLAIMS;
	if (strlen(c->jti) != CRM_JTI_HEX ||
	    sec_unhex(c->jti_bin, CRM_JTI_BYTES, c->jti, CRM_JTI_HEX) != 0)
		return TOK_BADCLAIMS;
	c->cii = member_str(c->obj, "cii", &present);
	if (present && c->cii == NULL)
		return TOK_BADCLAIMS;
	c->acr = member_str(c->obj, "acr", &present);
	if (present && c->acr == NULL)
		return TOK_BADCLAIMS;
	/* NumericDate: a JSON number, not a string that looks like one. */
	if (!json_object_object_get_ex(c->obj, "iat", &m) ||
	    !json_object_is_type(m, json_type_int))
		return TOK_BADCLAIMS;
	c->iat = json_object_get_int64(m);
	if (!json_object_object_get_ex(c->obj, "exp", &m) ||
	    !json_object_is_type(m, json_type_int))
		return TOK_BADCLAIMS;
	c->exp = json_object_get_int64(m);
	if (c->exp <= c->iat)
		return TOK_BADCLAIMS;
	return TOK_OK;
}

enum tok_err
tok_verify(const char *token, size_t len, tok_keyfn keyfn, void *arg,
    struct claims *c)
{
	const char	*dot1, *dot2, *kid, *alg, *typ;
	unsigned char	 hdr[HEADER_MAX], sig[64], mac[32];
	unsigned char	*payload = NULL;
	size_t		 hlen, slen, plen;
	json_object	*h = NULL, *m;
	struct sigkey	 key;
	enum tok_err	 e = TOK_MALFORMED;
	int		 present;

	memset(c, 0, sizeof(*c));
	memset(&key, 0, sizeof(key));
	/* Before any decoding: bounded, printable, three parts. */
	if (len == 0 || len > CRM_TOKEN_MAX || memchr(token, '\0', len))
		return TOK_MALFORMED;
	if ((dot1 = memchr(token, '.', len)) == NULL)
		return TOK_MALFORMED;
	dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (dot2 == NULL || memchr(dot2 + 1, '.',
	    len - (size_t)(dot2 + 1 - token)) != NULL)
		return TOK_MALFORMED;
	if (dot1 == token || dot2 == dot1 + 1 || dot2 + 1 == token + len)
		return TOK_MALFORMED;

	if (b64url_decode(hdr, sizeof(hdr), &hlen, token,
	    (size_t)(dot1 - token)) != 0 ||
	    (h = parse_object(hdr, hlen)) == NULL)
		goto out;
	if ((alg = member_str(h, "alg", &present)) == NULL)
		goto out;
	if (strcmp(alg, "HS256") != 0 ||
	    json_object_object_get_ex(h, "crit", &m)) {
		e = TOK_BADALG;
		goto out;
	}
	typ = member_str(h, "typ", &present);
	if (present && (typ == NULL || strcmp(typ, "JWT") != 0))
		goto out;
	kid = member_str(h, "kid", &present);
	if (kid == NULL || strlen(kid) != CRM_KID_HEX) {
		e = TOK_UNKNOWN_KID;
		goto out;
	}
	switch (keyfn(arg, kid, &key)) {
	case 0:
		break;
	case 1:
		e = TOK_UNKNOWN_KID;
		goto out;
	default:
		e = TOK_STORE;
		goto out;
	}

	/* The signature: exactly 32 bytes, compared in constant time. */
	if (b64url_decode(sig, sizeof(sig), &slen, dot2 + 1,
	    len - (size_t)(dot2 + 1 - token)) != 0 || slen != sizeof(mac)) {
		e = TOK_BADSIG;
		goto out;
	}
	sec_hmac256(mac, key.secret, sizeof(key.secret), token,
	    (size_t)(dot2 - token));
	if (!sec_equal(mac, sig, sizeof(mac))) {
		e = TOK_BADSIG;
		goto out;
	}

	/* Authentic: now the claims may be read. */
	plen = (size_t)(dot2 - dot1 - 1);
	if ((payload = malloc(plen)) == NULL) {
		e = TOK_INTERNAL;
		goto out;
	}
	if (b64url_decode(payload, plen, &plen, dot1 + 1,
	    (size_t)(dot2 - dot1 - 1)) != 0 ||
	    (c->obj = parse_object(payload, plen)) == NULL) {
		e = TOK_BADCLAIMS;
		goto out;
	}
	e = read_claims(c);
out:
	free(payload);
	if (h != NULL)
		json_object_put(h);
	memset(&key, 0, sizeof(key));
	memset(mac, 0, sizeof(mac));
	if (e != TOK_OK)
		tok_claims_free(c);
	return e;
}

int
tok_store_key(void *arg, const char *kid, struct sigkey *key)
{
	switch (store_sigkey_get(arg, kid, key)) {
	case STORE_OK:
		/* A retired key still verifies signatures until a write
		 * deletes it: every token it signed has expired by then, and
		 * tok_check says so. */
		return 0;
	case STORE_NOTFOUND:
		return 1;
	default:
		return -1;
	}
}

enum tok_err
tok_check(struct store *st, const char *token, size_t len, int64_t now,
    struct claims *c)
{
	enum tok_err	 e;
	int64_t		 exp;

	if ((e = tok_verify(token, len, tok_store_key, st, c)) != TOK_OK)
		return e;
	if (now >= c->exp)
		return TOK_EXPIRED;	/* RFC 7519 §4.1.4: not on or after */
	switch (store_released_get(st, c->jti_bin, &exp)) {
	case STORE_NOTFOUND:
		return TOK_OK;
	case STORE_OK:
		return TOK_RELEASED;
	default:
		return TOK_STORE;
	}
}
