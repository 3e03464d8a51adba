/*
 * The node's figures: one small file beside the store, mapped shared by
 * every responder (FastCGI or CGI) and by crmauthctl stats, each counter
 * a 64-bit word added to atomically.  A responder that dies, however it
 * dies, has already added what it counted: the words live in the page
 * cache, not in the process.
 *
 * The file is METRICS_FILE_SIZE bytes: a header (magic, layout version,
 * number of words, when counting began), then the words.  It is made
 * whole under a temporary name and linked into place, so no process ever
 * maps a half-written header; a file of another layout version is left
 * alone and nothing is counted (logged once per process).
 *
 * A mapped file that someone truncates would kill the process with
 * SIGBUS at its next add: on_sigbus() puts anonymous pages in its place
 * instead, the request goes on, and the next scrape finds the file
 * unusable (503, logged) and maps a new one once it is removed.
 *
 * The series are fixed by the program: API method (the routes, and
 * "other" for a path that is none) by answer status; a latency
 * histogram per method; tokens, failures by reason, holds per method;
 * releases; store errors by kind.  No label comes from the client.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

#define MAGIC		"CRMAMETR"
#define LAYOUT		1

struct header {
	char		 magic[8];
	uint32_t	 layout;
	uint32_t	 words;
	int64_t		 created;	/* Unix time counting began */
	uint64_t	 shape;		/* metrics_shape() */
	uint64_t	 spare[4];
};
_Static_assert(sizeof(struct header) == 64, "header size");

/* Latency buckets' upper bounds, in nanoseconds: a 30 µs check and a
 * 200 ms login each fall well inside. */
static const uint64_t bounds_ns[] = {
	10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
	100000000, 250000000, 500000000, 1000000000, 2500000000ULL,
};
#define NBOUNDS	(sizeof(bounds_ns) / sizeof(bounds_ns[0]))
static const char *const bounds_text[NBOUNDS] = {
	"1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005",
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
	"0.1", "0.25", "0.5", "1", "2.5",
};

/* The auth_failed reasons events give (README "Authentication events"),
 * and one for any other. */
