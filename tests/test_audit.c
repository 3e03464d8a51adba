/*
 * audit.c: the line (members, order, time, escaping, the name limit)
 * and the file sink (appends from several processes, rotation, a sink
 * that cannot be written).
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "unit.h"

static char	*dir;

static const struct timespec T0 = { 1764457200, 123456789 };

static char *
line_of(const struct audit_event *ev)
{
	static char	 buf[AUDIT_LINE_MAX];
	size_t		 n = audit_format(buf, sizeof(buf), ev, &T0);

	CU_ASSERT_EQUAL(n, strlen(buf));
	CU_ASSERT(n > 0 && buf[n - 1] == '\n');
	return buf;
}

/* The line parsed strictly as JSON (one object, UTF-8); NULL if not. */
static json_object *
parse_line(const char *line)
{
	json_tokener	*tok = json_tokener_new();
	json_object	*o;
	size_t		 n = strlen(line);

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	if (n > 0 && line[n - 1] == '\n')
		n--;
	o = json_tokener_parse_ex(tok, line, (int)n);
	if (o != NULL && json_tokener_get_parse_end(tok) != n) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static const char *
member(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v))
		return NULL;
	return json_object_get_string(v);
}

static void
t_exact_line(void)
{
	struct audit_event ev = { .event = "token_issued",
	    .method = "authentication/web_api_key/token", .org = "ACME",
	    .usr = "alice", .unit = "HQ", .jti = "00112233445566778899AABBCCDDEEFF",
	    .kid = "0011223344556677", .key_id = "8899AABBCCDDEEFF",
	    .client = "127.0.0.1" };

	CU_ASSERT_STRING_EQUAL(line_of(&ev), "{\"time\":"
	    "\"2025-11-29T23:00:00.123Z\",\"event\":\"token_issued\","
	    "\"method\":\"authentication/web_api_key/token\",\"org\":\"ACME\","
	    "\"usr\":\"alice\",\"unit\":\"HQ\","
	    "\"jti\":\"00112233445566778899AABBCCDDEEFF\","
	    "\"kid\":\"0011223344556677\",\"key_id\":\"8899AABBCCDDEEFF\","
	    "\"client\":\"127.0.0.1\"}\n");
	ev = (struct audit_event){ .event = "admin", .command = "user add",
	    .org = "ACME", .usr = "bob", .unix_user = "root",
	    .sudo_user = "ann" };
	CU_ASSERT_STRING_EQUAL(line_of(&ev), "{\"time\":"
	    "\"2025-11-29T23:00:00.123Z\",\"event\":\"admin\","
	    "\"command\":\"user add\",\"org\":\"ACME\",\"usr\":\"bob\","
	    "\"unix_user\":\"root\",\"sudo_user\":\"ann\"}\n");
}

