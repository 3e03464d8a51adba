/*
 * Authentication events (README.md, "Authentication events"): one JSON
 * object per line, for the operator who must answer who got a token, when, from where, and who
 * tried and failed.  Sinks (audit_log): syslog (authpriv), stderr (the
 * web server's error log), a file, or off.
 *
 * A file is appended to with one write(2) per line on a descriptor
 * opened O_APPEND, which POSIX makes atomic with respect to other
 * appends: the lines of several responder processes never interleave.
 * Once a second at most, before a line, the path is looked up; when
 * it names another file than the one open (logrotate renamed it, or it
 * was removed), the new one is opened, so a rotation needs no signal and
 * no restart.  A line written between the rename and that check lands
 * at the end of the renamed file: nothing is lost (logrotate's
 * delaycompress leaves that file as it is until the next rotation).
 * A file removed instead takes the lines of that second with it.
 *
 * syslog is written to /dev/log directly, on a non-blocking socket:
 * glibc's syslog(3) blocks the request while the daemon does not read
 * (restarting, stalled), where an event had better be lost.
 *
 * Nothing here can fail a request: a sink that cannot be written costs
 * the event and one line on stderr, once until it works again (and, with
 * a marker file, once a minute across processes: CGI).  Nor can it cost
 * each request its system calls: a failing sink is tried again once a
 * second at most (no syslog daemon: no socket, connect and close per
 * request), the events between lost as they would have been.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <paths.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

/* A new events file: readable by the group that logrotate and the
 * administrators share; on shared hosting, where a group may be many
 * customers', by its owner alone. */
#ifdef CRMAUTH_SHARED_HOSTING
#define AUDIT_FILE_MODE	0600
#else
#define AUDIT_FILE_MODE	0640
#endif

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
	snprintf(a->syslog_path, sizeof(a->syslog_path), "%s", _PATH_LOG);
	if (audit_sink_parse(setting, &a->sink) == -1)
		a->sink = AUDIT_OFF;	/* config_load refused it already */
	if (a->sink == AUDIT_FILE)
		snprintf(a->path, sizeof(a->path), "%s", setting);
}

void
audit_marker(struct audit *a, const char *marker)
{
	snprintf(a->marker, sizeof(a->marker), "%s", marker);
}

