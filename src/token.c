/*
 * Tokens: JWS compact serialisation (RFC 7515), HS256 only.
 *
 * Signing writes the JSON and base64url itself and MACs with libsodium:
 * libjwt 1.10 builds two jansson trees per token and MACs through
 * OpenSSL 3, whose lazy initialisation (openssl.cnf and all) was half of
 * a CGI request's instructions, and jwt_encode_str() more than half of a
 * FastCGI token request's.  The bytes are libjwt's: members sorted,
 * compact, jansson's string escapes; the unit tests compare them with
 * libjwt's own output and decode our tokens with jwt_decode().
 *
 * Verification does not call jwt_decode() either: libjwt 1.10 lets the
 * token's header choose the algorithm (an HS512 token signed with the
 * same key passes), compares "alg" without regard to case, turns
 * verification off for a NULL or empty key, has no way to choose the key
 * by kid, checks no claim, and crashes on very long input (alloca in its
 * base64 decoder).  (Its strcmp of HMACs, CVE-2024-25189, is patched in
 * Debian's 1.10.2-1+deb12u1; we compare in constant time regardless.)
 * So we check the length first, read the header, insist on
 * "alg":"HS256" (case-sensitive, RFC 7515 §4.1.1), choose the key by
 * kid, compute the HMAC ourselves and compare it in constant time, and
 * only then read the claims: our own spelling in place, any other with
 * json-c.
 *
 * Every part of a token is public, so its base64url goes through the
 * table coder; secrets go through the constant-time one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "extern.h"

#define HEADER_MAX	512	/* decoded JOSE header */
#define CLOCK_DRIFT	60	/* seconds a token's iat may be ahead of us */
/* Claims as we write them: five names (each at most 6 bytes escaped per
 * byte), a jti, two numbers and the punctuation. */
#define CLAIMS_MAX	(5 * (6 * CRM_NAME_MAX + 8) + CRM_JTI_HEX + 128)

/* The header we write; verification takes it without a JSON parse. */
#define HDR_HEAD	"{\"alg\":\"HS256\",\"kid\":\""
#define HDR_TAIL	"\",\"typ\":\"JWT\"}"
#define HDR_LEN		(sizeof(HDR_HEAD) - 1 + CRM_KID_HEX + \
			    sizeof(HDR_TAIL) - 1)

/* A JSON string with jansson's escapes (so libjwt's): \" \\ \b \f \n
 * \r \t, \u00XX for other controls, everything else as it is. */
static void
jstr(struct fbuf *j, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const char	*run = s;
	char		 esc[6];

	fbuf_add(j, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		fbuf_add(j, run, (size_t)(s - run));
		run = s + 1;
		esc[0] = '\\';
		switch (c) {
		case '"': case '\\':
			esc[1] = (char)c;
			break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			fbuf_add(j, esc, 6);
			continue;
		}
		fbuf_add(j, esc, 2);
	}
	fbuf_add(j, run, (size_t)(s - run));
	fbuf_add(j, "\"", 1);
}

static void
jmember_str(struct fbuf *j, const char *name, const char *v)
{
	fbuf_add(j, j->len > 1 ? ",\"" : "\"", j->len > 1 ? 2 : 1);
	fbuf_add(j, name, strlen(name));
	fbuf_add(j, "\":", 2);
	jstr(j, v);
}

static void
jmember_int(struct fbuf *j, const char *name, int64_t v)
{
	char		 num[24], *p = num + sizeof(num);
	uint64_t	 u = v < 0 ? -(uint64_t)v : (uint64_t)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	fbuf_add(j, j->len > 1 ? ",\"" : "\"", j->len > 1 ? 2 : 1);
	fbuf_add(j, name, strlen(name));
	fbuf_add(j, "\":", 2);
	fbuf_add(j, p, (size_t)(num + sizeof(num) - p));
}

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
	case TOK_REVOKED:
		return "token was revoked (its user or key was cut off)";
	case TOK_STORE:
		return "store failure while checking the token";
	case TOK_INTERNAL:
		break;
	}
	return "internal error";
}

void
tok_claims_init(struct claims *c)
{
	c->obj = NULL;
	tok_claims_free(c);
}

