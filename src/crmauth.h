/*
 * libcrmauth: check crmauth tokens in-process, against the same store the
 * crmauth responders use, read-only and without an HTTP hop.
 *
 *	struct crmauth *ca = crmauth_open(NULL, err, sizeof(err));
 *	struct crmauth_claims c;
 *	if (crmauth_verify(ca, token, strlen(token), &c) == CRMAUTH_OK)
 *		... c.usr, c.org, c.oun ...
 *	crmauth_close(ca);
 *
 * Build with: cc prog.c $(pkg-config --cflags --libs crmauth)
 * See crmauth(3).
 */
#ifndef CRMAUTH_H
#define CRMAUTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CRMAUTH_NAME_MAX 256	/* longest organisation, user, unit, id */

enum crmauth_status {
	CRMAUTH_OK = 0,		/* authentic, unexpired, not released */
	CRMAUTH_INVALID,	/* malformed, or not signed by this service */
	CRMAUTH_EXPIRED,	/* authentic, but past its exp */
	CRMAUTH_RELEASED,	/* authentic, but released or cut off */
	CRMAUTH_ERROR		/* the store could not be read */
};

/* What a usable token says.  Absent claims (cii and ari on tokens that
 * are not consumer tokens) are empty strings. */
struct crmauth_claims {
	char	 jti[33];
	char	 usr[CRMAUTH_NAME_MAX + 1];
	char	 org[CRMAUTH_NAME_MAX + 1];
	char	 oun[CRMAUTH_NAME_MAX + 1];
	char	 cii[CRMAUTH_NAME_MAX + 1];
	char	 ari[CRMAUTH_NAME_MAX + 1];
	int64_t	 iat, exp;
};

struct crmauth;

/*
 * Read the configuration file conf (NULL: $CRMAUTH_CONF, else the
 * compiled-in default) and open its store read-only.  The calling user
 * needs read access to the store and write access to its lock file
 * (lock.mdb), as LMDB readers do.  NULL on failure, with one line in err
 * naming the file and the problem.
 */
struct crmauth	*crmauth_open(const char *conf, char *err, size_t errlen);

/*
 * Check a token: its signature (HS256, constant-time), its exp, the
 * released table and its user's or application's revocations as they
 * are now, so that a change made by any process is seen at once.  On
 * CRMAUTH_OK, CRMAUTH_EXPIRED and CRMAUTH_RELEASED, *claims (if not NULL)
 * is filled; otherwise it is zeroed.  A handle is used by one thread at
 * a time; any number of handles may be open, in any threads (they share
 * one environment per store).
 */
enum crmauth_status crmauth_verify(struct crmauth *, const char *token,
		    size_t len, struct crmauth_claims *claims);

/* A short English text for a status. */
const char	*crmauth_strerror(enum crmauth_status);

void		 crmauth_close(struct crmauth *);

#ifdef __cplusplus
}
#endif

#endif /* CRMAUTH_H */
