/*
 * Nothing the web server could serve: the configuration, the store and
 * the events file must not lie under the document root of the request
 * (DOCUMENT_ROOT, or CONTEXT_DOCUMENT_ROOT, which Apache's mod_userdir
 * sets to ~USER/public_html).  Both are the web server's, never the
 * client's.  Checked on a request's roots the first time they are seen
 * (CGI: the one request; FastCGI: then a string compare per request).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

/*
 * Whether path (or, when it does not exist yet, its directory) lies in
 * the directory root or below it, both with links resolved.
 */
static int
inside(const char *path, const char *root)
{
	char	 p[PATH_MAX], r[PATH_MAX], dir[PATH_MAX], *slash;
	size_t	 rlen;

	if (realpath(root, r) == NULL)
		return 0;
	if (realpath(path, p) == NULL) {
		if (snprintf(dir, sizeof(dir), "%s", path) >=
		    (int)sizeof(dir) || (slash = strrchr(dir, '/')) == NULL)
			return 0;
		*slash = '\0';
		if (realpath(dir[0] != '\0' ? dir : "/", p) == NULL)
			return 0;
	}
	rlen = strlen(r);
	if (rlen == 1)
		return 1;	/* the web root is / */
	return strncmp(p, r, rlen) == 0 && (p[rlen] == '\0' ||
	    p[rlen] == '/');
}

int
webroot_check(struct app *app, const char *docroot, const char *ctxroot)
{
	const char	*roots[2] = { docroot, ctxroot };
	static const char *names[2] = { "DOCUMENT_ROOT",
	    "CONTEXT_DOCUMENT_ROOT" };
	const char	*what[3][2] = {
		{ "the configuration", app->cfg.path },
		{ "db_path", app->cfg.db_path },
		{ "audit_log", app->cfg.audit_log[0] == '/' ?
		    app->cfg.audit_log : NULL },
	};
	size_t		 i, j;

	for (i = 0; i < 2; i++)
		if (roots[i] == NULL || roots[i][0] != '/')
			roots[i] = "";
	if (strcmp(roots[0], app->webroot_ok[0]) == 0 &&
	    strcmp(roots[1], app->webroot_ok[1]) == 0)
		return 0;
	for (i = 0; i < 2; i++) {
		if (roots[i][0] == '\0')
			continue;
		for (j = 0; j < 3; j++) {
			if (what[j][1] == NULL || what[j][1][0] == '\0' ||
			    !inside(what[j][1], roots[i]))
				continue;
			log_err("%s %s is inside the web root %s (%s): the web "
			    "server could serve it; move it out", what[j][0],
			    what[j][1], roots[i], names[i]);
			return -1;
		}
	}
	/* Roots too long to remember are checked every time. */
	for (i = 0; i < 2; i++)
		if (strlen(roots[i]) >= sizeof(app->webroot_ok[i]))
			return 0;
	for (i = 0; i < 2; i++)
		memcpy(app->webroot_ok[i], roots[i], strlen(roots[i]) + 1);
	return 0;
}
