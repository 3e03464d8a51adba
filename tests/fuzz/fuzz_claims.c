/*
 * Claims: the input is a token's payload, signed here as crmauth signs,
 * then verified, so that every input reaches the claims readers (a
 * mutated token almost never has a good signature).  What passes must
 * have every claim we rely on; and claims read in place (our own
 * spelling) must be what json-c reads from the same bytes, and what it
 * writes back, since the check method answers them as they are.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The string member name of o, or NULL. */
static const char *
str(json_object *o, const char *name)
{
	json_object *m;

	if (!json_object_object_get_ex(o, name, &m) ||
	    !json_object_is_type(m, json_type_string))
		return NULL;
	return json_object_get_string(m);
}

static int
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
same_as_jsonc(const struct claims *c)
{
	json_tokener	*tok;
	json_object	*o, *m;
	const char	*back;

	if ((tok = json_tokener_new()) == NULL)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, c->json, (int)strlen(c->json));
	if (o == NULL || json_tokener_get_parse_end(tok) != strlen(c->json))
		abort();
	if (!same(str(o, "jti"), c->jti) || !same(str(o, "usr"), c->usr) ||
	    !same(str(o, "org"), c->org) || !same(str(o, "oun"), c->oun) ||
	    !same(str(o, "cii"), c->cii) || !same(str(o, "ari"), c->ari))
		abort();
	if (!json_object_object_get_ex(o, "exp", &m) ||
	    !json_object_is_type(m, json_type_int) ||
	    json_object_get_int64(m) != c->exp ||
	    !json_object_object_get_ex(o, "iat", &m) ||
	    !json_object_is_type(m, json_type_int) ||
	    json_object_get_int64(m) != c->iat)
		abort();
	back = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (back == NULL || strcmp(back, c->json) != 0)
		abort();
	json_object_put(o);
	json_tokener_free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char	 hdr[] = "{\"alg\":\"HS256\",\"kid\":\""
	    FUZZ_KID "\",\"typ\":\"JWT\"}";
	char			 tok[CRM_TOKEN_MAX + 64], *p;
	unsigned char		 mac[32];
	struct claims		 c;

	if (sec_init() == -1)
		abort();
	/* Within CRM_TOKEN_MAX once encoded, header and MAC included. */
	if (size > (CRM_TOKEN_MAX - 128) / 4 * 3)
		return 0;
	p = b64url_encode_public(tok, (const unsigned char *)hdr,
	    sizeof(hdr) - 1);
	*p++ = '.';
	p = b64url_encode_public(p, data, size);
	sec_hmac256(mac, fuzz_key.secret, sizeof(fuzz_key.secret), tok,
	    (size_t)(p - tok));
	*p++ = '.';
	p = b64url_encode_public(p, mac, sizeof(mac));
	if (tok_verify(tok, (size_t)(p - tok), fuzz_keyfn, NULL,
	    INT64_MAX, INT64_MAX, &c) == TOK_OK) {
		if (c.jti == NULL || c.usr == NULL || c.org == NULL ||
		    c.oun == NULL || strlen(c.jti) != CRM_JTI_HEX ||
		    c.exp <= c.iat || c.json == NULL)
			abort();
		if (c.obj == NULL)
			same_as_jsonc(&c);
	}
	tok_claims_free(&c);
	return 0;
}