/* A hostile name: one line, one member, every character accounted for. */
static void
t_escaping(void)
{
	static const struct {
		const char *in, *json, *back;
	} cases[] = {
		{ "a\"b", "a\\\"b", "a\"b" },
		{ "a\\b", "a\\\\b", "a\\b" },
		{ "x\",\"event\":\"admin", "x\\\",\\\"event\\\":\\\"admin",
		    "x\",\"event\":\"admin" },
		{ "a\nb\r\tc", "a\\u000ab\\u000d\\u0009c", "a\nb\r\tc" },
		{ "\x01\x1b[31m\x7f", "\\u0001\\u001b[31m\\u007f",
		    "\x01\x1b[31m\x7f" },
		/* C1 controls (U+0085 NEL, U+009B CSI) escaped too. */
		{ "a\xc2\x85" "b\xc2\x9b", "a\\u0085b\\u009b",
		    "a\xc2\x85" "b\xc2\x9b" },
		/* Invisible reordering: RLO, LRI, U+2028, ZWSP, BOM. */
		{ "x\xe2\x80\xae" "y\xe2\x81\xa6\xe2\x80\xa8\xe2\x80\x8b"
		    "\xef\xbb\xbf", "x\\u202ey\\u2066\\u2028\\u200b\\ufeff",
		    "x\xe2\x80\xae" "y\xe2\x81\xa6\xe2\x80\xa8\xe2\x80\x8b"
		    "\xef\xbb\xbf" },
		/* Well-formed UTF-8 stays as it is. */
		{ "J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x94\x91",
		    "J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x94\x91",
		    "J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x94\x91" },
		/* Not UTF-8: each bad byte is U+FFFD. */
		{ "a\xff" "b\xc0\xaf" "c\xed\xa0\x80",
		    "a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffd",
		    "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
		    "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct audit_event	 ev = { .event = "auth_failed",
					    .usr = cases[i].in,
					    .reason = "unknown_user" };
		char			*line = line_of(&ev), want[512];
		json_object		*o;

		snprintf(want, sizeof(want), "\"usr\":\"%s\",", cases[i].json);
		CU_ASSERT_PTR_NOT_NULL(strstr(line, want));
		CU_ASSERT_PTR_EQUAL(strchr(line, '\n'), line + strlen(line) - 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(o = parse_line(line));
		CU_ASSERT_STRING_EQUAL(member(o, "usr"), cases[i].back);
		CU_ASSERT_STRING_EQUAL(member(o, "event"), "auth_failed");
		CU_ASSERT_EQUAL(json_object_object_length(o), 4);
		json_object_put(o);
	}
}

/* Names are cut to CRM_NAME_MAX bytes, never inside a character. */
static void
t_name_limit(void)
{
	char			 big[10240 + 1], *line;
	struct audit_event	 ev = { .event = "auth_failed", .usr = big };
	json_object		*o;

	memset(big, 'n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	line = line_of(&ev);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o = parse_line(line));
	CU_ASSERT_EQUAL(strlen(member(o, "usr")), CRM_NAME_MAX);
	json_object_put(o);
	/* A two-byte character across the limit is left out whole. */
	big[CRM_NAME_MAX - 1] = '\xc3';
	big[CRM_NAME_MAX] = '\xa9';
	CU_ASSERT_PTR_NOT_NULL_FATAL(o = parse_line(line_of(&ev)));
	CU_ASSERT_EQUAL(strlen(member(o, "usr")), CRM_NAME_MAX - 1);
	json_object_put(o);
	/* The worst case: every member at the limit, every byte escaped. */
	memset(big, '\x01', sizeof(big) - 1);
	ev = (struct audit_event){ .event = big, .method = big,
	    .command = big, .org = big, .usr = big, .unit = big,
	    .identifier = big, .jti = big, .kid = big, .key_id = big,
	    .client = big, .address = big, .file = big, .reason = big,
	    .unix_user = big, .sudo_user = big };
	CU_ASSERT_PTR_NOT_NULL_FATAL(o = parse_line(line_of(&ev)));
	CU_ASSERT_EQUAL(strlen(member(o, "sudo_user")), CRM_NAME_MAX);
	json_object_put(o);
}

static void
t_sink_parse(void)
{
	enum audit_sink s;

	CU_ASSERT(audit_sink_parse("syslog", &s) == 0 && s == AUDIT_SYSLOG);
	CU_ASSERT(audit_sink_parse("stderr", &s) == 0 && s == AUDIT_STDERR);
	CU_ASSERT(audit_sink_parse("off", &s) == 0 && s == AUDIT_OFF);
	CU_ASSERT(audit_sink_parse("/x/y", &s) == 0 && s == AUDIT_FILE);
	CU_ASSERT_EQUAL(audit_sink_parse("x/y", &s), -1);
	CU_ASSERT_EQUAL(audit_sink_parse("", &s), -1);
}


/* Lines of a file, each checked to be one JSON object; -1 if not. */
static int
count_lines(const char *path)
{
	FILE	*f = fopen(path, "r");
	char	*line = NULL;
	size_t	 cap = 0;
	int	 n = 0;

	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (getline(&line, &cap, f) != -1) {
		json_object *o = parse_line(line);

		if (o == NULL || line[strlen(line) - 1] != '\n')
			n = -1000000;
		json_object_put(o);
		n++;
	}
	free(line);
	fclose(f);
	return n < 0 ? -1 : n;
}

static void
emit_n(const char *path, int n, const char *usr)
{
	struct audit		 a;
	struct audit_event	 ev = { .event = "token_issued", .usr = usr };

	audit_init(&a, path);
	for (int i = 0; i < n; i++)
		audit_emit(&a, &ev);
	audit_close(&a);
}

/* Four processes appending at once: whole lines, none lost. */
static void
t_appends_whole(void)
{
	char	 path[1024], usr[200];
	pid_t	 pids[4];
	int	 st;

	snprintf(path, sizeof(path), "%s/many.log", dir);
	memset(usr, 'u', sizeof(usr) - 1);
	usr[sizeof(usr) - 1] = '\0';
	for (int i = 0; i < 4; i++)
		if ((pids[i] = fork()) == 0) {
			emit_n(path, 2000, usr);
			_exit(0);
		}
	for (int i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(waitpid(pids[i], &st, 0), pids[i]);
		CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	CU_ASSERT_EQUAL(count_lines(path), 8000);
}

/* Wait (with a deadline) until the coarse monotonic clock, by which the
 * sink looks the path up at most once a second, shows the next second. */
static void
next_second(void)
{
	struct timespec	 t0, t, tick = { 0, 10 * 1000 * 1000 };

	clock_gettime(CLOCK_MONOTONIC_COARSE, &t0);
	for (int i = 0; i < 300; i++) {
		clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
		if (t.tv_sec > t0.tv_sec)
			return;
		nanosleep(&tick, NULL);
	}
	CU_FAIL("the clock did not reach the next second in 3 s");
}

/* Renamed (logrotate) or removed: within a second, lines go on to the
 * renamed file; then a new file is opened.  None is lost. */
static void
t_rotation(void)
{
	struct audit		 a;
	struct audit_event	 ev = { .event = "token_released" };
	struct stat		 sb;
	char			 path[1024], old[1100];
	mode_t			 mask = umask(0);
	int			 in_old;

	umask(mask);
	snprintf(path, sizeof(path), "%s/rot.log", dir);
	snprintf(old, sizeof(old), "%s.1", path);
	audit_init(&a, path);
	audit_emit(&a, &ev);
	audit_emit(&a, &ev);
	CU_ASSERT_EQUAL(rename(path, old), 0);
	audit_emit(&a, &ev);		/* old or new, by the clock */
	in_old = count_lines(old);
	CU_ASSERT(in_old == 2 || in_old == 3);
	next_second();
	audit_emit(&a, &ev);
	CU_ASSERT_EQUAL(count_lines(old), in_old);
	CU_ASSERT_EQUAL(count_lines(path), 4 - in_old);
	CU_ASSERT_EQUAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 0777, 0640 & ~mask);
	CU_ASSERT_EQUAL(unlink(path), 0);
	next_second();
	audit_emit(&a, &ev);
	CU_ASSERT_EQUAL(count_lines(path), 1);
	audit_close(&a);
}

/* Made by root (crmauthctl after a rotation): its directory's owner and
 * group get it, so the responders can still append. */
static void
t_root_gives_file_away(void)
{
	struct audit		 a;
	struct audit_event	 ev = { .event = "admin" };
	struct stat		 sb;
	char			 sub[1024], path[1100];

	if (geteuid() != 0)
		return;		/* only root makes files for others */
	snprintf(sub, sizeof(sub), "%s/owned", dir);
	snprintf(path, sizeof(path), "%s/audit.log", sub);
	CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0750), 0);
	CU_ASSERT_EQUAL_FATAL(chown(sub, 65534, 65533), 0);
	audit_init(&a, path);
	audit_emit(&a, &ev);
	audit_close(&a);
	CU_ASSERT_EQUAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_uid, 65534);
	CU_ASSERT_EQUAL(sb.st_gid, 65533);
	CU_ASSERT_EQUAL(count_lines(path), 1);
}

