/*
 * Users and groups: a name for an event, a home directory for the
 * configuration, a group for crmauthctl init --group.
 *
 * A normal build asks the C library, which asks NSS (files, LDAP,
 * systemd...).  The shared-hosting build is fully static, and a static
 * glibc program that calls getpwuid(3) loads NSS modules at run time
 * from the build machine's glibc version, which a hosting customer's
 * machine does not have: there we read /etc/passwd and /etc/group
 * ourselves (passwd(5), group(5)), as the files module would.  Hosts
 * whose accounts are not in those files give a number instead of a name,
 * and no home directory (then CRMAUTH_CONF names the configuration).
 */
#include <sys/types.h>

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

#ifdef CRMAUTH_SHARED_HOSTING

#define PW_LINE_MAX	4096
#define PW_FIELDS	7

/* Split line (modified) at ':' into at most n fields; their number. */
static int
split(char *line, char *f[], int n)
{
	int i = 0;

	line[strcspn(line, "\n")] = '\0';
	f[i++] = line;
	while (i < n && (line = strchr(line, ':')) != NULL) {
		*line++ = '\0';
		f[i++] = line;
	}
	return i;
}

/*
 * The first line of file whose field k is the name want, or (want NULL)
 * whose field k is the number id; its fields in f[], pointing into
 * line.  0; -1 when there is no such entry; -2 when the file cannot
 * be read, with errno.
 */
static int
db_find(const char *file, int k, const char *want, unsigned long id,
    char *line, size_t linelen, char *f[], int n)
{
	FILE		*fp;
	long long	 v;
	const char	*why;
	int		 c, found = 0, got;

	if ((fp = fopen(file, "re")) == NULL)
		return -2;
	while (!found && fgets(line, (int)linelen, fp) != NULL) {
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			/* Longer than any account line: skip it whole. */
			while ((c = getc(fp)) != EOF && c != '\n')
				;
			continue;
		}
		if (line[0] == '#' || line[0] == '+' || line[0] == '-')
			continue;	/* comments, NIS compat lines */
		if ((got = split(line, f, n)) <= k)
			continue;
		if (want != NULL)
			found = strcmp(f[k], want) == 0;
		else
			found = parse_int(f[k], 0, 4294967295LL, &v,
			    &why) == 0 && (unsigned long)v == id;
		if (found && got < n)
			found = 0;	/* a damaged line */
	}
	fclose(fp);
	return found ? 0 : -1;
}

const char *
pw_user_name(uid_t uid, char *buf, size_t len)
{
	char	 line[PW_LINE_MAX], *f[PW_FIELDS];

	if (db_find("/etc/passwd", 2, NULL, (unsigned long)uid, line,
	    sizeof(line), f, PW_FIELDS) == 0 && f[0][0] != '\0')
		snprintf(buf, len, "%s", f[0]);
	else
		snprintf(buf, len, "%lu", (unsigned long)uid);
	return buf;
}

int
pw_home(uid_t uid, char *buf, size_t len, char *err, size_t errlen)
{
	char	 line[PW_LINE_MAX], *f[PW_FIELDS];
	int	 rc;

	if ((rc = db_find("/etc/passwd", 2, NULL, (unsigned long)uid, line,
	    sizeof(line), f, PW_FIELDS)) != 0) {
		snprintf(err, errlen, "no home directory for uid %lu: "
		    "/etc/passwd: %s", (unsigned long)uid, rc == -1 ?
		    "no such user" : strerror(errno));
		return -1;
	}
	if (f[5][0] != '/' || (size_t)snprintf(buf, len, "%s", f[5]) >= len) {
		snprintf(err, errlen, "no usable home directory for uid %lu "
		    "in /etc/passwd", (unsigned long)uid);
		return -1;
	}
	return 0;
}

int
pw_group_id(const char *name, gid_t *out)
{
	char		 line[PW_LINE_MAX], *f[4];
	long long	 v;
	const char	*why;

	if (db_find("/etc/group", 0, name, 0, line, sizeof(line), f, 4) != 0 ||
	    parse_int(f[2], 0, 4294967294LL, &v, &why) == -1)
		return -1;
	*out = (gid_t)v;
	return 0;
}

/*
 * libfcgi's FCGX_OpenSocket("host:port") looks the host up with
 * gethostbyname(3), which in a static program would load NSS modules.
 * crmauth never opens a socket of its own (the web server hands it one,
 * or runs it as CGI), so this one, which the link takes instead of the C
 * library's, only makes sure that nothing can: it finds nothing.
 */
struct hostent *gethostbyname(const char *);
struct hostent *
gethostbyname(const char *name)
{
	(void)name;
	h_errno = NO_RECOVERY;
	return NULL;
}

#else	/* !CRMAUTH_SHARED_HOSTING: the C library, NSS and all */

const char *
pw_user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd	*pw;

	if ((pw = getpwuid(uid)) != NULL)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "%lu", (unsigned long)uid);
	return buf;
}

int
pw_home(uid_t uid, char *buf, size_t len, char *err, size_t errlen)
{
	struct passwd	*pw;

	errno = 0;
	if ((pw = getpwuid(uid)) == NULL) {
		snprintf(err, errlen, "no home directory for uid %lu: %s",
		    (unsigned long)uid, errno != 0 ? strerror(errno) :
		    "no such user");
		return -1;
	}
	if (pw->pw_dir == NULL || pw->pw_dir[0] != '/' ||
	    (size_t)snprintf(buf, len, "%s", pw->pw_dir) >= len) {
		snprintf(err, errlen, "no usable home directory for uid %lu",
		    (unsigned long)uid);
		return -1;
	}
	return 0;
}

int
pw_group_id(const char *name, gid_t *out)
{
	struct group	*gr;

	if ((gr = getgrnam(name)) == NULL)
		return -1;
	*out = gr->gr_gid;
	return 0;
}

#endif
