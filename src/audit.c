/*
 * Authentication events (API.md §8): one JSON object per line, for the
 * operator who must answer who got a token, when, from where, and who
 * tried and failed.  Sinks (audit_log): syslog (authpriv), stderr (the
 * web server's error log), a file, or off.
 *
 * A file is appended to with one write(2) per line on a descriptor
 * opened O_APPEND, which POSIX makes atomic with respect to other
 * appends: the lines of several responder processes never interleave.
 * Before each line the path is stat(2)ed; when it names another file
 * than the one open (logrotate renamed it, or it was removed), the new
 * one is opened, so a rotation needs no signal and no restart.  A line
 * written between the rename and that check lands in the renamed file:
 * nothing is lost.
 *
 * Nothing here can fail a request: a sink that cannot be written costs
 * the event and one line on stderr, once until it works again.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

int
audit_sink_parse(const char *s, enum audit_sink *out)
{
	if (strcmp(s, "syslog") == 0)
		*out = AUDIT_SYSLOG;
	else if (strcmp(s, "stderr") == 0)
		*out = AUDIT_STDERR;
	else if (strcmp(s, "off") == 0)
		*out = AUDIT_OFF;
	else if (s[0] == '/')
		*out = AUDIT_FILE;
	else
		return -1;
	return 0;
}

void
audit_init(struct audit *a, const char *setting)
{
	memset(a, 0, sizeof(*a));
	a->fd = -1;
	if (audit_sink_parse(setting, &a->sink) == -1)
		a->sink = AUDIT_OFF;	/* config_load refused it already */
	if (a->sink == AUDIT_FILE)
		snprintf(a->path, sizeof(a->path), "%s", setting);
}

void
audit_close(struct audit *a)
{
	if (a->fd != -1)
		close(a->fd);
	a->fd = -1;
	if (a->sink == AUDIT_SYSLOG && a->syslog_open)
		closelog();
	a->syslog_open = 0;
}

/* ---- the line -------------------------------------------------------- */

/*
 * Append s as a JSON string, its first CRM_NAME_MAX bytes at most (cut
 * at a character boundary).  Quotes, backslashes, C0 and C1 controls
 * and DEL are escaped, so that nothing a client sent can end the line,
 * add a member, or reach a terminal as a control sequence; a byte that
 * is not part of well-formed UTF-8 becomes U+FFFD.
 */
static void
add_string(struct fbuf *b, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	/* Enough past the limit to tell a character cut by it. */
	size_t			 full = strnlen(s, CRM_NAME_MAX + 4), left, n;
	char			 esc[8];

	left = full > CRM_NAME_MAX ? CRM_NAME_MAX : full;
	fbuf_add(b, "\"", 1);
	while (left > 0) {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			fbuf_add(b, esc, 2);
			p++, left--;
			continue;
		}
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			fbuf_add(b, esc, 6);
			p++, left--;
			continue;
		}
		if (*p < 0x80) {
			fbuf_add(b, p, 1);
			p++, left--;
			continue;
		}
		if ((n = utf8_len(p, left)) == 0) {
			/* A character cut by the limit ends the string; a
			 * byte that is not UTF-8 is replaced. */
			if (utf8_len(p, full - (size_t)(p -
			    (const unsigned char *)s)) != 0)
				break;
			fbuf_add(b, "\\ufffd", 6);
			p++, left--;
			continue;
		}
		if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
			/* U+0080..U+009F: C1 controls. */
			snprintf(esc, sizeof(esc), "\\u%04x", p[1]);
			fbuf_add(b, esc, 6);
		} else
			fbuf_add(b, p, n);
		p += n, left -= n;
	}
	fbuf_add(b, "\"", 1);
}

static void
add_member(struct fbuf *b, const char *name, const char *value)
{
	if (value == NULL)
		return;
	fbuf_add(b, ",\"", 2);
	fbuf_add(b, name, strlen(name));
	fbuf_add(b, "\":", 2);
	add_string(b, value);
}