/* stderr redirected to a file while fn runs; its text, malloc'd. */
static char *
capture_stderr(void (*fn)(void *), void *arg)
{
	char	 path[1024], *text;
	int	 saved = dup(STDERR_FILENO), fd;
	FILE	*f;
	long	 n;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	close(fd);
	fn(arg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	f = fopen(path, "r");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	if (fread(text, 1, (size_t)n, f) != (size_t)n)
		text[0] = '\0';	/* and the caller's check fails */
	fclose(f);
	return text;
}

struct unwritable {
	struct audit	 a;
	char		 sub[1024], path[1100];
};

static void
emit_100(void *arg)
{
	struct unwritable	*u = arg;
	struct audit_event	 ev = { .event = "auth_failed",
				    .reason = "bad_password" };

	for (int i = 0; i < 100; i++)
		audit_emit(&u->a, &ev);
}

static int
lines_in(const char *text)
{
	int n = 0;

	for (; *text != '\0'; text++)
		n += *text == '\n';
	return n;
}

/* A sink that cannot be written costs one line on stderr, not one per
 * event; once it can, events are written again (and that is said). */
static void
t_unwritable(void)
{
	struct unwritable	 u;
	char			*text;

	snprintf(u.sub, sizeof(u.sub), "%s/not-yet", dir);
	snprintf(u.path, sizeof(u.path), "%s/audit.log", u.sub);
	audit_init(&u.a, u.path);
	text = capture_stderr(emit_100, &u);
	CU_ASSERT_EQUAL(lines_in(text), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "audit_log: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "No such file or directory; "
	    "events are lost until it can be written again"));
	free(text);
	CU_ASSERT_EQUAL(mkdir(u.sub, 0700), 0);
	u.a.retry = 0;		/* a second later: tried again */
	text = capture_stderr(emit_100, &u);
	CU_ASSERT_EQUAL(lines_in(text), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "written again"));
	free(text);
	CU_ASSERT_EQUAL(count_lines(u.path), 100);
	audit_close(&u.a);
	/* A FIFO in its place: refused at once, not waited on. */
	CU_ASSERT_EQUAL(unlink(u.path), 0);
	CU_ASSERT_EQUAL(mkfifo(u.path, 0600), 0);
	audit_init(&u.a, u.path);
	text = capture_stderr(emit_100, &u);
	CU_ASSERT_EQUAL(lines_in(text), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "not a regular file"));
	free(text);
	audit_close(&u.a);
	CU_ASSERT_EQUAL(unlink(u.path), 0);
}

