/*
 * An in-memory web server for http_serve() and http_respond(), shared by
 * the unit tests and the fuzz harnesses: the request's parameters and
 * body come from a struct memio, and the answer is kept in it.
 */
#ifndef MEMIO_H
#define MEMIO_H

#include "extern.h"

struct memio {
	const char	**params;	/* name, value, ..., NULL */
	const char	 *body;
	size_t		  blen, pos;
	char		  out[16384];	/* the answer, NUL-terminated */
	size_t		  olen;		/* a write past out fails */
};

/* The http_io over m (drain: as CGI); m must outlive its use. */
struct http_io	memio_io(struct memio *m, int drain);

#endif
