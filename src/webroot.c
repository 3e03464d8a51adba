/*
 * Nothing the web server could serve: the configuration, the store and
 * the events file must not lie under the document root of a request
 * (DOCUMENT_ROOT, or CONTEXT_DOCUMENT_ROOT, which Apache's mod_userdir
 * sets to ~USER/public_html).  The web server sets both, but a Host
 * header may choose between its roots (mass virtual hosting: lighttpd's
 * mod_evhost, nginx's root with $host, Apache's VirtualDocumentRoot).
 * So a request whose roots hold one of our files is refused, and said in
 * the error log at most once a minute, while requests under other roots
 * are served: whoever picks a root cannot switch the service off.
 *
 * Verdicts are remembered per pair of roots for a minute, WEBROOT_SLOTS
 * pairs at a time: a FastCGI responder pays a few string compares per
 * request, and the realpath(3) calls once a minute per root.  The paths
 * are the responder's view of the file system: a responder on another
 * machine than the web server judges nothing.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

#define WEBROOT_TTL	60	/* seconds a verdict is kept */

/*
 * path with links resolved into out; a path that does not exist yet is
 * judged by the nearest directory above it that does.  -1 if none.
 */
static int
resolved(const char *path, char out[PATH_MAX])
{
	char	 dir[PATH_MAX], *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -1;
	while (realpath(dir[0] != '\0' ? dir : "/", out) == NULL) {
		if ((slash = strrchr(dir, '/')) == NULL)
			return -1;
		*slash = '\0';
	}
	return 0;
}

/* Whether the resolved path p lies in the resolved directory r. */
static int
inside(const char *p, const char *r)
{
	size_t rlen = strlen(r);

	if (rlen == 1)
		return 1;	/* the web root is / */
	return strncmp(p, r, rlen) == 0 && (p[rlen] == '\0' ||
	    p[rlen] == '/');
}

/* The remembered verdict for these roots, or NULL. */
static struct webroot_slot *
lookup(struct app *app, const char *roots[2], int64_t now)
{
	struct webroot_slot	*s;

	for (size_t i = 0; i < WEBROOT_SLOTS; i++) {
		s = &app->webroots[i];
		if (s->when != 0 && now - s->when < WEBROOT_TTL &&
		    strcmp(roots[0], s->root[0]) == 0 &&
		    strcmp(roots[1], s->root[1]) == 0)
			return s;
	}
	return NULL;
}

/* Remember a verdict in the oldest slot; roots too long to remember are
 * judged every time. */
static void
remember(struct app *app, const char *roots[2], int bad, int64_t now)
{
	struct webroot_slot	*s = &app->webroots[0];

	for (size_t i = 0; i < 2; i++)
		if (strlen(roots[i]) >= sizeof(s->root[i]))
			return;
	for (size_t i = 1; i < WEBROOT_SLOTS; i++)
		if (app->webroots[i].when < s->when)
			s = &app->webroots[i];
	for (size_t i = 0; i < 2; i++)
		memcpy(s->root[i], roots[i], strlen(roots[i]) + 1);
	s->bad = bad;
	s->when = now;
}

int
webroot_check(struct app *app, const char *docroot, const char *ctxroot)
{
	static const char	*names[2] = { "DOCUMENT_ROOT",
	    "CONTEXT_DOCUMENT_ROOT" };
	const char		*roots[2] = { docroot, ctxroot };
	const char		*what[3][2] = {
		{ "the configuration", app->cfg.path },
		{ "db_path", app->cfg.db_path },
		{ "audit_log", app->cfg.audit_log[0] == '/' ?
		    app->cfg.audit_log : NULL },
	};
	char			 files[3][PATH_MAX], r[PATH_MAX];
	struct webroot_slot	*s;
	int64_t			 now;
	size_t			 i, j;
	int			 have[3];

	for (i = 0; i < 2; i++)
		if (roots[i] == NULL || roots[i][0] != '/')
			roots[i] = "";
	if (roots[0][0] == '\0' && roots[1][0] == '\0')
		return 0;	/* no root, nothing served: nothing to check */
	now = app->now();
	if ((s = lookup(app, roots, now)) != NULL)
		return s->bad ? -1 : 0;
	for (j = 0; j < 3; j++)
		have[j] = what[j][1] != NULL && what[j][1][0] != '\0' &&
		    resolved(what[j][1], files[j]) == 0;
	for (i = 0; i < 2; i++) {
		if (roots[i][0] == '\0' || realpath(roots[i], r) == NULL)
			continue;
		for (j = 0; j < 3; j++) {
			if (!have[j] || !inside(files[j], r))
				continue;
			if (app->webroot_logged == 0 ||
			    now - app->webroot_logged >= 60) {
				log_err("%s %s is inside the web root %s (%s): "
				    "the web server could serve it; move it out",
				    what[j][0], what[j][1], roots[i], names[i]);
				app->webroot_logged = now;
			}
			remember(app, roots, 1, now);
			return -1;
		}
	}
	remember(app, roots, 0, now);
	return 0;
}