/* off: nothing anywhere (stderr, the syslog socket, a file). */
static void
t_off(void)
{
	struct unwritable	 u;
	char			*text;

	audit_init(&u.a, "off");
	snprintf(u.a.syslog_path, sizeof(u.a.syslog_path), "%s/off.sock", dir);
	text = capture_stderr(emit_100, &u);
	CU_ASSERT_STRING_EQUAL(text, "");
	free(text);
	CU_ASSERT_EQUAL(u.a.fd, -1);
	audit_close(&u.a);
}

/* FastCGI: a request's event is made when it happens and written once
 * the answer is out (audit_flush). */
static void
t_defer(void)
{
	struct audit		 a;
	struct audit_event	 ev = { .event = "token_issued", .usr = "u" };
	char			 path[1024];

	snprintf(path, sizeof(path), "%s/defer.log", dir);
	audit_init(&a, path);
	audit_defer(&a);
	audit_emit(&a, &ev);
	CU_ASSERT_EQUAL(count_lines(path), 0);
	audit_flush(&a);
	CU_ASSERT_EQUAL(count_lines(path), 1);
	audit_flush(&a);		/* nothing more */
	CU_ASSERT_EQUAL(count_lines(path), 1);
	audit_emit(&a, &ev);		/* two before a flush: both */
	audit_emit(&a, &ev);
	audit_flush(&a);
	CU_ASSERT_EQUAL(count_lines(path), 3);
	audit_close(&a);
}

