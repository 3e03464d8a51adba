/*
 * crmauth: private interfaces shared by the responder, crmauthctl and
 * the unit tests.  One section per module; each function's contract is
 * next to its prototype.  Functions return 0 on success unless noted.
 */
#ifndef EXTERN_H
#define EXTERN_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct json_object;

/* Limits on everything we read (bytes, excluding the NUL). */
#define CRM_NAME_MAX	 256	/* organisation, user, unit, app, key, id */
#define CRM_SECRET_MAX	 1024	/* password, pass code, authentication code */
#define CRM_TOKEN_MAX	 4096	/* whole JWS, checked before any decoding */
#define CRM_AUTH_MAX	 (CRM_TOKEN_MAX + 64) /* Authorization header */
#define CRM_UNITS_MAX	 32	/* units per user or consumer key */
#define CRM_JSON_DEPTH	 8	/* nesting of request bodies */
#define CRM_JSON_MEMBERS 64	/* members of an object, elements of an array */
#define CRM_DRAIN_MAX	 (1 << 20) /* unread CGI body discarded, at most */
#define CRM_KEY_BYTES	 16	/* Web API / consumer keys: 32 hex chars */
#define CRM_KEY_HEX	 (CRM_KEY_BYTES * 2)
#define CRM_JTI_BYTES	 16	/* 128 random bits: 32 hex chars */
#define CRM_JTI_HEX	 (CRM_JTI_BYTES * 2)
#define CRM_SIGKEY_BYTES 32	/* HS256 secret: 256 random bits */
#define CRM_KID_BYTES	 8
#define CRM_KID_HEX	 (CRM_KID_BYTES * 2)
#define CRM_DIGEST_BYTES 32	/* SHA-256 */
#define CRM_ADDR_MAX	 64	/* REMOTE_ADDR kept for throttling */
#define CRM_PWHASH_MAX	 128	/* crypto_pwhash_STRBYTES */
#define CRM_ERR_MAX	 1400	/* an error line: fits a path and a reason */

/* ---- log.c ------------------------------------------------------------ */

/* Messages go to stderr, which every supported web server sends to its
 * error log.  Never pass a secret. */
void	 log_init(const char *progname);
void	 log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- audit.c: authentication events (README.md) ------------------------- */

enum audit_sink { AUDIT_OFF, AUDIT_SYSLOG, AUDIT_STDERR, AUDIT_FILE };

/* The longest line: 18 members of CRM_NAME_MAX bytes, each byte
 * escaped to at most six. */
#define AUDIT_LINE_MAX	 (18 * (6 * CRM_NAME_MAX + 32) + 64)

/* A process's sink.  The file is opened at the first event (after any
 * fork) and again whenever its path names another file (rotated). */
struct audit {
	enum audit_sink	 sink;
	char		 path[1024];	/* AUDIT_FILE */
	char		 syslog_path[108]; /* AUDIT_SYSLOG: _PATH_LOG */
	int		 fd;		/* the file or socket; -1 until open */
	dev_t		 dev;
	ino_t		 ino;
	time_t		 checked;	/* when the path was last looked up */
	int		 partial;	/* the last line was cut short */
	int		 failing;	/* a failure was logged; not again */
	time_t		 retry;		/* failing: not tried before (mono) */
	/* "" or a file whose age says a failure was logged by another
	 * process less than a minute ago (CGI: a process per request). */
	char		 marker[1024];
	/* audit_defer: lines made, written by audit_flush (after the
	 * answer has gone out: the client does not wait for them). */
	int		 defer;
	size_t		 pending_len;
	char		 pending[AUDIT_LINE_MAX + 2];
};

/*
 * One event.  Members left NULL are left out; the others are written
 * in this order, each cut to CRM_NAME_MAX bytes and JSON-escaped.
 * Never put a secret here: a password, pass code, key, authentication
 * code, signing secret or whole token (a key by its public id only).
 */
struct audit_event {
	const char	*event;		/* token_issued, auth_failed, ... */
	const char	*method;	/* the PATH_INFO of an API method */
	const char	*command;	/* admin: the crmauthctl command */
	const char	*org, *usr, *unit, *identifier;
	const char	*jti, *kid, *key_id;
	const char	*client;	/* REMOTE_ADDR */
	const char	*request_id;	/* the web server's id of the request */
	const char	*address;	/* admin: an address a lock is for */
	const char	*file;		/* admin: backup, restore, export... */
	const char	*reason;	/* auth_failed: for the operator */
	/* admin: who ran it: the user, the user logged in as (the audit
	 * login uid, which sudo and su keep), sudo's SUDO_USER. */
	const char	*unix_user, *login_user, *sudo_user;
};


/* "syslog", "stderr", "off" or an absolute path: 0, else -1. */
int	 audit_sink_parse(const char *, enum audit_sink *);
/* From the audit_log setting; no I/O until the first event. */
void	 audit_init(struct audit *, const char *setting);
/* Failures logged at most once a minute across processes, through the
 * age of the file marker (made 0600; for CGI). */
