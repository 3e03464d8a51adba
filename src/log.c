/* Logging to stderr: the web server's error log, or the terminal. */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "extern.h"

static const char *prog = "crmauth";

void
log_init(const char *progname)
{
	prog = progname;
}

void
log_err(const char *fmt, ...)
{
	char	 buf[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One line per message, whatever the caller passed. */
	for (char *p = buf; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(stderr, "%s[%ld]: %s\n", prog, (long)getpid(), buf);
	fflush(stderr);
}
