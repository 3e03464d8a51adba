/* Shared helpers for the CUnit suites. */
#ifndef UNIT_H
#define UNIT_H

#include <CUnit/CUnit.h>

#include "extern.h"

/* Register and run one suite; prints "RESULT name: N passed, M failed"
 * and returns the exit status (0 only when every test passed). */
int	 unit_run(const char *name, CU_TestInfo *tests);

/* A fresh directory under $TMPDIR (removed by unit_rmtree). */
char	*unit_tmpdir(void);
void	 unit_rmtree(const char *dir);
/* Write text to dir/name; returns the malloc'd path. */
char	*unit_write(const char *dir, const char *name, const char *text);
/* A configuration for a store under dir, with a cheap argon2 cost. */
void	 unit_config(struct config *, const char *dir);

/* A compact JWS over the given header and payload JSON texts, signed
 * with HMAC-SHA-256 (or -512 when sha512) under key; malloc'd. */
char	*unit_sign(const char *header, const char *payload,
	    const unsigned char *key, size_t keylen, int sha512);

#endif
