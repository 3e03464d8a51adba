/* Method bodies: the first byte picks the method, the rest is the body,
 * sent as a well-formed request with the right Content-Length. */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *paths[] = { "/authentication/token",
	    "/authentication/web_api_key/token",
	    "/authentication/consumer_application_key/token",
	    "/authentication/token/release", "/authentication/token/check" };
	static const char *auth[] = { "", "Basic " "MDAxMTIyMzM0NDU1NjY3Nzg4"
	    "OTlBQUJCQ0NEREVFRkY6", "Basic RkZFRURE"
	    "Q0NCQkFBOTk4ODc3NjY1NTQ0MzMyMjExMDA6", "", "" };
	char	 params[512];
	int	 n;
	size_t	 i;

	if (size == 0)
		return 0;
	i = data[0] % (sizeof(paths) / sizeof(paths[0]));
	n = snprintf(params, sizeof(params), "REQUEST_METHOD=POST\n"
	    "PATH_INFO=%s\nCONTENT_TYPE=application/json\n"
	    "CONTENT_LENGTH=%zu\nREMOTE_ADDR=127.0.0.1\n%s%s", paths[i],
	    size - 1, *auth[i] ? "HTTP_AUTHORIZATION=" : "", auth[i]);
	fuzz_serve(params, (size_t)n, (const char *)data + 1, size - 1);
	return 0;
}
