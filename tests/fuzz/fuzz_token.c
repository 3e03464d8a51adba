/* Token verification, with a fixed key so that seeds can be valid. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct claims	 c;
	enum tok_err	 e;

	if (sec_init() == -1)
		abort();
	e = tok_verify((const char *)data, size, fuzz_keyfn, NULL, INT64_MAX,
	    INT64_MAX, &c);
	if (e == TOK_OK) {
		/* Whatever passes must have every claim we rely on. */
		if (c.jti == NULL || c.usr == NULL || c.org == NULL ||
		    c.oun == NULL || strlen(c.jti) != CRM_JTI_HEX)
			abort();
	}
	tok_claims_free(&c);
	return 0;
}
