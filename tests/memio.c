/* See memio.h. */
#include <string.h>

#include "memio.h"

static const char *
m_param(void *ctx, const char *name)
{
	struct memio *m = ctx;

	for (const char **p = m->params; p != NULL && p[0] != NULL; p += 2)
		if (strcmp(p[0], name) == 0)
			return p[1];
	return NULL;
}

static ssize_t
m_read(void *ctx, void *buf, size_t n)
{
	struct memio	*m = ctx;
	size_t		 left = m->blen - m->pos;

	if (n > left)
		n = left;
	memcpy(buf, m->body + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static int
m_write(void *ctx, const void *buf, size_t n)
{
	struct memio *m = ctx;

	if (m->olen + n >= sizeof(m->out))
		return -1;
	memcpy(m->out + m->olen, buf, n);
	m->olen += n;
	m->out[m->olen] = '\0';
	return 0;
}

struct http_io
memio_io(struct memio *m, int drain)
{
	return (struct http_io){ m, m_param, m_read, m_write, drain };
}
