/*
 * Shared by the libFuzzer harnesses: an app over a real store on tmpfs,
 * with fixed accounts so that seeds can name them, and an in-memory web
 * server.  Built only by "make fuzz" (clang, -fsanitize=fuzzer,...).
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "extern.h"

#define FUZZ_APIKEY	"00112233445566778899AABBCCDDEEFF"
#define FUZZ_CONSUMER	"FFEEDDCCBBAA99887766554433221100"
#define FUZZ_KID	"00112233AABBCCDD"

/* The app, made once per process (store under /dev/shm or /tmp). */
struct app	*fuzz_app(void);
/* Serve one request: params is "NAME=value\n..." (len bytes), body. */
void		 fuzz_serve(const char *params, size_t plen, const char *body,
		    size_t blen);
/* A fixed signing key for token harnesses, and a tok_keyfn that knows
 * only it. */
extern const struct sigkey fuzz_key;
int		 fuzz_keyfn(void *, const char *kid, struct sigkey *);

#endif