void	 audit_marker(struct audit *, const char *marker);
void	 audit_close(struct audit *);
/*
 * Rotate the events file path as logrotate would, without root: path.N
 * goes to path.N+1, path.KEEP (and any older one) is removed, path
 * becomes path.1.  Writers
 * follow: a FastCGI responder opens the new path within a second, a CGI
 * process at its request.  1 rotated, 0 nothing to rotate (no file), -1
 * with err.
 */
int	 audit_rotate(const char *path, int keep, char *err, size_t errlen);
/* Write one event; never fails the caller (a sink that cannot be
 * written costs one line on stderr until it works again).  a may be
 * NULL (no events). */
void	 audit_emit(struct audit *a, const struct audit_event *);
/* From now on, audit_emit only makes the line (its time is the
 * event's); audit_flush writes what was made since. */
void	 audit_defer(struct audit *);
void	 audit_flush(struct audit *);
/* The line for ev at ts, "\n" and NUL included in size; its length. */
size_t	 audit_format(char *buf, size_t size, const struct audit_event *,
	    const struct timespec *);

/* ---- config.c ---------------------------------------------------------- */

#define CRM_CIDR_MAX	 16	/* networks in metrics_allow */

struct config {
	char		 path[1024];	/* the file read */
	char		 store[16];	/* "lmdb" or "postgresql" */
	char		 pg_conninfo[1024];	/* libpq's, when postgresql */
	char		 audit_log[1024];	/* syslog, stderr, off or a path */
	char		 db_path[1024];
	uint64_t	 db_map_size_mb;
	uint64_t	 db_map_max_mb;
	int64_t		 token_ttl;
	size_t		 max_body;
	unsigned	 lockout_threshold;
	unsigned	 lockout_account_threshold;
	int64_t		 lockout_window;
	int64_t		 lockout_trust_days;
	uint32_t	 argon2_memory_kib;
	uint32_t	 argon2_iterations;
	uint32_t	 argon2_parallelism;
	char		 metrics[8];	/* "on" or "off" */
	char		 metrics_allow[1024];	/* as written */
	/* metrics_allow parsed: who may GET metrics. */
	struct cidr {
		uint8_t	 family;	/* 4 or 6 */
		uint8_t	 bits;
		uint8_t	 addr[16];
	}		 metrics_nets[CRM_CIDR_MAX];
	size_t		 metrics_nnets;
	/* Not from the file: crmauthctl init --group sets it. */
	long		 db_group;	/* -1, or the group to share with */
	/* Not from the file: the failed-attempt records kept at most (0:
	 * the built-in cap; the tests make it small). */
	size_t		 att_max_records;
};

#define CRM_DEFAULT_CONF CRMAUTH_SYSCONFDIR "/crmauth.conf"
#define CRM_DEFAULT_METRICS_ALLOW "127.0.0.0/8 ::1/128"
#ifdef CRMAUTH_SHARED_HOSTING
/* Everything beside the configuration, in the customer's home. */
#define CRM_HOME_CONF	 "crmauth/crmauth.conf"
#define CRM_DEFAULT_DB	 "./db"
#define CRM_DEFAULT_AUDIT "./events.log"
#else
#define CRM_DEFAULT_DB	 CRMAUTH_LOCALSTATEDIR "/lib/crmauth"
#define CRM_DEFAULT_AUDIT "syslog"
#endif

void	 config_defaults(struct config *);

/*
 * Find and read the configuration over the defaults in *cfg: the file
 * arg if not NULL (-c), else $CRMAUTH_CONF if set and not empty, else
 * config_place(): $(sysconfdir)/crmauth.conf, or in the shared-hosting
 * build ~/crmauth/crmauth.conf, ~ being the home directory of the user
 * the program runs as (its real uid, passwd.c), not $HOME, which suEXEC
 * does not pass.  A missing file is an error wherever it was looked
 * for: err says "no configuration: " and the places tried.  0 or -1.
 */
int	 config_find(struct config *cfg, const char *arg, char *err,
	    size_t errlen);
/* Parse a list of networks ("ADDR/BITS" or "ADDR", IPv4 or IPv6,
 * separated by spaces or commas; "none": no network) into nets (at most
 * CRM_CIDR_MAX): their number, or -1 with why set. */
int	 cidr_parse(const char *list, struct cidr *nets, size_t *n,
	    const char **why);
/* Whether addr (text, as REMOTE_ADDR; IPv4-mapped IPv6 counts as IPv4)
 * is in one of nets. */
int	 cidr_match(const struct cidr *nets, size_t n, const char *addr);
/* Where this build looks when neither -c nor $CRMAUTH_CONF says. */
const char *config_place(void);

/*
 * Read FILE over the defaults already in *cfg.  Any problem, a missing
 * file too, fills err with "FILE:LINE: problem" (or "FILE: problem") and
 * returns -1.  Relative paths in it (db_path; audit_log as ./FILE) are
 * made relative to FILE's directory.
 */
