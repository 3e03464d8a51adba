/* Output into a growing buffer (responses, metrics) or a fixed one:
 * records (store.c), tokens (token.c), and UTC times (events, listings,
 * exports). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

void
fbuf_add(struct fbuf *b, const void *p, size_t n)
{
	if (b->full || n > b->max - b->len) {
		b->full = 1;
		return;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

int
fmt_utc(char *buf, size_t size, int64_t t)
{
	int64_t		 days, secs, z, era, doe, yoe, doy, mp, y;
	int		 n;

	/* Not gmtime(3): glibc's reads the time zone (/etc/localtime) the
	 * first time, which a UTC time does not need.  The civil date of a
	 * day count (H. Hinnant, "chrono-Compatible Low-Level Date
	 * Algorithms", days_from_civil's inverse). */
	days = t / 86400;
	secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	n = snprintf(buf, size, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld",
	    (long long)(y + (mp >= 10)), (long long)(mp < 10 ? mp + 3 : mp - 9),
	    (long long)(doy - (153 * mp + 2) / 5 + 1), (long long)(secs / 3600),
	    (long long)(secs / 60 % 60), (long long)(secs % 60));
	return n < 0 ? 0 : n;
}

/* ---- a growing buffer ---------------------------------------------------- */

void
buf_add(struct buf *b, const char *s, size_t n)
{
	char *np;

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->failed = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_fmt(struct buf *b, const char *fmt, ...)
{
	char	 tmp[512];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		b->failed = 1;
	else
		buf_add(b, tmp, (size_t)n);
}

/* A JSON string literal (RFC 8259 §7). */
void
buf_json_str(struct buf *b, const char *s)
{
	buf_add(b, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf_add(b, "\\", 1);
			buf_add(b, s, 1);
		} else if (c < 0x20)
			buf_fmt(b, "\\u%04x", c);
		else
			buf_add(b, s, 1);
	}
	buf_add(b, "\"", 1);
}