static const char *const reasons[] = {
	"unknown_user", "bad_password", "disabled", "unknown_key",
	"revoked_key", "unknown_access_token", "bad_pass_code",
	"unit_not_allowed", "invalid_request", "no_key", "other",
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

/* Store errors by kind: enum store_err's values. */
static const char *const store_kinds[] = {
	"ok", "notfound", "exists", "notinit", "version", "full", "corrupt",
	"error", "unavailable",
};
#define NKINDS	(sizeof(store_kinds) / sizeof(store_kinds[0]))
_Static_assert(NKINDS == STORE_UNAVAILABLE + 1, "a name for each kind");

#define NM	(NROUTES + 1)			/* methods, and "other" */
#define NB	(NBOUNDS + 1)			/* buckets, and +Inf */

/* Word offsets. */
#define W_REQ(m, s)	((m) * API__MAX + (s))
#define W_LAT(m, b)	(W_REQ(NM, 0) + (m) * (NB + 1) + (b))
#define W_LATSUM(m)	W_LAT(m, NB)			/* nanoseconds */
#define W_TOKENS(m)	(W_LAT(NM, 0) + (m))
#define W_FAIL(m, r)	(W_TOKENS(NM) + (m) * NREASONS + (r))
#define W_HOLDS(m)	(W_FAIL(NM, 0) + (m))
#define W_RELEASES	W_HOLDS(NM)
#define W_STORE(k)	(W_RELEASES + 1 + (k))
#define W_USED		W_STORE(NKINDS)
#define WORDS		((METRICS_FILE_SIZE - sizeof(struct header)) / 8)
_Static_assert(W_USED <= WORDS, "the series fit the file");
/* Processes share the words: an add must be one instruction, not a
 * lock of libatomic's, which is private to a process. */
_Static_assert(__atomic_always_lock_free(sizeof(uint64_t), 0),
    "lock-free 64-bit atomics");

static const char *
method_name(size_t mi)
{
	return mi < NROUTES ? route_path(mi) : "other";
}

/* FNV-1a over a string, its end included. */
static uint64_t
fnv(uint64_t h, const char *s)
{
	do {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	} while (*s++ != '\0');
	return h;
}

/* The series' shape: a fingerprint of what every word means (methods,
 * answer codes, bucket bounds, reasons, store error kinds, in order).
 * A program whose series differ in any of them reads another layout,
 * even at the same version; tests/test_http.c pins it, so that a change
 * to the series comes with a new LAYOUT (and METRICS_FILE). */
uint64_t
metrics_shape(void)
{
	static uint64_t	 h;
	char		 n[32];
	size_t		 i;

	if (h != 0)
		return h;
	h = 0xcbf29ce484222325ULL;
	/* Where each group of series starts, and where they end. */
	snprintf(n, sizeof(n), "%d %zu", LAYOUT, (size_t)WORDS);
	h = fnv(h, n);
	snprintf(n, sizeof(n), "%zu %zu %zu %zu", (size_t)W_LAT(0, 0),
	    (size_t)W_TOKENS(0), (size_t)W_FAIL(0, 0), (size_t)W_HOLDS(0));
	h = fnv(h, n);
	snprintf(n, sizeof(n), "%zu %zu %zu", (size_t)W_RELEASES,
	    (size_t)W_STORE(0), (size_t)W_USED);
	h = fnv(h, n);
	for (i = 0; i < NM; i++)
		h = fnv(h, method_name(i));
	for (i = 0; i < API__MAX; i++) {
		snprintf(n, sizeof(n), "%d", api_code((enum api_status)i)->http);
		h = fnv(fnv(h, n), api_code((enum api_status)i)->code);
	}
	for (i = 0; i < NBOUNDS; i++) {
		snprintf(n, sizeof(n), "%" PRIu64, bounds_ns[i]);
		h = fnv(h, n);
	}
	for (i = 0; i < NREASONS; i++)
		h = fnv(h, reasons[i]);
	for (i = 0; i < NKINDS; i++)
		h = fnv(h, store_kinds[i]);
	return h;
}

/* The one mapping a responder counts into (on_sigbus), and whether it
 * was truncated under it. */
static void *volatile		 counted_map;
static volatile sig_atomic_t	 counted_lost;

/* A fault in the counted mapping: the file shrank under it.  Anonymous
 * zero pages take its place (the faulting add then completes into them)
 * and metrics_lost() says so.  Any other SIGBUS (LMDB's map, say, or a
 * kill -BUS) gets the default action: the fault repeats and ends the
 * process, with its core, as it would have without this handler.
 * mmap() is not on POSIX's list of async-signal-safe functions; on
 * Linux it is one system call, which is what makes this safe here. */
static void
on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	char	*a = si->si_addr, *m = counted_map;

	(void)ctx;
	if (si->si_code == BUS_ADRERR && m != NULL && a >= m &&
	    a < m + METRICS_FILE_SIZE &&
	    mmap(m, METRICS_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
		counted_lost = 1;
		return;
	}
	signal(sig, SIG_DFL);
	/* Sent (kill -BUS), not a fault that repeats: delivered again,
	 * pending until this returns. */
	if (si->si_code <= 0)
		raise(sig);
}

static void
sigbus_guard(void *map)
{
	static int		 installed;
	struct sigaction	 sa;

	counted_lost = 0;
	counted_map = map;
	if (installed || map == NULL)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) == 0)
		installed = 1;
}

static int
metrics_lost_map(const void *map)
{
	return map != NULL && map == counted_map && counted_lost;
}

int
metrics_lost(const struct metrics *m)
{
	return metrics_lost_map(m->map);
}

static int
header_ok(const struct header *h)
{
	return memcmp(h->magic, MAGIC, sizeof(h->magic)) == 0 &&
	    h->layout == LAYOUT && h->words == WORDS &&
	    h->shape == metrics_shape();
}

/* The words of fd: mapped shared to count into (the responders, guarded
 * against a truncation), or (copy) read into memory once, which a file
 * truncated under the reader cannot harm (crmauthctl stats). */