int	 config_load(struct config *cfg, const char *file, char *err,
	    size_t errlen);

/*
 * Bounded integer parsing in the manner of strtonum(3): the whole string
 * must be a decimal number within [min, max].  Returns 0 or -1 with
 * *why set to a static text.
 */
int	 parse_int(const char *s, long long min, long long max,
	    long long *out, const char **why);

/* ---- file.c ------------------------------------------------------------ */

/*
 * Open path for reading (flags: more O_ flags, e.g. O_NOFOLLOW) without
 * waiting, and keep it only if it is a regular file: a FIFO or a device
 * is refused at once rather than waited on.  The descriptor (blocking
 * reads), or -1 with "PATH: problem" in err.
 */
int	 open_regular(const char *path, int flags, char *err, size_t errlen);
/* A failure said once a minute across processes (CGI: one per request):
 * 1 when the marker file was touched less than a minute ago (stay
 * silent); else touch it (made 0600) and 0 (say it). */
int	 marker_fresh(const char *marker);

/* ---- passwd.c ---------------------------------------------------------- */

/* The name of uid, or its number when it has none; buf (len) holds it. */
const char *pw_user_name(uid_t uid, char *buf, size_t len);
/* uid's home directory into buf (len); -1 with one line in err. */
int	 pw_home(uid_t uid, char *buf, size_t len, char *err,
	    size_t errlen);
/* The id of the group called name; -1 when there is none. */
int	 pw_group_id(const char *name, gid_t *out);

/* ---- buf.c ------------------------------------------------------------- */

/* A fixed buffer the caller owns: p[0..max).  fbuf_add() appends, or on
 * overflow writes nothing more and sets full, which the caller checks
 * once at the end. */
struct fbuf {
	char	*p;
	size_t	 len, max;
	int	 full;
};
void	 fbuf_add(struct fbuf *, const void *, size_t);
/* A buffer that grows (malloc'd p, NUL-terminated); on allocation
 * failure (or a buf_fmt past 512 bytes) it stops and sets failed, which
 * the caller checks once at the end, then frees p. */
