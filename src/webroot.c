/*
 * Nothing the web server could serve: the configuration, the store and
 * the events file must not lie under the document root of the request
 * (DOCUMENT_ROOT, or CONTEXT_DOCUMENT_ROOT, which Apache's mod_userdir
 * sets to ~USER/public_html).  Both are the web server's, never the
 * client's, though a Host header may choose between them (mass virtual
 * hosting).  Checked on a request's roots the first time they are seen
 * (CGI: the one request; FastCGI: then a string compare per request); a
 * request whose roots hold one of our files is refused, and said in the
 * error log at most once a minute, while requests under other roots are
 * served: whoever picks a root cannot switch the service off for all.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

/*
 * Whether path lies in the directory root or below it, both with links
 * resolved; a path that does not exist yet is judged by the nearest
 * directory above it that does.
 */
static int
inside(const char *path, const char *root)
{
	char	 p[PATH_MAX], r[PATH_MAX], dir[PATH_MAX], *slash;
	size_t	 rlen;

	if (realpath(root, r) == NULL ||
	    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return 0;
	while (realpath(dir[0] != '\0' ? dir : "/", p) == NULL) {
		if ((slash = strrchr(dir, '/')) == NULL)
			return 0;
		*slash = '\0';
	}
	rlen = strlen(r);
	if (rlen == 1)
		return 1;	/* the web root is / */
	return strncmp(p, r, rlen) == 0 && (p[rlen] == '\0' ||
	    p[rlen] == '/');
}

/* Remember a pair of roots; roots too long to remember are checked
 * every time. */
static void
remember(struct webroots *w, const char *roots[2])
{
	for (size_t i = 0; i < 2; i++)
		if (strlen(roots[i]) >= sizeof(w->root[i]))
			return;
	for (size_t i = 0; i < 2; i++)
		memcpy(w->root[i], roots[i], strlen(roots[i]) + 1);
}

/* Whether w holds these roots. */
static int
same(const struct webroots *w, const char *roots[2])
{
	return strcmp(roots[0], w->root[0]) == 0 &&
	    strcmp(roots[1], w->root[1]) == 0;
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
	int64_t		 now;

	for (i = 0; i < 2; i++)
		if (roots[i] == NULL || roots[i][0] != '/')
			roots[i] = "";
	if (roots[0][0] == '\0' && roots[1][0] == '\0')
		return 0;	/* no root, nothing served: nothing to check */
	if (same(&app->webroot_ok, roots))
		return 0;
	if (same(&app->webroot_bad, roots))
		return -1;
	for (i = 0; i < 2; i++) {
		if (roots[i][0] == '\0')
			continue;
		for (j = 0; j < 3; j++) {
			if (what[j][1] == NULL || what[j][1][0] == '\0' ||
			    !inside(what[j][1], roots[i]))
				continue;
			now = app->now();
			if (app->webroot_logged == 0 ||
			    now - app->webroot_logged >= 60) {
				log_err("%s %s is inside the web root %s (%s): "
				    "the web server could serve it; move it out",
				    what[j][0], what[j][1], roots[i], names[i]);
				app->webroot_logged = now;
			}
			remember(&app->webroot_bad, roots);
			return -1;
		}
	}
	remember(&app->webroot_ok, roots);
	return 0;
}