/* CGI: a process per request.  With a marker, the second process to
 * find the sink broken within a minute says nothing. */
static void
t_marker_across_processes(void)
{
	struct unwritable	 u;
	char			 marker[1100], *text;

	snprintf(u.path, sizeof(u.path), "%s/nowhere/audit.log", dir);
	snprintf(marker, sizeof(marker), "%s/audit-warned", dir);
	for (int proc = 0; proc < 3; proc++) {
		audit_init(&u.a, u.path);
		audit_marker(&u.a, marker);
		text = capture_stderr(emit_100, &u);
		CU_ASSERT_EQUAL(lines_in(text), proc == 0 ? 1 : 0);
		free(text);
		audit_close(&u.a);
	}
	CU_ASSERT_EQUAL(access(marker, F_OK), 0);
}

/* A full disk (here RLIMIT_FSIZE) cuts a line short: the process's next
 * line starts on a line of its own, after a write that failed outright
 * too, and when events wait for audit_flush; only the cut lines are
 * lost. */
static void
t_cut_line(void)
{
	char		 path[1024];
	pid_t		 pid;
	int		 st;

	snprintf(path, sizeof(path), "%s/cut.log", dir);
	if ((pid = fork()) == 0) {
		struct audit		 a;
		struct audit_event	 ev = { .event = "token_issued" };
		struct rlimit		 rl;
		struct stat		 sb;

		signal(SIGXFSZ, SIG_IGN);
		if (freopen("/dev/null", "w", stderr) == NULL)	/* it says so */
			_exit(2);
		getrlimit(RLIMIT_FSIZE, &rl);
		audit_init(&a, path);
		audit_emit(&a, &ev);		/* whole */
		rl.rlim_cur = 100;		/* the next one is cut, */
		setrlimit(RLIMIT_FSIZE, &rl);
		audit_emit(&a, &ev);
		a.retry = 0;			/* a second later: */
		audit_emit(&a, &ev);		/* this one not written */
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_FSIZE, &rl);
		a.retry = 0;
		audit_emit(&a, &ev);		/* whole, on its own line */
		audit_defer(&a);
		stat(path, &sb);
		rl.rlim_cur = (rlim_t)sb.st_size + 20;
		setrlimit(RLIMIT_FSIZE, &rl);
		audit_emit(&a, &ev);
		audit_flush(&a);		/* cut */
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_FSIZE, &rl);
		a.retry = 0;
		audit_emit(&a, &ev);
		audit_close(&a);		/* flushes: whole */
		_exit(0);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	{
		FILE	*f = fopen(path, "r");
		char	*line = NULL;
		size_t	 cap = 0;
		int	 good = 0, bad = 0;

		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		while (getline(&line, &cap, f) != -1) {
			json_object *o = parse_line(line);

			if (o != NULL)
				good++;
			else
				bad++;
			json_object_put(o);
		}
		free(line);
		fclose(f);
		CU_ASSERT_EQUAL(good, 3);
		CU_ASSERT_EQUAL(bad, 2);
	}
}

/* syslog: one datagram per event, <86> (authpriv.info), ident and pid;
 * a daemon that does not read costs the events, never a wait. */