static int
words_get(struct metrics *m, int fd, int copy)
{
	struct stat	 sb;
	void		*p;

	if (fstat(fd, &sb) == -1)
		return -1;
	if (!S_ISREG(sb.st_mode) || sb.st_size != METRICS_FILE_SIZE) {
		errno = EPROTO;
		return -1;
	}
	if (copy) {
		if ((p = malloc(METRICS_FILE_SIZE)) == NULL)
			return -1;
		if (pread(fd, p, METRICS_FILE_SIZE, 0) != METRICS_FILE_SIZE) {
			free(p);
			errno = EPROTO;		/* shrunk meanwhile */
			return -1;
		}
	} else {
		p = mmap(NULL, METRICS_FILE_SIZE, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			return -1;
		/* Guarded from here: the header is read through the map. */
		sigbus_guard(p);
	}
	if (!header_ok(p) || metrics_lost_map(p)) {
		if (copy)
			free(p);
		else {
			sigbus_guard(NULL);
			munmap(p, METRICS_FILE_SIZE);
		}
		errno = EPROTO;
		return -1;
	}
	m->map = p;
	m->copy = copy;
	m->w = (uint64_t *)((char *)p + sizeof(struct header));
	m->created = ((struct header *)p)->created;
	m->dev = sb.st_dev;
	m->ino = sb.st_ino;
	return 0;
}

/* Make the file whole under another name, then link it into place:
 * whoever links first wins, and every process maps a complete file. */
static int
make_file(const char *path, mode_t mode, int64_t now)
{
	char		 tmp[1100], rnd[17];
	struct header	*h;
	char		*page;
	int		 fd, rc = -1;

	/* A name nobody else picks (pids repeat across containers). */
	sec_random_hex(rnd, 8);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%s.tmp", path, rnd) >=
	    sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((page = calloc(1, METRICS_FILE_SIZE)) == NULL)
		return -1;
	h = (struct header *)page;
	memcpy(h->magic, MAGIC, sizeof(h->magic));
	h->layout = LAYOUT;
	h->words = WORDS;
	h->created = now;
	h->shape = metrics_shape();
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    mode)) != -1) {
		fchmod(fd, mode);	/* what the umask took away */
		if (write(fd, page, METRICS_FILE_SIZE) == METRICS_FILE_SIZE &&
		    (link(tmp, path) == 0 || errno == EEXIST))
			rc = 0;
		close(fd);
		unlink(tmp);
	}
	free(page);
	return rc;
}

/* db_path/metrics; -1 if it does not fit. */
static int
file_path(char path[1100], const struct config *cfg)
{
	return (size_t)snprintf(path, 1100, "%s/%s", cfg->db_path,
	    METRICS_FILE) < 1100 ? 0 : -1;
}

