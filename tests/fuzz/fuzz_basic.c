/* The Authorization header: Basic (keys) and Bearer (the check). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result	 res;
	char		 key[CRM_NAME_MAX + 1], *s;
	const char	*tok;
	size_t		 len;
	int		 rc;

	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	result_init(&res);
	if (http_basic_key(s, key, sizeof(key), &res) == 0) {
		if (strlen(key) >= sizeof(key))
			abort();
	} else if (res.status != API_INVALID_CREDENTIALS ||
	    res.www_authenticate == NULL)
		abort();
	rc = http_bearer(s, &tok, &len);
	if (rc == 1 && (tok < s || tok + len > s + strlen(s) || len == 0))
		abort();
	free(s);
	return 0;
}