static void
t_syslog(void)
{
	struct sockaddr_un	 sun;
	struct unwritable	 u;
	char			 buf[AUDIT_LINE_MAX + 128], want[64], *text;
	int			 s;
	ssize_t			 n;
	json_object		*o;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/log", dir);
	CU_ASSERT_FATAL((s = socket(AF_UNIX, SOCK_DGRAM, 0)) != -1);
	CU_ASSERT_EQUAL_FATAL(bind(s, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	audit_init(&u.a, "syslog");
	snprintf(u.a.syslog_path, sizeof(u.a.syslog_path), "%s", sun.sun_path);
	{
		struct audit_event ev = { .event = "token_released",
		    .jti = "00112233445566778899AABBCCDDEEFF" };

		audit_emit(&u.a, &ev);
	}
	n = recv(s, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	CU_ASSERT_FATAL(n > 0);
	buf[n] = '\0';
	CU_ASSERT_EQUAL(strncmp(buf, "<86>", 4), 0);
	snprintf(want, sizeof(want), " crmauth[%ld]: {", (long)getpid());
	CU_ASSERT_PTR_NOT_NULL_FATAL(strstr(buf, want));
	CU_ASSERT_PTR_NULL(strchr(buf, '\n'));
	CU_ASSERT_PTR_NOT_NULL_FATAL(o = parse_line(strchr(buf, '{')));
	CU_ASSERT_STRING_EQUAL(member(o, "event"), "token_released");
	json_object_put(o);
	/* Nobody reads: thousands of events return at once, and one
	 * line says they are dropped. */
	text = capture_stderr(emit_100, &u);
	for (int i = 0; i < 30; i++)
		free(capture_stderr(emit_100, &u));
	CU_ASSERT_EQUAL(lines_in(text), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "not reading"));
	free(text);
	audit_close(&u.a);
	close(s);
}

/*
 * A sink that fails is tried again once a second at most: no syslog
 * daemon must not cost each request a socket, a connect and a close.
 * Events meanwhile are lost (as they would be), not queued.
 */
static void
t_failing_sink_once_a_second(void)
{
	struct sockaddr_un	 sun;
	struct unwritable	 u;
	struct audit_event	 ev = { .event = "token_issued" };
	char			 buf[AUDIT_LINE_MAX + 128], *text;
	int			 s;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/later.sock", dir);
	audit_init(&u.a, "syslog");
	snprintf(u.a.syslog_path, sizeof(u.a.syslog_path), "%s", sun.sun_path);
	text = capture_stderr(emit_100, &u);	/* no daemon yet */
	CU_ASSERT_EQUAL(lines_in(text), 1);
	free(text);
	CU_ASSERT_FATAL((s = socket(AF_UNIX, SOCK_DGRAM, 0)) != -1);
	CU_ASSERT_EQUAL_FATAL(bind(s, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	/* The daemon there now, but within the second: not tried. */
	audit_emit(&u.a, &ev);
	CU_ASSERT_EQUAL(recv(s, buf, sizeof(buf), MSG_DONTWAIT), -1);
	u.a.retry = 0;		/* a second later: tried, and each after */
	for (int i = 0; i < 5; i++)
		audit_emit(&u.a, &ev);
	for (int i = 0; i < 5; i++)
		CU_ASSERT(recv(s, buf, sizeof(buf), MSG_DONTWAIT) > 0);
	CU_ASSERT_EQUAL(recv(s, buf, sizeof(buf), MSG_DONTWAIT), -1);
	CU_ASSERT_EQUAL(u.a.failing, 0);
	audit_close(&u.a);
	close(s);
	unlink(sun.sun_path);
}

/* Root appends only to a file of root's or of its directory's owner,
 * linked once: not to a hard link the directory's owner put there. */
static void
t_root_refuses_planted_file(void)
{
	struct unwritable	 u;
	char			 sub[1024], other[1100], *text;

	if (geteuid() != 0)
		return;
	snprintf(sub, sizeof(sub), "%s/planted", dir);
	snprintf(u.path, sizeof(u.path), "%s/audit.log", sub);
	snprintf(other, sizeof(other), "%s/crontab", dir);
	CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0750), 0);
	CU_ASSERT_EQUAL_FATAL(chown(sub, 65534, 65534), 0);
	free(unit_write(dir, "crontab", "root's\n"));
	CU_ASSERT_EQUAL_FATAL(link(other, u.path), 0);
	audit_init(&u.a, u.path);
	text = capture_stderr(emit_100, &u);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "not a file root may append to"));
	free(text);
	audit_close(&u.a);
	CU_ASSERT_EQUAL(count_lines(other), -1);	/* "root's" only */
	{
		struct stat sb;

		CU_ASSERT_EQUAL(stat(other, &sb), 0);
		CU_ASSERT_EQUAL(sb.st_size, 7);
	}
	/* Another user's file there: refused too. */
	CU_ASSERT_EQUAL(unlink(u.path), 0);
	free(unit_write(sub, "audit.log", ""));
	CU_ASSERT_EQUAL(chown(u.path, 65533, 65533), 0);
	audit_init(&u.a, u.path);
	text = capture_stderr(emit_100, &u);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "not a file root may append to"));
	free(text);
	audit_close(&u.a);
}