int
audit_rotate(const char *path, int keep, char *err, size_t errlen)
{
	char		 from[1100], to[1100];
	struct stat	 sb;
	int		 i;

	if (lstat(path, &sb) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	/* Beyond keep: left by an earlier, larger keep. */
	for (i = keep + 1; i <= 1000; i++) {
		snprintf(from, sizeof(from), "%s.%d", path, i);
		if (unlink(from) == -1)
			break;
	}
	for (i = keep; i >= 1; i--) {
		snprintf(from, sizeof(from), "%s.%d", path, i);
		snprintf(to, sizeof(to), "%s.%d", path, i + 1);
		if (i == keep) {
			if (unlink(from) == -1 && errno != ENOENT)
				goto fail;
		} else if (rename(from, to) == -1 && errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", from, strerror(errno));
			return -1;
		}
	}
	/* link, not rename: a rotation running beside us that made a new
	 * .1 meanwhile is not overwritten (EEXIST). */
	snprintf(to, sizeof(to), "%s.1", path);
	snprintf(from, sizeof(from), "%s", path);
	if (link(path, to) == -1) {
		if (errno == EEXIST) {
			snprintf(err, errlen, "%s appeared meanwhile: is another "
			    "rotation running?", to);
			return -1;
		}
		if (rename(path, to) == -1)	/* no hard links here */
			goto fail;
	} else if (unlink(path) == -1)
		goto fail;
	return 1;
fail:
	snprintf(err, errlen, "%s: %s", from, strerror(errno));
	return -1;
}

void
audit_close(struct audit *a)
{
	audit_flush(a);
	if (a->fd != -1)
		close(a->fd);
	a->fd = -1;
}

/* ---- the line -------------------------------------------------------- */

/*
 * Characters that are escaped although JSON allows them: C1 controls,
 * which terminals act on, and the invisible ones that reorder or hide
 * text on screen (bidirectional controls, line and paragraph
 * separators, zero-width characters, the byte order mark).
 */
static int
hidden(unsigned cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c ||
	    (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
	    (cp >= 0x2060 && cp <= 0x2069) || cp == 0xfeff;
}

/* The code point of a well-formed sequence of n bytes. */
static unsigned
code_point(const unsigned char *p, size_t n)
{
	switch (n) {
	case 2:
		return (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu);
	case 3:
		return (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 |
		    (p[2] & 0x3fu);
	case 4:
		return (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 |
		    (p[2] & 0x3fu) << 6 | (p[3] & 0x3fu);
	}
	return p[0];
}

/*
 * Append s as a JSON string, its first CRM_NAME_MAX bytes at most (cut
 * at a character boundary).  Quotes, backslashes, C0 controls, DEL and
 * the hidden() characters are escaped, so that nothing a client sent
 * can end the line, add a member, or act on a terminal; a byte that is
 * not part of well-formed UTF-8 becomes U+FFFD.
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
		/* A run of printable ASCII, copied at once. */
		for (n = 0; n < left && p[n] >= 0x20 && p[n] < 0x7f &&
		    p[n] != '"' && p[n] != '\\'; n++)
			;
		if (n > 0) {
			fbuf_add(b, p, n);
			p += n, left -= n;
			continue;
		}
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
		if (hidden(code_point(p, n))) {
			snprintf(esc, sizeof(esc), "\\u%04x",
			    code_point(p, n));
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
	/* The second as text, made again only when it changes.  The
	 * programs that write events have one thread each; libcrmauth,
	 * which may be used from several, never calls this. */
	static time_t	 sec;
	static int	 valid, n;
	static char	 t[64];
	struct fbuf	 b = { buf, 0, size - 1, 0 };

	if (!valid || ts->tv_sec != sec) {
		n = fmt_utc(t, sizeof(t) - 8, ts->tv_sec);
		sec = ts->tv_sec;
		valid = 1;
	}
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
	add_member(&b, "request_id", ev->request_id);
	add_member(&b, "address", ev->address);
	add_member(&b, "file", ev->file);
	add_member(&b, "reason", ev->reason);
	add_member(&b, "unix_user", ev->unix_user);
	add_member(&b, "login_user", ev->login_user);
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

/*
 * Say once that events are being lost (why: strerror's text or our
 * own).  With a marker file, processes that have not said it yet stay
 * silent while the marker is younger than a minute: under CGI each
 * request is a process of its own.
 */
static void
failed(struct audit *a, const char *what, const char *why)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	a->retry = now.tv_sec + 1;
	if (a->failing)
		return;
	a->failing = 1;
	if (a->marker[0] != '\0' && marker_fresh(a->marker))
		return;
	log_err("audit_log: %s: %s; events are lost until it can be "
	    "written again", what, why);
}

static void
recovered(struct audit *a, const char *what)
{
	if (!a->failing)
		return;
	a->failing = 0;
	if (a->marker[0] != '\0')
		unlink(a->marker);
	log_err("audit_log: %s: written again", what);
}

/*
 * Open the file, making it (AUDIT_FILE_MODE) if it is not there.  When
 * root makes it (crmauthctl run by root, the first to write after a rotation), it
 * gets the owner and group of its directory, so that the responders,
 * whose directory it is, can still append to it.
 */
static int
file_open(const char *path, const struct stat *dir)
{
	/* O_NONBLOCK: a FIFO put there does not hang the request (it is
	 * refused by the caller); a regular file ignores it. */
	const int	 flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY |
			    O_NOFOLLOW | O_NONBLOCK;
	int		 fd;

	for (int tries = 0; tries < 3; tries++) {
		if ((fd = open(path, flags | O_CREAT | O_EXCL,
		    AUDIT_FILE_MODE)) != -1)
			break;
		if (errno != EEXIST)
			return -1;
		if ((fd = open(path, flags)) != -1 || errno != ENOENT)
			return fd;	/* else renamed just now: again */
	}
	if (fd != -1 && geteuid() == 0 && dir != NULL &&
	    (dir->st_uid != 0 || dir->st_gid != 0) &&
	    fchown(fd, dir->st_uid, dir->st_gid) == -1)
		log_err("audit_log: %s: giving it to its directory's owner: %s",
		    path, strerror(errno));
	return fd;
}

/* The file open, and still the one its path names; else -1 and why. */
static int
file_ready(struct audit *a, const char **why)
{
	struct statx	 stx;
	struct timespec	 now;
	struct stat	 sb, dsb, *dir = NULL;
	char		 d[sizeof(a->path)], *slash;
	int		 fd;

	*why = NULL;
	if (a->fd != -1) {
		/* At most once a second: a line written in between lands at
		 * the end of the renamed file, which logrotate compresses at
		 * the next rotation only (delaycompress). */
		clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
		if (now.tv_sec == a->checked)
			return 0;
		a->checked = now.tv_sec;
		/* statx for the inode only: a stat(2) asking for times
		 * would make the next write take a fine-grained time and
		 * dirty the inode (multigrain timestamps). */
		if (statx(AT_FDCWD, a->path, 0, STATX_INO, &stx) == 0 &&
		    (stx.stx_mask & STATX_INO) &&
		    makedev(stx.stx_dev_major, stx.stx_dev_minor) == a->dev &&
		    stx.stx_ino == a->ino)
			return 0;
		close(a->fd);	/* rotated or removed: open the new one */
		a->fd = -1;
	}
	if (geteuid() == 0) {
		snprintf(d, sizeof(d), "%s", a->path);
		if ((slash = strrchr(d, '/')) != NULL)
			slash[slash == d ? 1 : 0] = '\0';
		if (stat(d, &dsb) == 0)
			dir = &dsb;
	}
	if ((fd = file_open(a->path, dir)) == -1) {
		if (errno == ENXIO)	/* O_NONBLOCK on a FIFO */
			*why = "not a regular file";
		return -1;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode))
		*why = "not a regular file";
	else if (dir != NULL && (sb.st_nlink != 1 ||
	    (sb.st_uid != 0 && sb.st_uid != dir->st_uid)))
		/* Root appends only to a file of root's or of the
		 * directory's owner, linked once: not to a hard link to
		 * another file that the directory's owner put there. */
		*why = "not a file root may append to (another owner, or "
		    "hard-linked)";
	if (*why != NULL) {
		close(fd);
		return -1;
	}
	a->fd = fd;
	a->dev = sb.st_dev;
	a->ino = sb.st_ino;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	a->checked = now.tv_sec;
	return 0;
}

/* One write: O_APPEND keeps it whole.  0, or -1 with errno. */
static int
write_once(int fd, const char *p, size_t n)
{
	ssize_t w;

	do
		w = write(fd, p, n);
	while (w == -1 && errno == EINTR);
	if (w == -1)
		return -1;
	if ((size_t)w != n) {
		/* A full disk.  Not continued, which would put the rest
		 * after another process's line; the next line starts on
		 * a line of its own (AUDIT_FILE's partial). */
		errno = ENOSPC;
		return w > 0 ? 1 : -1;
	}
	return 0;
}

/*
 * syslog (RFC 3164, as glibc writes it: "<PRI>Mmm dd hh:mm:ss
 * ident[pid]: msg") as one datagram, not waited for.
 */
static int
syslog_send(struct audit *a, const char *line, size_t n, const char **why)
{
	struct sockaddr_un	 sun;
	char			 dgram[AUDIT_LINE_MAX + 64];
	struct tm		 tm;
	time_t			 t = time(NULL);
	int			 h, e;
	ssize_t			 w;

	*why = NULL;
	localtime_r(&t, &tm);
	h = snprintf(dgram, sizeof(dgram), "<%d>", LOG_AUTHPRIV | LOG_INFO);
	h += (int)strftime(dgram + h, sizeof(dgram) - (size_t)h,
	    "%b %e %H:%M:%S", &tm);
	h += snprintf(dgram + h, sizeof(dgram) - (size_t)h, " crmauth[%ld]: ",
	    (long)getpid());
	if (n > sizeof(dgram) - (size_t)h)
		n = sizeof(dgram) - (size_t)h;
	memcpy(dgram + h, line, n);
	for (int tries = 0; tries < 2; tries++) {
		if (a->fd == -1) {
			memset(&sun, 0, sizeof(sun));
			sun.sun_family = AF_UNIX;
			snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
			    a->syslog_path);
			if ((a->fd = socket(AF_UNIX, SOCK_DGRAM |
			    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
				return -1;
			if (connect(a->fd, (struct sockaddr *)&sun,
			    sizeof(sun)) == -1) {
				e = errno;
				close(a->fd);
				a->fd = -1;
				errno = e;
				return -1;
			}
		}
		w = send(a->fd, dgram, (size_t)h + n, MSG_DONTWAIT |
		    MSG_NOSIGNAL);
		if (w >= 0)
			return 0;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			*why = "the syslog daemon is not reading; events are "
			    "dropped rather than waited for";
			return -1;
		}
		/* The daemon restarted (a new socket): connect again. */
		e = errno;
		close(a->fd);
		a->fd = -1;
		errno = e;
	}
	return -1;
}

/* Write one line (n bytes, ending in a newline) to the sink.  line[-1]
 * must be writable: a newline goes there after a line cut short. */
static void
sink_write(struct audit *a, char *line, size_t n)
{
	struct timespec	 now;
	const char	*why = NULL;
	int		 rc;

	if (a->failing) {
		clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
		if (now.tv_sec < a->retry)
			return;		/* lost, as it would be: not tried */
	}
	switch (a->sink) {
	case AUDIT_SYSLOG:
		/* One record per datagram: no newline. */
		if (syslog_send(a, line, n - 1, &why) == -1)
			failed(a, a->syslog_path, why ? why : strerror(errno));
		else
			recovered(a, a->syslog_path);
		break;
	case AUDIT_STDERR:
		if (write_once(STDERR_FILENO, line, n) != 0)
			failed(a, "stderr", strerror(errno));
		else
			recovered(a, "stderr");
		break;
	case AUDIT_FILE:
		if (file_ready(a, &why) == -1) {
			failed(a, a->path, why ? why : strerror(errno));
			break;
		}
		if (a->partial)
			line[-1] = '\n';
		rc = write_once(a->fd, line - a->partial, n + a->partial);
		if (rc != -1)		/* nothing written: as it was */
			a->partial = rc == 1;
		if (rc != 0)
			failed(a, a->path, strerror(errno));
		else
			recovered(a, a->path);
		break;
	case AUDIT_OFF:
		break;
	}
}

void
audit_emit(struct audit *a, const struct audit_event *ev)
{
	char		 line[AUDIT_LINE_MAX + 1];
	struct timespec	 ts;
	size_t		 n;

	if (a == NULL || a->sink == AUDIT_OFF)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (a->defer) {
		/* One event per request; were there more, the earlier
		 * ones are written first. */
		if (a->pending_len > 0)
			audit_flush(a);
		a->pending_len = audit_format(a->pending + 1,
		    sizeof(a->pending) - 1, ev, &ts);
		return;
	}
	n = audit_format(line + 1, sizeof(line) - 1, ev, &ts);
	sink_write(a, line + 1, n);
}

void
audit_defer(struct audit *a)
{
	a->defer = 1;
}

void
audit_flush(struct audit *a)
{
	size_t n = a->pending_len;

	if (n == 0)
		return;
	a->pending_len = 0;
	sink_write(a, a->pending + 1, n);
}
