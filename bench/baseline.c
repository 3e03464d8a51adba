/*
 * bench/baseline: the fastest a FastCGI responder behind the same web
 * server can be.  Reads the body, answers a fixed envelope the size of a
 * token response, with crmauth's headers; as CGI, one request.  What
 * crmauth is measured against.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

static const char body[] =
    "{\"data\":{\"token\":\"eyJhbGciOiJIUzI1NiIsImtpZCI6IjAwMTEyMjMzQUFCQ0"
    "NERCIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3OTUzNzAwMDAsImlhdCI6MTc5NTM2MjgwMC"
    "wianRpIjoiMDEyMzQ1Njc4OUFCQ0RFRjAxMjM0NTY3ODlBQkNERUYiLCJvcmciOiJBQ0"
    "1FIiwib3VuIjoiSFEiLCJ1c3IiOiJhbGljZSJ9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAA\"},\"status\":{\"code\":\"OK\",\"description\":\"\","
    "\"message\":\"\"}}";

static void
serve(FCGX_Stream *in, FCGX_Stream *out, FCGX_ParamArray envp)
{
	const char	*cl = FCGX_GetParam("CONTENT_LENGTH", envp);
	long		 n = cl != NULL ? strtol(cl, NULL, 10) : 0;
	char		 buf[4096];

	while (n > 0) {
		int got = FCGX_GetStr(buf, n > (long)sizeof(buf) ?
		    (int)sizeof(buf) : (int)n, in);

		if (got <= 0)
			break;
		n -= got;
	}
	FCGX_FPrintF(out, "Status: 200 OK\r\n"
	    "Content-Type: application/json; charset=utf-8\r\n"
	    "Cache-Control: no-store\r\nPragma: no-cache\r\n"
	    "X-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n\r\n",
	    (int)sizeof(body) - 1);
	FCGX_PutStr(body, (int)sizeof(body) - 1, out);
}

int
main(void)
{
	FCGX_Stream	*in, *out, *err;
	FCGX_ParamArray	 envp;

	if (FCGX_IsCGI()) {
		/* One request from the CGI environment. */
		const char *cl = getenv("CONTENT_LENGTH");
		long n = cl != NULL ? strtol(cl, NULL, 10) : 0;
		char buf[4096];

		while (n > 0) {
			size_t got = fread(buf, 1, n > (long)sizeof(buf) ?
			    sizeof(buf) : (size_t)n, stdin);

			if (got == 0)
				break;
			n -= (long)got;
		}
		printf("Status: 200 OK\r\nContent-Type: application/json; "
		    "charset=utf-8\r\nCache-Control: no-store\r\n"
		    "Content-Length: %d\r\n\r\n%s", (int)sizeof(body) - 1, body);
		return 0;
	}
	while (FCGX_Accept(&in, &out, &err, &envp) >= 0)
		serve(in, out, envp);
	return 0;
}