void
tok_claims_free(struct claims *c)
{
	if (c->obj != NULL)
		json_object_put(c->obj);
	c->obj = NULL;
	c->json = c->jti = c->usr = c->org = c->oun = c->cii = c->ari = NULL;
	c->iat = c->exp = 0;
}

enum tok_err
tok_encode(const struct sigkey *key, const struct tok_subject *s,
    const char *jti, int64_t now, int64_t ttl, char **out)
{
	char		 hdr[HDR_LEN + 1], claims[CLAIMS_MAX];
	struct fbuf	 j = { claims, 0, sizeof(claims), 0 };
	unsigned char	 mac[32];
	char		*t, *p;
	size_t		 n;

	*out = NULL;
	/* jansson refuses what is not UTF-8, and so did libjwt. */
	if (!utf8_valid(s->usr) || !utf8_valid(s->org) || !utf8_valid(s->oun) ||
	    (s->cii != NULL && !utf8_valid(s->cii)) ||
	    (s->ari != NULL && !utf8_valid(s->ari)))
		return TOK_INTERNAL;
	/* Members in jansson's sorted order, as libjwt writes them. */
	fbuf_add(&j, "{", 1);
	if (s->ari != NULL && s->ari[0] != '\0')
		jmember_str(&j, "ari", s->ari);
	if (s->cii != NULL)
		jmember_str(&j, "cii", s->cii);
	jmember_int(&j, "exp", now + ttl);
	jmember_int(&j, "iat", now);
	jmember_str(&j, "jti", jti);
	jmember_str(&j, "org", s->org);
	jmember_str(&j, "oun", s->oun);
	jmember_str(&j, "usr", s->usr);
	fbuf_add(&j, "}", 1);
	if (j.full || strlen(key->kid) != CRM_KID_HEX)
		return TOK_INTERNAL;
	memcpy(hdr, HDR_HEAD, sizeof(HDR_HEAD) - 1);
	memcpy(hdr + sizeof(HDR_HEAD) - 1, key->kid, CRM_KID_HEX);
	memcpy(hdr + sizeof(HDR_HEAD) - 1 + CRM_KID_HEX, HDR_TAIL,
	    sizeof(HDR_TAIL));

	/* A token we could not verify ourselves is not issued. */
	n = b64url_len(HDR_LEN) - 1 + 1 + b64url_len(j.len) - 1 + 1 +
	    b64url_len(sizeof(mac)) - 1;
	if (n > CRM_TOKEN_MAX || (t = malloc(n + 1)) == NULL)
		return TOK_INTERNAL;
	p = b64url_encode_public(t, (const unsigned char *)hdr, HDR_LEN);
	*p++ = '.';
	p = b64url_encode_public(p, (const unsigned char *)claims, j.len);
	sec_hmac256(mac, key->secret, sizeof(key->secret), t,
	    (size_t)(p - t));
	*p++ = '.';
	p = b64url_encode_public(p, mac, sizeof(mac));
	*p = '\0';
	memset(mac, 0, sizeof(mac));
	*out = t;
	return TOK_OK;
}

