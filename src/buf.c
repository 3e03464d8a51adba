/* Output into a fixed buffer: records (store.c) and tokens (token.c). */
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
