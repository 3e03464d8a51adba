/*
 * libpq, loaded when a PostgreSQL store is first opened (pgsql.h).
 *
 * Why not linked: libpq brings 22 more shared libraries (OpenSSL, GnuTLS,
 * Kerberos, LDAP, SASL...).  Every crmauth process and every program
 * using libcrmauth would load and relocate them, whichever store it
 * uses: a CGI request, one process per request, went from 1.1 ms to
 * 3.8 ms (make bench).  Loaded here, they cost only the processes of a
 * PostgreSQL store, once each, as Postfix loads its database clients
 * (dynamicmaps).  The functions are looked up by name into pqlib, with
 * the types libpq-fe.h gives them; pgsql.h has every PQ name call
 * through it.  The path is the one configure found libpq in, not the
 * bare soname: a host program's RPATH or LD_LIBRARY_PATH has no say.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define PGSQL_LIB			/* pqlib's names, not the calls */
#include "extern.h"
#include "pgsql.h"

struct pqlib	 pqlib;

static pthread_once_t	 once = PTHREAD_ONCE_INIT;
static int		 loaded;
static char		 why[256];	/* why not, when not */

static void
load(void)
{
	static const struct {
		const char	*name;
		size_t		 off;
	} fns[] = {
#define FN(f)	{ #f, offsetof(struct pqlib, f) },
		PQLIB_FUNCTIONS(FN)
#undef FN
	};
	void	*h, *f;
	size_t	 i;

	/* RTLD_LOCAL: its symbols (and its libraries') stay its own. */
	if ((h = dlopen(CRMAUTH_LIBPQ, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(why, sizeof(why), "store = postgresql needs %s "
		    "(Debian: apt-get install libpq5): %s", CRMAUTH_LIBPQ,
		    dlerror());
		return;
	}
	for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		if ((f = dlsym(h, fns[i].name)) == NULL) {
			snprintf(why, sizeof(why), "%s has no %s: libpq 14 "
			    "or later is needed", CRMAUTH_LIBPQ, fns[i].name);
			dlclose(h);
			return;
		}
		memcpy((char *)&pqlib + fns[i].off, &f, sizeof(f));
	}
	/* Kept open for the life of the process: its connections use it. */
	loaded = 1;
}

int
pg_load(char *err, size_t errlen)
{
	if (pthread_once(&once, load) != 0 || !loaded) {
		snprintf(err, errlen, "%s", why[0] != '\0' ? why :
		    "libpq could not be loaded");
		return -1;
	}
	return 0;
}
