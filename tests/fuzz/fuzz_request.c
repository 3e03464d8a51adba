/* Whole requests: CGI parameters, a blank line, the body. */
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data;
	const char	*sep = memmem(p, size, "\n\n", 2);
	size_t		 plen = sep != NULL ? (size_t)(sep - p) : size;

	fuzz_serve(p, plen, sep != NULL ? sep + 2 : "",
	    sep != NULL ? size - plen - 2 : 0);
	return 0;
}