enum tok_err
tok_issue(const struct sigkey *key, const struct tok_subject *s,
    int64_t now, int64_t ttl, char **out, char jti[CRM_JTI_HEX + 1])
{
	sec_random_hex(jti, CRM_JTI_BYTES);
	return tok_encode(key, s, jti, now, ttl, out);
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

/* What every reading of the claims must hold. */
static enum tok_err
claims_valid(struct claims *c)
{
	if (c->jti == NULL || c->usr == NULL || c->org == NULL ||
	    c->oun == NULL)
		return TOK_BADCLAIMS;
	if (strlen(c->jti) != CRM_JTI_HEX ||
	    sec_unhex(c->jti_bin, CRM_JTI_BYTES, c->jti, CRM_JTI_HEX) != 0)
		return TOK_BADCLAIMS;
	if (c->exp <= c->iat)
		return TOK_BADCLAIMS;
	return TOK_OK;
}

/* The claims of any spelling, through json-c. */
static enum tok_err
read_claims_json(struct claims *c, size_t len)
{
	json_object	*m;
	int		 present;

	if ((c->obj = parse_object((unsigned char *)c->payload, len)) == NULL)
		return TOK_BADCLAIMS;
	c->jti = member_str(c->obj, "jti", &present);
	c->usr = member_str(c->obj, "usr", &present);
	c->org = member_str(c->obj, "org", &present);
	c->oun = member_str(c->obj, "oun", &present);
	c->cii = member_str(c->obj, "cii", &present);
	if (present && c->cii == NULL)
		return TOK_BADCLAIMS;
	c->ari = member_str(c->obj, "ari", &present);
	if (present && c->ari == NULL)
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
	if ((c->json = json_object_to_json_string_ext(c->obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) == NULL)
		return TOK_INTERNAL;
	return claims_valid(c);
}

/*
 * Our own spelling of the claims, read in place: the members tok_encode()
 * writes, in its order, strings with nothing to unescape (well-formed
 * UTF-8, no control character, quote or backslash) and integers of at
 * most 18 digits.  What this takes, json-c reads to the same values, and
 * json-c writes back to the same bytes; anything else is left to json-c
 * (-1).
 */
struct plain {
	const char	*p, *end;
	char		*w;	/* into c->strings */
	int		 bad;
};

static void
plain_lit(struct plain *s, const char *lit)
{
	size_t n = strlen(lit);

	if (s->bad || (size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
		s->bad = 1;
	else
		s->p += n;
}

static const char *
plain_str(struct plain *s)
{
	const char	*start, *out = s->w;
	size_t		 n;

	plain_lit(s, "\"");
	start = s->p;
	while (!s->bad && s->p < s->end && *s->p != '"') {
		if ((unsigned char)*s->p < 0x20 || *s->p == '\\' ||
		    (n = utf8_len((const unsigned char *)s->p,
		    (size_t)(s->end - s->p))) == 0) {
			s->bad = 1;
			break;
		}
		s->p += n;
	}
	plain_lit(s, "\"");
	if (s->bad)
		return NULL;
	n = (size_t)(s->p - 1 - start);
	memcpy(s->w, start, n);
	s->w[n] = '\0';
	s->w += n + 1;
	return out;
}

static int64_t
plain_int(struct plain *s)
{
	int64_t	 v = 0;
	int	 digits = 0;

	if (s->bad || s->p == s->end || *s->p < '0' || *s->p > '9' ||
	    (*s->p == '0' && s->p + 1 < s->end && s->p[1] >= '0' &&
	    s->p[1] <= '9')) {
		s->bad = 1;
		return 0;
	}
	for (; s->p < s->end && *s->p >= '0' && *s->p <= '9'; s->p++)
		if (++digits > 18)
			s->bad = 1;
		else
			v = v * 10 + (*s->p - '0');
	return v;
}

static int
read_claims_ours(struct claims *c, size_t len)
{
	struct plain s = { c->payload, c->payload + len, c->strings, 0 };

	plain_lit(&s, "{");
	if (s.end - s.p > 6 && memcmp(s.p, "\"ari\":", 6) == 0) {
		plain_lit(&s, "\"ari\":");
		c->ari = plain_str(&s);
		plain_lit(&s, ",");
	}
	if (s.end - s.p > 6 && memcmp(s.p, "\"cii\":", 6) == 0) {
		plain_lit(&s, "\"cii\":");
		c->cii = plain_str(&s);
		plain_lit(&s, ",");
	}
	plain_lit(&s, "\"exp\":");
	c->exp = plain_int(&s);
	plain_lit(&s, ",\"iat\":");
	c->iat = plain_int(&s);
	plain_lit(&s, ",\"jti\":");
	c->jti = plain_str(&s);
	plain_lit(&s, ",\"org\":");
	c->org = plain_str(&s);
	plain_lit(&s, ",\"oun\":");
	c->oun = plain_str(&s);
	plain_lit(&s, ",\"usr\":");
	c->usr = plain_str(&s);
	plain_lit(&s, "}");
	if (s.bad || s.p != s.end) {
		c->ari = c->cii = c->jti = c->org = c->oun = c->usr = NULL;
		return -1;
	}
	c->json = c->payload;
	return 0;
}

/*
 * The kid of a header exactly as we write it, {"alg":"HS256","kid":"<16
 * upper-case hex>","typ":"JWT"}, or NULL for any other spelling (which
 * parse_object() then reads).  Taking this one spelling as it is gives
 * what the JSON would: alg HS256, typ JWT, no crit, that kid.
 */
static const char *
our_header_kid(char *hdr, size_t len)
{
	char *kid = hdr + sizeof(HDR_HEAD) - 1;

	if (len != HDR_LEN ||
	    memcmp(hdr, HDR_HEAD, sizeof(HDR_HEAD) - 1) != 0 ||
	    memcmp(kid + CRM_KID_HEX, HDR_TAIL, sizeof(HDR_TAIL) - 1) != 0)
		return NULL;
	for (size_t i = 0; i < CRM_KID_HEX; i++)
		if (!((kid[i] >= '0' && kid[i] <= '9') ||
		    (kid[i] >= 'A' && kid[i] <= 'F')))
			return NULL;
	kid[CRM_KID_HEX] = '\0';	/* the kid, a C string in place */
	return kid;
}

/*
 * A token taken apart, nothing in it trusted yet: the kid, the signed
 * part, the signature as sent, and the claims (read into a struct
 * claims, valid for use only once the signature is found good).
 */
struct tok_parts {
	char		 kid[CRM_KID_HEX + 1];
	size_t		 signed_len;	/* header.payload */
	const char	*sig;		/* base64url, sig_len bytes */
	size_t		 sig_len;
	enum tok_err	 claims;	/* TOK_OK or why they are not ours */
};

/*
 * Before any decoding: bounded, printable, three parts.  Then the header
 * (alg exactly "HS256", no crit, a kid of the right form) and the
 * claims.  The claims are read before the signature is checked so that
 * one store read can fetch the key and what the claims name; nothing is
 * decided on them until tok_authentic() says they are ours.
 */
static enum tok_err
tok_parse(const char *token, size_t len, struct tok_parts *p,
    struct claims *c)
{
	const char	*dot1, *dot2, *kid, *alg, *typ;
	unsigned char	 hdr[HEADER_MAX + 1];
	size_t		 hlen, plen;
	json_object	*h = NULL, *m;
	enum tok_err	 e = TOK_MALFORMED;
	int		 present;

	tok_claims_init(c);
	memset(p, 0, sizeof(*p));
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

	if (b64url_decode_public(hdr, sizeof(hdr) - 1, &hlen, token,
	    (size_t)(dot1 - token)) != 0)
		goto out;
	hdr[hlen] = '\0';
	if ((kid = our_header_kid((char *)hdr, hlen)) == NULL) {
		/* Some other writer's JSON: read it in full. */
		if ((h = parse_object(hdr, hlen)) == NULL)
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
	}
	memcpy(p->kid, kid, CRM_KID_HEX + 1);
	p->signed_len = (size_t)(dot2 - token);
	p->sig = dot2 + 1;
	p->sig_len = len - (size_t)(dot2 + 1 - token);

	if (b64url_decode_public((unsigned char *)c->payload,
	    sizeof(c->payload) - 1, &plen, dot1 + 1,
	    (size_t)(dot2 - dot1 - 1)) != 0)
		p->claims = TOK_BADCLAIMS;
	else {
		c->payload[plen] = '\0';
		if (read_claims_ours(c, plen) == 0)
			p->claims = claims_valid(c);
		else
			p->claims = read_claims_json(c, plen);
	}
	e = TOK_OK;
out:
	if (h != NULL)
		json_object_put(h);
	return e;
}

/*
 * Is the token signed with key (NULL: no such key)?  A key past its
 * "verifies until" time verifies nothing.  The signature must be exactly
 * 32 bytes and is compared in constant time.  Then the claims must be
 * ours, with a lifetime no longer than ttl.
 */
static enum tok_err
tok_authentic(const struct tok_parts *p, const char *token,
    const struct sigkey *key, int64_t now, int64_t ttl,
    const struct claims *c)
{
	unsigned char	 sig[64], mac[32];
	size_t		 slen;
	enum tok_err	 e = TOK_OK;

	if (key == NULL || (key->expires != 0 && now >= key->expires))
		return TOK_UNKNOWN_KID;
	if (b64url_decode_public(sig, sizeof(sig), &slen, p->sig,
	    p->sig_len) != 0 || slen != sizeof(mac))
		return TOK_BADSIG;
	sec_hmac256(mac, key->secret, sizeof(key->secret), token,
	    p->signed_len);
	if (!sec_equal(mac, sig, sizeof(mac)))
		e = TOK_BADSIG;
	else if (p->claims != TOK_OK)
		e = p->claims;
	/* Longer than we ever issue, or issued in the future (more than a
	 * clock's drift ahead): forged with a leaked key, to outlive its
	 * lifetime or the principal's cutoffs.  (exp > iat, and iat > now
	 * where it is subtracted: the differences are exact unsigned.) */
	else if ((uint64_t)c->exp - (uint64_t)c->iat > (uint64_t)ttl ||
	    (c->iat > now && (uint64_t)c->iat - (uint64_t)now > CLOCK_DRIFT))
		e = TOK_BADCLAIMS;
	memset(mac, 0, sizeof(mac));
	return e;
}

enum tok_err
tok_verify(const char *token, size_t len, tok_keyfn keyfn, void *arg,
    int64_t now, int64_t ttl, struct claims *c)
{
	struct tok_parts p;
	struct sigkey	 key;
	enum tok_err	 e;

	memset(&key, 0, sizeof(key));
	if ((e = tok_parse(token, len, &p, c)) == TOK_OK) {
		switch (keyfn(arg, p.kid, &key)) {
		case 0:
			e = tok_authentic(&p, token, &key, now, ttl, c);
			break;
		case 1:
			e = TOK_UNKNOWN_KID;
			break;
		default:
			e = TOK_STORE;
			break;
		}
	}
	memset(&key, 0, sizeof(key));
	if (e != TOK_OK)
		tok_claims_free(c);
	return e;
}

int
tok_store_key(void *arg, const char *kid, struct sigkey *key)
{
	switch (store_sigkey_get(arg, kid, key)) {
	case STORE_OK:
		return 0;
	case STORE_NOTFOUND:
		return 1;
	default:
		return -1;
	}
}

/* Was the token's principal cut off after it was issued: a user deleted
 * (or deleted and made again), disabled, logged out, or one of its Web
 * API keys revoked; a consumer application's key revoked? */
static int
cut_off(const struct claims *c, const struct tok_state *s)
{
	return !s->principal_found || s->disabled || c->iat < s->created ||
	    c->iat <= s->cutoff;
}

enum tok_err
tok_check(struct store *st, const char *token, size_t len, int64_t now,
    int64_t ttl, struct claims *c)
{
	struct tok_parts	 p;
	struct tok_state	 s;
	struct principal	 who;
	enum tok_err		 e;
	int			 ours;

	if ((e = tok_parse(token, len, &p, c)) != TOK_OK)
		goto out;
	/* One read: the key, the release, the principal. */
	ours = p.claims == TOK_OK;
	who = (struct principal){ c->cii != NULL, c->org, c->usr };
	if (store_token_state(st, p.kid, ours ? c->jti_bin : NULL,
	    ours ? &who : NULL, &s) != STORE_OK) {
		e = TOK_STORE;
		goto out;
	}
	if ((e = tok_authentic(&p, token, s.key_found ? &s.key : NULL, now,
	    ttl, c)) != TOK_OK)
		goto out;
	if (now >= c->exp)
		e = TOK_EXPIRED;	/* RFC 7519 §4.1.4: not on or after */
	else if (s.released)
		e = TOK_RELEASED;
	else if (cut_off(c, &s))
		e = TOK_REVOKED;
out:
	explicit_bzero(&s.key, sizeof(s.key));
	if (e != TOK_OK && e != TOK_EXPIRED && e != TOK_RELEASED &&
	    e != TOK_REVOKED)
		tok_claims_free(c);
	return e;
}