size_t
audit_format(char *buf, size_t size, const struct audit_event *ev,
    const struct timespec *ts)
{
	struct fbuf	 b = { buf, 0, size - 1, 0 };
	struct tm	 tm;
	char		 t[64];
	int		 n;

	gmtime_r(&ts->tv_sec, &tm);
	n = (int)strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(t + n, sizeof(t) - (size_t)n, ".%03ldZ",
	    ts->tv_nsec / 1000000);
	fbuf_add(&b, "{\"time\":\"", 9);
	fbuf_add(&b, t, strlen(t));
	fbuf_add(&b, "\"", 1);
	add_member(&b, "event", ev->event);
	add_member(&b, "method", ev->method);
	add_member(&b, "command", ev->command);
	add_member(&b, "org", ev->org);
	add_member(&b, "usr", ev->usr);
	add_member(&b, "unit", ev->unit);
	add_member(&b, "identifier", ev->identifier);
	add_member(&b, "jti", ev->jti);
	add_member(&b, "kid", ev->kid);
	add_member(&b, "key_id", ev->key_id);
	add_member(&b, "client", ev->client);
	add_member(&b, "address", ev->address);
	add_member(&b, "file", ev->file);
	add_member(&b, "reason", ev->reason);
	add_member(&b, "unix_user", ev->unix_user);
	add_member(&b, "sudo_user", ev->sudo_user);
	/* Every member is bounded and AUDIT_LINE_MAX holds them all
	 * escaped; were it ever short, the line would still be JSON. */
	if (b.full) {
		b.len = b.full = 0;
		fbuf_add(&b, "{\"event\":\"audit_line_too_long\"", 30);
	}
	fbuf_add(&b, "}\n", 2);
	buf[b.len] = '\0';
	return b.len;
}

/* ---- the sinks ------------------------------------------------------- */

static void
failed(struct audit *a, const char *what, int err)
{
	if (a->failing)
		return;
	a->failing = 1;
	log_err("audit_log: %s: %s; events are lost until it can be "
	    "written again", what, strerror(err));
}

static void
recovered(struct audit *a, const char *what)
{
	if (!a->failing)
		return;
	a->failing = 0;
	log_err("audit_log: %s: written again", what);
}

/*
 * Open the file, making it (0640) if it is not there.  When root makes
 * it (crmauthctl run by root, the first to write after a rotation), it
 * gets the owner and group of its directory, so that the responders,
 * whose directory it is, can still append to it.
 */
static int
file_open(const char *path)
{
	/* O_NONBLOCK: a FIFO put there does not hang the request (it is
	 * refused by the caller); a regular file ignores it. */
	const int	 flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY |
			    O_NOFOLLOW | O_NONBLOCK;
	struct stat	 sb;
	char		 dir[sizeof(((struct audit *)0)->path)], *slash;
	int		 fd;

	for (int tries = 0; tries < 3; tries++) {
		if ((fd = open(path, flags | O_CREAT | O_EXCL, 0640)) != -1)
			break;
		if (errno != EEXIST)
			return -1;
		if ((fd = open(path, flags)) != -1 || errno != ENOENT)
			return fd;	/* else renamed just now: again */
	}
	if (fd == -1 || geteuid() != 0)
		return fd;
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL)
		slash[slash == dir ? 1 : 0] = '\0';
	if (stat(dir, &sb) == 0 && (sb.st_uid != 0 || sb.st_gid != 0) &&
	    fchown(fd, sb.st_uid, sb.st_gid) == -1)
		log_err("audit_log: %s: giving it to its directory's owner: %s",
		    path, strerror(errno));
	return fd;
}

/* The file open, and still the one its path names. */
static int
file_ready(struct audit *a)
{
	struct stat	 sb;
	int		 fd;

	if (a->fd != -1) {
		if (stat(a->path, &sb) == 0 && sb.st_dev == a->dev &&
		    sb.st_ino == a->ino)
			return 0;
		close(a->fd);	/* rotated or removed: open the new one */
		a->fd = -1;
	}
	if ((fd = file_open(a->path)) == -1)
		return -1;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		close(fd);
		errno = EINVAL;	/* not a regular file */
		return -1;
	}
	a->fd = fd;
	a->dev = sb.st_dev;
	a->ino = sb.st_ino;
	return 0;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	/* One write: O_APPEND keeps it whole.  A short write (a full disk)
	 * is not continued, which would put the rest after another
	 * process's line. */
	do
		w = write(fd, p, n);
	while (w == -1 && errno == EINTR);
	if (w == -1)
		return -1;
	if ((size_t)w != n) {
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

void
audit_emit(struct audit *a, const struct audit_event *ev)
{
	char		 line[AUDIT_LINE_MAX];
	struct timespec	 ts;
	size_t		 n;

	if (a == NULL || a->sink == AUDIT_OFF)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	n = audit_format(line, sizeof(line), ev, &ts);
	switch (a->sink) {
	case AUDIT_SYSLOG:
		if (!a->syslog_open) {
			openlog("crmauth", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
			a->syslog_open = 1;
		}
		line[n - 1] = '\0';	/* syslog ends the record */
		syslog(LOG_AUTHPRIV | LOG_INFO, "%s", line);
		break;
	case AUDIT_STDERR:
		if (write_all(STDERR_FILENO, line, n) == -1)
			failed(a, "stderr", errno);
		break;
	case AUDIT_FILE:
		if (file_ready(a) == -1 || write_all(a->fd, line, n) == -1)
			failed(a, a->path, errno);
		else
			recovered(a, a->path);
		break;
	case AUDIT_OFF:
		break;
	}
}