int
metrics_open(struct metrics *m, const struct config *cfg, int mode,
    char *err, size_t errlen)
{
	char		 path[1100];
	struct stat	 sb;
	int		 fd, e, writable = mode == METRICS_COUNT;

	memset(m, 0, sizeof(*m));
	if (file_path(path, cfg) == -1) {
		snprintf(err, errlen, "%s/%s: name too long", cfg->db_path,
		    METRICS_FILE);
		return -1;
	}
	/* O_NONBLOCK: a FIFO put in its place does not hang the reader
	 * (words_get refuses anything but a regular file). */
	fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC |
	    O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1 && errno == ENOENT && writable) {
		/* Modes as the store's: 0660 in a directory shared with a
		 * group, else 0600. */
		mode_t perm = stat(cfg->db_path, &sb) == 0 &&
		    (sb.st_mode & 070) != 0 ? 0660 : 0600;

		if (make_file(path, perm, (int64_t)time(NULL)) == 0)
			fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW |
			    O_NONBLOCK);
	}
	if (fd == -1) {
		e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		errno = e;
		return -1;
	}
	if (words_get(m, fd, !writable) == -1) {
		e = errno;
		snprintf(err, errlen, "%s: %s", path, e == EPROTO ?
		    "not a metrics file of this version's layout (move it "
		    "away to start counting again)" : strerror(e));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
metrics_replaced(const struct metrics *m, const struct config *cfg)
{
	char		 path[1100];
	struct stat	 sb;

	return m->map == NULL || metrics_lost(m) ||
	    file_path(path, cfg) == -1 || lstat(path, &sb) == -1 ||
	    sb.st_size != METRICS_FILE_SIZE || sb.st_dev != m->dev ||
	    sb.st_ino != m->ino;
}

void
metrics_close(struct metrics *m)
{
	if (m->map != NULL && m->copy)
		free(m->map);
	else if (m->map != NULL) {
		if (m->map == counted_map)
			sigbus_guard(NULL);
		munmap(m->map, METRICS_FILE_SIZE);
	}
	memset(m, 0, sizeof(*m));
}

static void
add(struct metrics *m, size_t word, uint64_t v)
{
	if (m->w != NULL)
		__atomic_add_fetch(&m->w[word], v, __ATOMIC_RELAXED);
}

static size_t
method_of(int route)
{
	return route >= 0 && route < NROUTES ? (size_t)route : NROUTES;
}

void
metrics_request(struct metrics *m, int route, enum api_status s,
    uint64_t ns)
{
	size_t	 mi = method_of(route), b;

	if (m->w == NULL)
		return;
	add(m, W_REQ(mi, (size_t)s < API__MAX ? (size_t)s : API_INTERNAL_ERROR),
	    1);
	for (b = 0; b < NBOUNDS && ns > bounds_ns[b]; b++)
		continue;
	add(m, W_LAT(mi, b), 1);
	add(m, W_LATSUM(mi), ns);
}

void
metrics_event(struct metrics *m, int route, const char *event,
    const char *reason)
{
	size_t	 mi = method_of(route), r;

	if (m->w == NULL || event == NULL)
		return;
	if (strcmp(event, "token_issued") == 0)
		add(m, W_TOKENS(mi), 1);
	else if (strcmp(event, "auth_throttled") == 0)
		add(m, W_HOLDS(mi), 1);
	else if (strcmp(event, "token_released") == 0)
		add(m, W_RELEASES, 1);
	else if (strcmp(event, "auth_failed") == 0) {
		for (r = 0; r < NREASONS - 1; r++)
			if (reason != NULL && strcmp(reason, reasons[r]) == 0)
				break;
		add(m, W_FAIL(mi, r), 1);
	}
}

void
metrics_store_error(struct metrics *m, enum store_err e)
{
	add(m, W_STORE((size_t)e < NKINDS ? (size_t)e : STORE_ERROR), 1);
}

/* ---- reading ---------------------------------------------------------- */

static uint64_t
get(const struct metrics *m, size_t word)
{
	return m->w == NULL ? 0 :
	    __atomic_load_n(&m->w[word], __ATOMIC_RELAXED);
}

/* Only the methods that issue tokens (and so fail, and are held). */
static int
token_method(size_t mi)
{
	return mi < NROUTES && route_auth(mi);
}

static void
family(struct metrics_out *o, const char *name, const char *type,
    const char *help)
{
	o->family(o->arg, name, type, help);
}

/* A sample with n labels (name, value, name, value, ...); v nanoseconds
 * when ns, said in seconds. */
static void
sample(struct metrics_out *o, const char *name, int ns, uint64_t v,
    size_t n, ...)
{
	struct metrics_label	 l[METRICS_LABELS_MAX];
	va_list			 ap;
	size_t			 i;

	va_start(ap, n);
	for (i = 0; i < n && i < METRICS_LABELS_MAX; i++) {
		l[i].name = va_arg(ap, const char *);
		l[i].value = va_arg(ap, const char *);
	}
	va_end(ap);
	o->sample(o->arg, name, l, i, v, ns);
}

/* A counter family with one word per token method, from word base. */
static void
per_token_method(const struct metrics *m, struct metrics_out *o,
    const char *name, const char *help, size_t base)
{
	size_t	 mi;

	family(o, name, "counter", help);
	for (mi = 0; mi < NROUTES; mi++)
		if (token_method(mi))
			sample(o, name, 0, get(m, base + mi), 1,
			    "method", method_name(mi));
}

void
metrics_walk(const struct metrics *m, const struct metrics_gauges *g,
    struct metrics_out *o)
{
	char		 code[8];
	size_t		 mi, s, b, r;
	uint64_t	 cum;

	family(o, "crmauth_requests_total", "counter",
	    "Requests answered, by API method, HTTP status and envelope code.");
	for (mi = 0; mi < NM; mi++)
		for (s = 0; s < API__MAX; s++) {
			const struct api_code *c = api_code((enum api_status)s);

			snprintf(code, sizeof(code), "%d", c->http);
			sample(o, "crmauth_requests_total", 0,
			    get(m, W_REQ(mi, s)), 3, "method", method_name(mi),
			    "code", code, "status", c->code);
		}
	family(o, "crmauth_request_duration_seconds", "histogram",
	    "Time from a request's parameters to its answer, by API method.");
	for (mi = 0; mi < NM; mi++) {
		cum = 0;
		for (b = 0; b < NB; b++) {
			cum += get(m, W_LAT(mi, b));
			sample(o, "crmauth_request_duration_seconds_bucket", 0,
			    cum, 2, "method", method_name(mi), "le",
			    b < NBOUNDS ? bounds_text[b] : "+Inf");
		}
		sample(o, "crmauth_request_duration_seconds_sum", 1,
		    get(m, W_LATSUM(mi)), 1, "method", method_name(mi));
		sample(o, "crmauth_request_duration_seconds_count", 0, cum, 1,
		    "method", method_name(mi));
	}
	per_token_method(m, o, "crmauth_tokens_issued_total",
	    "Tokens issued, by API method.", W_TOKENS(0));
	family(o, "crmauth_auth_failures_total", "counter",
	    "Authentications refused, by API method and the event's reason.");
	for (mi = 0; mi < NROUTES; mi++)
		if (token_method(mi))
			for (r = 0; r < NREASONS; r++)
				sample(o, "crmauth_auth_failures_total", 0,
				    get(m, W_FAIL(mi, r)), 2, "method",
				    method_name(mi), "reason", reasons[r]);
	per_token_method(m, o, "crmauth_auth_holds_total",
	    "Authentications held (429) by the failed-attempt counters, by API "
	    "method.", W_HOLDS(0));
	family(o, "crmauth_token_releases_total", "counter",
	    "Tokens released.");
	sample(o, "crmauth_token_releases_total", 0, get(m, W_RELEASES), 0);
	family(o, "crmauth_token_checks_total", "counter",
	    "Token checks (authentication/token/check), by result.");
	mi = (size_t)route_index(route_find("authentication/token/check"));
	for (s = 0; s < API__MAX && mi < NROUTES; s++)
		sample(o, "crmauth_token_checks_total", 0,
		    get(m, W_REQ(mi, s)), 1, "result",
		    api_code((enum api_status)s)->code);
	family(o, "crmauth_store_errors_total", "counter",
	    "Requests the store failed, by kind of failure.");
	for (s = STORE_NOTINIT; s < NKINDS; s++)
		sample(o, "crmauth_store_errors_total", 0, get(m, W_STORE(s)),
		    1, "kind", store_kinds[s]);
	family(o, "crmauth_store_up", "gauge",
	    "1 when the store answered this scrape's read, else 0.");
	sample(o, "crmauth_store_up", 0, g->store_up ? 1 : 0, 0);
	if (g->store_up) {
		family(o, "crmauth_released_tokens", "gauge",
		    "Released token ids kept (until their exp).");
		sample(o, "crmauth_released_tokens", 0, (uint64_t)g->released,
		    0);
		family(o, "crmauth_signing_key_age_seconds", "gauge",
		    "Seconds since the current signing key was made.");
		sample(o, "crmauth_signing_key_age_seconds", 0,
		    g->key_age > 0 ? (uint64_t)g->key_age : 0, 0);
	}
	family(o, "crmauth_metrics_start_time_seconds", "gauge",
	    "Unix time this node began counting (the metrics file was made).");
	sample(o, "crmauth_metrics_start_time_seconds", 0,
	    m->created > 0 ? (uint64_t)m->created : 0, 0);
	family(o, "crmauth_build_info", "gauge",
	    "Always 1: the version and the store backend as labels.");
	sample(o, "crmauth_build_info", 0, 1, 2, "version", PACKAGE_VERSION,
	    "store", g->backend);
}

/* Counts exactly; sums of seconds to the nanosecond. */
void
metrics_number(char *buf, size_t size, uint64_t v, int ns)
{
	if (ns)
		snprintf(buf, size, "%" PRIu64 ".%09" PRIu64,
		    v / 1000000000u, v % 1000000000u);
	else
		snprintf(buf, size, "%" PRIu64, v);
}

/* ---- the Prometheus text format (0.0.4) ---------------------------- */

static void
prom_family(void *arg, const char *name, const char *type, const char *help)
{
	struct buf *b = arg;

	buf_fmt(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The labels' values are the program's own (route paths, codes,
 * reasons): nothing to escape. */
static void
prom_sample(void *arg, const char *name, const struct metrics_label *l,
    size_t n, uint64_t v, int ns)
{
	struct buf	*b = arg;
	char		 num[48];
	size_t		 i;

	metrics_number(num, sizeof(num), v, ns);
	buf_fmt(b, "%s", name);
	for (i = 0; i < n; i++)
		buf_fmt(b, "%c%s=\"%s\"", i == 0 ? '{' : ',', l[i].name,
		    l[i].value);
	buf_fmt(b, "%s %s\n", n > 0 ? "}" : "", num);
}

char *
metrics_text(const struct metrics *m, const struct metrics_gauges *g,
    size_t *len)
{
	struct buf		 b = { 0 };
	struct metrics_out	 o = { prom_family, prom_sample, &b };

	metrics_walk(m, g, &o);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

void
metrics_gauges_read(struct store *st, const struct config *cfg, int64_t now,
    struct metrics_gauges *g)
{
	struct store_stats	 s;

	memset(g, 0, sizeof(*g));
	g->backend = cfg->store;
	if (st == NULL || store_stats(st, &s) != STORE_OK)
		return;
	g->released = s.released;
	g->key_age = now > s.key_created ? now - s.key_created : 0;
	g->store_up = 1;
}