struct buf {
	char	*p;
	size_t	 len, cap;
	int	 failed;
};
void	 buf_add(struct buf *, const char *, size_t);
void	 buf_str(struct buf *, const char *);
void	 buf_fmt(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/* A JSON string literal (RFC 8259 §7). */
void	 buf_json_str(struct buf *, const char *);
/* t as "YYYY-MM-DDTHH:MM:SS" (UTC, RFC 3339 without the zone) in buf;
 * snprintf's result. */
int	 fmt_utc(char *buf, size_t size, int64_t t);

/* ---- crypto.c ---------------------------------------------------------- */

/* Must be called once before anything else here (sodium_init). */
int	 sec_init(void);
/* Fill buf with n random bytes and write them as upper-case hex to hex
 * (2n+1 bytes). */
void	 sec_random_hex(char *hex, size_t n);
void	 sec_random(void *buf, size_t n);
void	 sec_sha256(unsigned char out[CRM_DIGEST_BYTES],
	    const void *in, size_t len);
/* SHA-256 of tag, a (at most CRM_NAME_MAX bytes), NUL, b (blen bytes, at
 * most CRM_NAME_MAX): the keys of composite records and of throttling. */
void	 sec_tagged_hash(unsigned char out[CRM_DIGEST_BYTES], char tag,
	    const char *a, const void *b, size_t blen);
/* HMAC-SHA-256 of in under a key of CRM_DIGEST_BYTES bytes. */
void	 sec_hmac_sha256(unsigned char out[CRM_DIGEST_BYTES],
	    const unsigned char key[CRM_DIGEST_BYTES], const void *in,
	    size_t len);
/* Upper-case hex of a byte string; hex must hold 2n+1 bytes. */
void	 sec_hex(char *hex, const unsigned char *in, size_t n);
/* A key's public id: the first CRM_KEY_ID_HEX hex digits of its
 * SHA-256 digest, as the list commands and events show it. */
#define CRM_KEY_ID_HEX	 16
void	 sec_key_id(char id[CRM_KEY_ID_HEX + 1],
	    const unsigned char digest[CRM_DIGEST_BYTES]);
/* Strict hex decoding of exactly 2n characters (either case). */
int	 sec_unhex(unsigned char *out, size_t n, const char *hex,
	    size_t hexlen);
/* argon2id PHC string of pw at the configured cost. */
int	 sec_pwhash(char out[CRM_PWHASH_MAX], const char *pw, size_t len,
	    const struct config *);
/*
 * The bounds of an argon2id cost, for the configuration, imports and
 * every verify: memory 8 KiB to 1 GiB, 1 to 64 passes, 1 to 16 lanes,
 * and memory times passes (the work: libsodium makes hashes of one lane
 * and verifies others with one thread) at most 4 GiB: 1 GiB and 4
 * passes, or 256 MiB and 16.  At the top a verify takes about three
 * seconds here, a hundred times the default cost: room for any real
 * set-up, and not a lever that makes each wrong password of an imported
 * account hold a responder for a minute.
 */
#define CRM_ARGON2_MEM_MIN_KIB	8
#define CRM_ARGON2_MEM_MAX_KIB	1048576
#define CRM_ARGON2_T_MAX	64
#define CRM_ARGON2_P_MAX	16
#define CRM_ARGON2_WORK_MAX	4194304	/* KiB times passes */
/* The cost of an argon2id PHC string: 0 within the bounds, 1 past them,
 * -1 when it is no argon2id string. */
int	 sec_pwcost(const char *phc, uint32_t *m, uint32_t *t, uint32_t *p);
/* 0 when pw matches the PHC string, -1 otherwise (also on bad strings,
 * and on costs past the bounds, which are not computed). */
int	 sec_pwverify(const char *phc, const char *pw, size_t len);
/* 1 when a PHC string is not argon2id at the configured cost. */
int	 sec_pwstale(const char *phc, const struct config *);
/*
 * A PHC string at the configured cost that no password matches: verifying
 * against it costs what a real verify costs, for unknown accounts.
 */
void	 sec_dummy_hash(char out[CRM_PWHASH_MAX], const struct config *);
/*
 * Authenticated encryption (XChaCha20-Poly1305) of len bytes under key,
 * bound to ad: out gets CRM_SEAL_OVERHEAD + len bytes (a random nonce,
 * then the ciphertext and tag).  unseal: -1 when in was not sealed so.
 */
#define CRM_SEAL_KEY		32
#define CRM_SEAL_OVERHEAD	(24 + 16)
int	 sec_seal(unsigned char *out, const unsigned char *in, size_t len,
	    const unsigned char key[CRM_SEAL_KEY], const char *ad);
int	 sec_unseal(unsigned char *out, const unsigned char *in, size_t len,
	    const unsigned char key[CRM_SEAL_KEY], const char *ad);
/* HMAC-SHA-256. */
void	 sec_hmac256(unsigned char out[32], const unsigned char *key,
	    size_t keylen, const void *in, size_t len);
/* Constant-time equality of two n-byte buffers: 1 equal, 0 not. */
int	 sec_equal(const void *a, const void *b, size_t n);
/* base64url without padding (RFC 7515 §2).  encode: out needs
 * b64url_len(n) bytes.  decode: strict; returns -1 on any bad input or
 * when the result would exceed outmax. */
size_t	 b64url_len(size_t n);
void	 b64url_encode(char *out, const unsigned char *in, size_t n);
int	 b64url_decode(unsigned char *out, size_t outmax, size_t *outlen,
	    const char *in, size_t inlen);
/* The same for public data only, with tables and not in constant time;
 * encode returns the end of what it wrote (no NUL). */
char	*b64url_encode_public(char *out, const unsigned char *in, size_t n);
int	 b64url_decode_public(unsigned char *out, size_t outmax,
	    size_t *outlen, const char *in, size_t inlen);
/* Standard base64 with padding (RFC 4648 §4), for HTTP Basic. */
int	 b64_decode(unsigned char *out, size_t outmax, size_t *outlen,
	    const char *in, size_t inlen);
/* Strict UTF-8 (RFC 3629 §4: no overlong forms, no surrogates, nothing
 * past U+10FFFF): the length of the sequence at p, or 0; a whole
 * string: 1 well-formed, 0 not. */
size_t	 utf8_len(const unsigned char *p, size_t left);
int	 utf8_valid(const char *);

/* ---- store.h: the store's interface, its backends' contract ----------- */

#include "store.h"

/* ---- token.c ----------------------------------------------------------- */

enum tok_err {
	TOK_OK = 0,
	TOK_MALFORMED,		/* not a compact JWS we could read */
	TOK_BADALG,		/* alg other than HS256, or crit */
	TOK_UNKNOWN_KID,	/* no signing key with that kid */
	TOK_BADSIG,		/* HMAC does not match */
	TOK_BADCLAIMS,		/* signed by us but claims not ours */
	TOK_EXPIRED,		/* authentic, past exp */
	TOK_RELEASED,		/* authentic, released */
	TOK_REVOKED,		/* authentic, its principal cut off since */
	TOK_STORE,		/* store failure while checking */
	TOK_INTERNAL,		/* allocation or library failure */
};
const char *tok_strerror(enum tok_err);

/* What a token says.  The strings point into the struct itself (or its
 * obj): they live until tok_claims_free(), and a copy of the struct
 * would still point into the original. */
struct claims {
	/* The payload as JSON, for the check answer and crmauthctl. */
	const char	*json;
	const char	*jti, *usr, *org, *oun, *cii, *ari;
	unsigned char	 jti_bin[CRM_JTI_BYTES];
	int64_t		 iat, exp;
	/* Where the above point: our own spelling is read in place (the
	 * payload, and its strings copied NUL-terminated), any other by
	 * json-c (obj). */
	char		 payload[CRM_TOKEN_MAX / 4 * 3 + 1];
	char		 strings[CRM_TOKEN_MAX / 4 * 3 + 1];
	struct json_object *obj;
};
/* Empty claims, safe to free; free: drop what a verification made. */
void	 tok_claims_init(struct claims *);
void	 tok_claims_free(struct claims *);

/* What to put in a new token. cii and ari may be NULL. */
struct tok_subject {
	const char	*usr, *org, *oun, *cii, *ari;
};

/* Sign a new token with key and a fresh jti (written to jti, for the
 * event); *out is malloc'd (free it).  TOK_INTERNAL for a subject that
 * is not UTF-8 or a token that would not fit CRM_TOKEN_MAX. */
enum tok_err tok_issue(const struct sigkey *key,
	    const struct tok_subject *, int64_t now, int64_t ttl, char **out,
	    char jti[CRM_JTI_HEX + 1]);
/* The same with a given jti (CRM_JTI_HEX characters): for the tests. */
enum tok_err tok_encode(const struct sigkey *key,
	    const struct tok_subject *, const char *jti, int64_t now,
	    int64_t ttl, char **out);

/* Finds the signing key for a kid: 0 found, 1 unknown, -1 failure. */
typedef int (*tok_keyfn)(void *, const char *kid, struct sigkey *);

/*
 * Check a compact JWS without trusting anything in it first: length
 * limit, three base64url parts, header alg exactly "HS256" with no crit,
 * a known kid whose key has not expired at now, the HMAC compared in
 * constant time, then the claims with their JSON types and exp - iat at
 * most ttl.  Does not look at exp or the store's revocations.  On any
 * result other than TOK_OK, *c is freed.
 */
enum tok_err tok_verify(const char *token, size_t len, tok_keyfn, void *,
	    int64_t now, int64_t ttl, struct claims *);

/*
 * tok_verify against the store, in one read, plus exp, the released
 * table and the principal (TOK_REVOKED: the user was disabled, deleted
 * or logged out, or a key of the user or application revoked, since the
 * token was issued).  *c is filled for TOK_OK, TOK_EXPIRED,
 * TOK_RELEASED and TOK_REVOKED (free it), freed otherwise.
 */
enum tok_err tok_check(struct store *, const char *token, size_t len,
	    int64_t now, int64_t ttl, struct claims *);
/* The key lookup for tok_verify from a store. */
int	 tok_store_key(void *store, const char *kid, struct sigkey *);

/* ---- http.c: API status table, request view, response ---------------- */

enum api_status {
	API_OK = 0,
	API_INVALID_REQUEST,
	API_INVALID_CREDENTIALS,
	API_INVALID_TOKEN,
	API_TOKEN_EXPIRED,
	API_TOKEN_RELEASED,
	API_INVALID_UNIT,
	API_NOT_FOUND,
	API_METHOD_NOT_ALLOWED,
	API_PAYLOAD_TOO_LARGE,
	API_UNSUPPORTED_MEDIA_TYPE,
	API_TOO_MANY_ATTEMPTS,
	API_INTERNAL_ERROR,
	API_SERVICE_UNAVAILABLE,
	API__MAX
};

struct api_code {
	int		 http;		/* status code */
	const char	*reason;	/* status line reason phrase */
	const char	*code;		/* status.code */
	const char	*description;	/* status.description */
	const char	*message;	/* default status.message */
};
const struct api_code *api_code(enum api_status);

enum http_method {
	HTTP_OTHER = 0,
	HTTP_GET = 1 << 0,
	HTTP_POST = 1 << 1,
	HTTP_HEAD = 1 << 2,
};

/* How the program reaches the web server: FastCGI or plain CGI. */
struct http_io {
	void		*ctx;
	const char	*(*param)(void *ctx, const char *name);
	/* Read up to n bytes; 0 at end of input, -1 on error. */
	ssize_t		 (*read)(void *ctx, void *buf, size_t n);
	int		 (*write)(void *ctx, const void *buf, size_t n);
	/* CGI: read and discard a body left unread before answering (up to
	 * CRM_DRAIN_MAX), since Apache's mod_cgi/mod_cgid cut the answer
	 * off when the program exits while they still write the body. */
	int		 drain;
};

/* The request as the methods see it: parsed and checked. */
struct request {
	enum http_method method;
	char		 path[CRM_NAME_MAX + 1];	/* PATH_INFO, no trailing / */
	const char	*authorization;			/* may be NULL */
	const char	*remote_addr;			/* may be "" */
	struct json_object *body;	/* JSON object, or NULL if no body */
};

/* What a method answers; turned into the envelope by http_respond(). */
struct result {
	enum api_status	 status;
	char		 message[256];	/* "" means the code's default */
	char		*data;		/* JSON text of data (malloc'd) or NULL */
	const char	*www_authenticate;
	const char	*allow;
	unsigned	 retry_after;	/* seconds, 0 = none */
	int		 audited;	/* the method wrote its event */
	/* A body other than the envelope (metrics), malloc'd, sent with
	 * its own Content-Type when status is API_OK. */
	char		*raw;
	size_t		 rawlen;
	const char	*raw_type;
};

void	 result_init(struct result *);
void	 result_free(struct result *);
/* Set status and a printf-style message; returns -1 for chaining. */
int	 result_error(struct result *, enum api_status, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* Write the whole response (status, headers, envelope) in one write. */
int	 http_respond(const struct http_io *, const struct result *);
/* The envelope alone, malloc'd; *len set.  NULL on allocation failure. */
char	*http_envelope(const struct result *, size_t *len);

/* Request checks, in the order the server applies them. */
enum http_method http_method_parse(const char *);
/* PATH_INFO: copy without one trailing slash; -1 if too long or empty. */
int	 http_path_parse(char *out, size_t outsz, const char *path_info);
/* CONTENT_LENGTH: NULL or "" is 0.  API_OK, API_INVALID_REQUEST or
 * API_PAYLOAD_TOO_LARGE. */
enum api_status http_content_length(const char *, size_t max, size_t *out);
/* CONTENT_TYPE must be application/json, optionally charset=utf-8. */
int	 http_content_type_ok(const char *);
/* Read exactly len bytes of body.  -1 if the input ends early. */
int	 http_read_body(const struct http_io *, char *buf, size_t len);
/* Parse a body as a JSON object (strict, UTF-8, depth-limited, nothing
 * after it).  NULL with res set to 400 when it is not one. */
struct json_object *http_parse_json(const char *buf, size_t len,
	    struct result *res);

/*
 * Fetch a string member.  0 and *out (borrowed from obj) when present;
 * 1 when absent or null and not mandatory; -1 with res set to 400 naming
 * the field (as where.field) when wrong type, empty, too long, holding
 * NUL, or absent but mandatory.
 */
#define FIELD_MANDATORY	0x1	/* absent is a 400 */
#define FIELD_EMPTY_OK	0x2	/* "" is a value (secrets: a failed login) */
int	 json_field_string(struct json_object *obj, const char *where,
	    const char *field, int flags, size_t maxlen, const char **out,
	    struct result *res);

/*
 * HTTP Basic (RFC 7617) carrying a key as the user name and an empty
 * password.  0 with key copied to out; -1 with res set to 401
 * INVALID_CREDENTIALS and WWW-Authenticate when missing or malformed.
 */
int	 http_basic_key(const char *authorization, char *out, size_t outsz,
	    struct result *res);

/*
 * A Bearer token in Authorization (RFC 6750 §2.1): 1 with *tok and *len
 * set (tok points into authz); 0 when there is no Authorization header
 * or it is of another scheme; -1 when it is Bearer but malformed.
 */
int	 http_bearer(const char *authz, const char **tok, size_t *len);

/* ---- route.c, methods ---------------------------------------------------- */

/* Everything a method may use. */
/* A verdict on a request's DOCUMENT_ROOT and CONTEXT_DOCUMENT_ROOT ("" when
 * unset): whether they hold one of our files, found at when (webroot.c). */
#define WEBROOT_SLOTS	8
struct webroot_slot {
	char		 root[2][512];
	int		 bad;
	int64_t		 when;		/* 0: empty */
};

/* ---- metrics.c ------------------------------------------------------------ */

/* The node's figures, in db_path; its size is fixed.  A later layout
 * takes another name (metrics.2, ...), so that the responders of two
 * versions never fight over one file during an upgrade. */
#define METRICS_FILE	  "metrics"
#define METRICS_FILE_SIZE 8192

struct metrics {
	void		*map;
	int		 copy;		/* map is malloc'd (METRICS_COPY) */
	uint64_t	*w;		/* the counters; NULL: not counting */
	int64_t		 created;	/* when the node began counting */
	dev_t		 dev;		/* the file mapped */
	ino_t		 ino;
};

/* metrics_open() modes: map the file to count (made if missing, modes
 * as the store's), or take a copy of it to read (crmauthctl stats). */
#define METRICS_COUNT	1
#define METRICS_COPY	2
/* 0, or -1 with "PATH: problem" in err (errno ENOENT: there is none
 * yet); m then counts nothing. */
int	 metrics_open(struct metrics *, const struct config *, int mode,
	    char *err, size_t errlen);
void	 metrics_close(struct metrics *);
/* Whether db_path/metrics is no longer the file m maps (removed,
 * replaced, truncated), or m maps none. */
int	 metrics_replaced(const struct metrics *, const struct config *);
/* Whether the file m maps was truncated under it (SIGBUS caught): what
 * m counts since is not the node's; close it (http_serve does). */
int	 metrics_lost(const struct metrics *);
/* The fingerprint of the series' layout (methods, codes, buckets,
 * reasons, kinds), kept in the file's header. */
uint64_t metrics_shape(void);
/* One request answered: its route (route_index; -1 for none), its
 * status and how long it took. */
void	 metrics_request(struct metrics *, int route, enum api_status,
	    uint64_t ns);
/* An authentication event of a request on route. */
void	 metrics_event(struct metrics *, int route, const char *event,
	    const char *reason);
void	 metrics_store_error(struct metrics *, enum store_err);

/* What a scrape reads from the store itself. */
struct metrics_gauges {
	int		 store_up;
	size_t		 released;
	int64_t		 key_age;
	const char	*backend;	/* "lmdb" or "postgresql" */
};
/* Every series in order, to family() once per family and sample() per
 * series, with its labels (at most METRICS_LABELS_MAX). */
#define METRICS_LABELS_MAX 3
struct metrics_label {
	const char	*name, *value;
};
struct metrics_out {
	void	(*family)(void *, const char *name, const char *type,
		    const char *help);
	void	(*sample)(void *, const char *name,
		    const struct metrics_label *, size_t,
		    uint64_t, int ns);	/* ns: v is nanoseconds, say seconds */
	void	*arg;
};
/* A sample's value as text: a count, or (ns) nanoseconds in seconds. */
void	 metrics_number(char *, size_t, uint64_t, int ns);
void	 metrics_walk(const struct metrics *, const struct metrics_gauges *,
	    struct metrics_out *);
/* The Prometheus text format (0.0.4), malloc'd; NULL when out of memory. */
char	*metrics_text(const struct metrics *, const struct metrics_gauges *,
	    size_t *len);
/* The gauges, read from the store now (NULL: a store not open). */
void	 metrics_gauges_read(struct store *, const struct config *,
	    int64_t now, struct metrics_gauges *);

/* ---- stats.c (crmauthctl) ------------------------------------------------ */

/* m and g for a terminal (json 0) or as JSON; -1 out of memory. */
int	 stats_print(FILE *, const struct metrics *,
	    const struct metrics_gauges *, int json);

struct app {
	struct config	 cfg;
	struct store	*store;		/* NULL until opened */
	int		 conf_ok;	/* 0: config failed; answer 503 */
	int64_t		 store_logged;	/* when a failed open was last logged */
	char		 dummy_hash[CRM_PWHASH_MAX];
	int64_t		 (*now)(void);	/* time source */
	struct audit	 audit;		/* where events go */
	/* Verdicts on request roots, and when one holding our files was
	 * last logged (webroot.c). */
	struct webroot_slot webroots[WEBROOT_SLOTS];
	int64_t		 webroot_logged;
	/* metrics = on: the node's counters, mapped at the first request
	 * and again at a scrape that finds the file replaced, or a minute
	 * after a failure (met_tried: when last tried), and the route of
	 * the request in hand. */
	struct metrics	 met;
	int64_t		 met_tried;
	int64_t		 met_logged;	/* FastCGI: when last said it failed */
	int		 met_route;
	int		 cgi;		/* one request per process */
	/* The web server's id of the request in hand, if it gave one that
	 * request_id_ok() accepts; every event of the request carries it. */
	const char	*request_id;
};

/*
 * 0 when neither the configuration, the store nor the events file lies
 * under docroot or ctxroot (a request's DOCUMENT_ROOT and
 * CONTEXT_DOCUMENT_ROOT; NULL or relative: not set); else -1, and the
 * one that does is logged (at most once a minute).
 */
int	 webroot_check(struct app *, const char *docroot,
	    const char *ctxroot);

/* 0 when the configuration was read and none of our files is under
 * the request's web root; else -1 with res set to 503 (for this request
 * only, when it is the web root). */
struct http_io;
int	 app_ready(struct app *, const struct http_io *, struct result *);

/* Open the store if it is not open yet.  On failure: NULL, res set to
 * 503 with Retry-After, and the cause logged (at most once a minute). */
struct store *app_store(struct app *, struct result *);
/* The same, without an answer: STORE_OK and app->store open, or why not
 * (logged as above; not counted as a request the store failed). */
enum store_err app_store_try(struct app *);
/* Why the open store failed a token's check (store->checked);
 * STORE_ERROR when it cannot tell. */
enum store_err app_store_why(struct app *);

typedef void (*method_fn)(struct app *, const struct request *,
	    struct result *);

enum body_rule { BODY_NONE, BODY_OPTIONAL, BODY_REQUIRED };

struct route {
	const char	*path;		/* PATH_INFO without trailing slash */
	unsigned	 methods;	/* enum http_method bits */
	const char	*allow;		/* Allow: header for 405 */
	enum body_rule	 body;
	method_fn	 fn;
	/* An authentication method: a request refused before its secret
	 * is looked at is still an auth_failed event. */
	int		 auth;
};

/* NULL when nothing is mounted at path. */
const struct route *route_find(const char *path);
/* The routes by number, 0 to NROUTES - 1 (metrics label them so). */
#define NROUTES 7
int	 route_index(const struct route *);	/* -1 for NULL */
const char *route_path(size_t);
int	 route_auth(size_t);

/* Serve one request from io end to end; never fails the process. */
void	 http_serve(struct app *, const struct http_io *);

void	 m_token(struct app *, const struct request *, struct result *);
void	 m_metrics(struct app *, const struct request *, struct result *);
/* Whether a request may GET metrics: metrics = on, its address in
 * metrics_allow, and not passed on by a proxy (proxied: it carries
 * X-Forwarded-For, Forwarded or Via), whose address REMOTE_ADDR is. */
int	 metrics_allowed(const struct app *, const char *addr, int proxied);
/* A request id as web servers make them (Apache's UNIQUE_ID, nginx's
 * $request_id, a UUID): 1 to 128 of A-Z a-z 0-9 and . _ : @ + / = -. */
int	 request_id_ok(const char *);
/* Map the node's figures if not yet (or again, see struct app). */
void	 metrics_start(struct app *);
void	 m_web_api_key_token(struct app *, const struct request *,
	    struct result *);
void	 m_consumer_token(struct app *, const struct request *,
	    struct result *);
void	 m_release(struct app *, const struct request *, struct result *);
void	 m_check(struct app *, const struct request *, struct result *);
void	 m_health(struct app *, const struct request *, struct result *);

/*
 * The token check shared by authentication/token/check and the FastCGI
 * authorizer role: authz is the Authorization header (may be NULL),
 * body_token a token from the body (NULL if none).  0 with res left for
 * the caller to fill and *c holding the claims (tok_claims_free them);
 * -1 with res set to the refusal (401 with WWW-Authenticate, 400, 503).
 */
int	 token_check(struct app *, const char *authz, const char *body_token,
	    struct result *res, struct claims *c);

/* Answer one FastCGI AUTHORIZER request: 200 with the claims as
 * Variable-CRMAUTH_* headers, or the refusal with its envelope. */
void	 http_authorize(struct app *, const struct http_io *);

/* Write ev for the request being answered (event, reason), once. */
void	 app_event(struct app *, struct result *, struct audit_event *ev,
	    const char *event, const char *reason);

/* ---- throttle.c ------------------------------------------------------------ */

/* What a secret protects (see throttle.c for the accounts). */
enum att_kind {
	ATT_USER = 'U',		/* org, user: a password */
	ATT_APIKEY = 'K',	/* name: the Web API key's id */
	ATT_CONSUMER = 'C',	/* name: an unknown or revoked consumer key's id */
	ATT_IDENT = 'I',	/* org, identifier: a pass code */
	ATT_CODE = 'O',		/* name: the consumer key's id, per address */
};

/* One attempt at a secret.  The method fills kind, org (NULL for keys),
 * name and addr (REMOTE_ADDR); the rest is throttle.c's. */
struct attempt {
	enum att_kind	 kind;
	const char	*org, *name, *addr;
	struct att_reserve r;
	char		 subjects[ATT_COUNTERS][ATT_SUBJECT_MAX + 1];
	enum {
		ATT_NONE,	/* nothing yet */
		ATT_PREPARED,	/* counters made: counted after the check */
		ATT_RESERVED,	/* counted before the check */
		ATT_DECIDED,	/* nothing more to do */
	}		 state;
};

enum att_outcome {
	ATT_FAILED,	/* the secret was wrong: stays counted */
	ATT_SUCCEEDED,	/* given back; the address trusted for the account */
	ATT_UNUSED,	/* not checked after all (a store error): given back */
};

/* Each returns 0 to go on, or -1 with res 429 and Retry-After (held), or
 * 503 (the counters cannot be read or written: no guessing then). */
/* Count the attempt before its secret is checked (a password, a pass
 * code). */
int	 throttle_begin(struct app *, struct attempt *, struct result *);
/* The attempt's counters, to be read with the secret's record
 * (store_lookup_apikey; then throttle_held), or decided with it (decide:
 * store_lookup_consumer with a code; then throttle_decided). */
struct att_reserve *throttle_counters(struct app *, struct attempt *,
	    int decide);
int	 throttle_held(struct app *, struct attempt *, struct result *);
int	 throttle_decided(struct app *, struct attempt *, struct result *);
/* The secret was checked (ok): decide, holding the counters, whether
 * it may be answered, counting it if it failed (store_attempt_decide). */
int	 throttle_decide(struct app *, struct attempt *, int ok,
	    struct result *);
/* After the check: a reserved attempt given back unless it failed; one
 * not counted yet counted if it failed (-1 when held meanwhile), its
 * success settled.  A store failure after a success is only logged. */
int	 throttle_end(struct app *, struct attempt *, enum att_outcome,
	    struct result *);
/* REMOTE_ADDR as counted: IPv6 by its /64. */
void	 throttle_address(char out[CRM_ADDR_MAX + 1], const char *addr);
/* The key of a counter: type 'P' pair, 'A' account, 'N' address, 'T'
 * trust; addr NULL for 'A', account NULL for 'N'.  Returns its length. */
size_t	 throttle_key(unsigned char key[ATT_KEY_MAX], char type,
	    enum att_kind, const char *org, const char *name,
	    const char *addr);

/* Map a store failure to 503/500 in res (and log the detail). */
void	 result_store_error(struct result *, struct app *, enum store_err);

#endif /* EXTERN_H */