/* fmt_utc, which reads no time zone, gives what gmtime(3) gives, from
 * 1900 to 2200 and on the edges of days, leap days and centuries. */
static void
t_fmt_utc(void)
{
	static const int64_t edges[] = { 0, -1, 86399, 86400, 951782399,
	    951782400, 951868800, 4107542399LL, 4107542400LL, 253402300799LL };
	char		 a[64], b[64];
	struct tm	 tm;
	time_t		 tt;
	int64_t		 t;
	size_t		 i, bad = 0;

	for (t = -2208988800LL; t < 7258118400LL; t += 86399 * 7 + 13) {
		tt = (time_t)t;
		gmtime_r(&tt, &tm);
		strftime(a, sizeof(a), "%Y-%m-%dT%H:%M:%S", &tm);
		fmt_utc(b, sizeof(b), t);
		bad += strcmp(a, b) != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
	for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		tt = (time_t)edges[i];
		gmtime_r(&tt, &tm);
		strftime(a, sizeof(a), "%Y-%m-%dT%H:%M:%S", &tm);
		CU_ASSERT_EQUAL(fmt_utc(b, sizeof(b), edges[i]), 19);
		CU_ASSERT_STRING_EQUAL(b, a);
	}
}

static CU_TestInfo tests[] = {
	{ "UTC times without the time zone file", t_fmt_utc },
	{ "one line: members in order, UTC time in milliseconds",
	    t_exact_line },
	{ "security: hostile names cannot break a line or forge a member",
	    t_escaping },
	{ "names cut to the limit, never inside a character", t_name_limit },
	{ "audit_log values", t_sink_parse },
	{ "audit_log = off writes nothing", t_off },
	{ "four processes appending: whole lines, none lost",
	    t_appends_whole },
	{ "a renamed or removed file is followed within a second, no restart",
	    t_rotation },
	{ "a sink that cannot be written: one line on stderr", t_unwritable },
	{ "a file root makes belongs to its directory's owner",
	    t_root_gives_file_away },
	{ "security: root does not append to a file planted by a link",
	    t_root_refuses_planted_file },
	{ "CGI: one line a minute across processes", t_marker_across_processes },
	{ "FastCGI: lines made at once, written after the answer", t_defer },
	{ "a line cut by a full disk costs that line only", t_cut_line },
	{ "syslog: authpriv.info datagrams, never waited for", t_syslog },
	{ "a failing sink is tried again once a second, not per event",
	    t_failing_sink_once_a_second },
	CU_TEST_INFO_NULL,
};

int
main(void)
{
	int rc;

	dir = unit_tmpdir();
	rc = unit_run("audit", tests);
	unit_rmtree(dir);
	free(dir);
	return rc;
}
