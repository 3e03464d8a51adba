/* libcrmauth: the public face of tok_check() over a read-only store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crmauth.h"
#include "extern.h"

struct crmauth {
	struct config	 cfg;
	struct store	*store;
};

struct crmauth *
crmauth_open(const char *conf, char *err, size_t errlen)
{
	struct crmauth	*ca;

	if (sec_init() == -1) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return NULL;
	}
	if ((ca = calloc(1, sizeof(*ca))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	config_defaults(&ca->cfg);
	if (config_find(&ca->cfg, conf, err, errlen) == -1 ||
	    store_open(&ca->store, &ca->cfg, STORE_RDONLY, err, errlen) !=
	    STORE_OK) {
		free(ca);
		return NULL;
	}
	return ca;
}

/* Copy a claim; -1 if it does not fit (then it is not one of ours). */
static int
copy(char *dst, size_t size, const char *src)
{
	size_t len = src != NULL ? strlen(src) : 0;

	if (len >= size)
		return -1;
	memcpy(dst, src != NULL ? src : "", len + 1);
	return 0;
}

enum crmauth_status
crmauth_verify(struct crmauth *ca, const char *token, size_t len,
    struct crmauth_claims *out)
{
	struct crmauth_claims	 tmp;
	struct claims		 c;
	enum crmauth_status	 s;

	if (out == NULL)
		out = &tmp;
	memset(out, 0, sizeof(*out));
	if (ca == NULL || token == NULL)
		return CRMAUTH_INVALID;
	switch (tok_check(ca->store, token, len, (int64_t)time(NULL),
	    ca->cfg.token_ttl, &c)) {
	case TOK_OK:
		s = CRMAUTH_OK;
		break;
	case TOK_EXPIRED:
		s = CRMAUTH_EXPIRED;
		break;
	case TOK_RELEASED:
	case TOK_REVOKED:
		s = CRMAUTH_RELEASED;
		break;
	case TOK_STORE:
	case TOK_INTERNAL:
		tok_claims_free(&c);
		return CRMAUTH_ERROR;
	default:
		tok_claims_free(&c);
		return CRMAUTH_INVALID;
	}
	if (copy(out->jti, sizeof(out->jti), c.jti) == -1 ||
	    copy(out->usr, sizeof(out->usr), c.usr) == -1 ||
	    copy(out->org, sizeof(out->org), c.org) == -1 ||
	    copy(out->oun, sizeof(out->oun), c.oun) == -1 ||
	    copy(out->cii, sizeof(out->cii), c.cii) == -1 ||
	    copy(out->ari, sizeof(out->ari), c.ari) == -1) {
		memset(out, 0, sizeof(*out));
		s = CRMAUTH_INVALID;
	} else {
		out->iat = c.iat;
		out->exp = c.exp;
	}
	tok_claims_free(&c);
	return s;
}

const char *
crmauth_strerror(enum crmauth_status s)
{
	switch (s) {
	case CRMAUTH_OK:
		return "usable";
	case CRMAUTH_INVALID:
		return "not a token of this service";
	case CRMAUTH_EXPIRED:
		return "expired";
	case CRMAUTH_RELEASED:
		return "released";
	case CRMAUTH_ERROR:
		break;
	}
	return "the store could not be read";
}

void
crmauth_close(struct crmauth *ca)
{
	if (ca == NULL)
		return;
	store_close(ca->store);
	free(ca);
}
