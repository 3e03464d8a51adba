/* http.c and route.c: request checks, envelope, dispatch. */
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "memio.h"
#include "unit.h"

static int64_t
fixed_now(void)
{
	return 1700000000;
}

/* Serve one request with no store at all: everything before the store
 * (routing, limits, parsing) must answer on its own. */
static int drain;	/* serve() as CGI: discard unread bodies */

static struct memio *
serve(const char **params, const char *body)
{
	static struct memio	 f;
	static struct app	 app;
	struct http_io		 io = memio_io(&f, drain);

	memset(&f, 0, sizeof(f));
	f.params = params;
	f.body = body ? body : "";
	f.blen = strlen(f.body);
	memset(&app, 0, sizeof(app));
	config_defaults(&app.cfg);
	strcpy(app.cfg.db_path, "/nonexistent/crmauth-test");
	app.cfg.max_body = 100;
	app.conf_ok = 1;
	app.now = fixed_now;
	http_serve(&app, &io);
	return &f;
}

static const char *
body_of(const struct memio *f)
{
	const char *b = strstr(f->out, "\r\n\r\n");

	return b ? b + 4 : "";
}

/* ---- tests --------------------------------------------------------------- */

static void
t_status_table(void)
{
	CU_ASSERT_EQUAL(api_code(API_OK)->http, 200);
	CU_ASSERT_EQUAL(api_code(API_INVALID_REQUEST)->http, 400);
	CU_ASSERT_EQUAL(api_code(API_INVALID_CREDENTIALS)->http, 401);
	CU_ASSERT_EQUAL(api_code(API_INVALID_TOKEN)->http, 401);
	CU_ASSERT_EQUAL(api_code(API_TOKEN_EXPIRED)->http, 401);
	CU_ASSERT_EQUAL(api_code(API_TOKEN_RELEASED)->http, 401);
	CU_ASSERT_EQUAL(api_code(API_INVALID_UNIT)->http, 403);
	CU_ASSERT_EQUAL(api_code(API_NOT_FOUND)->http, 404);
	CU_ASSERT_EQUAL(api_code(API_METHOD_NOT_ALLOWED)->http, 405);
	CU_ASSERT_EQUAL(api_code(API_PAYLOAD_TOO_LARGE)->http, 413);
	CU_ASSERT_EQUAL(api_code(API_UNSUPPORTED_MEDIA_TYPE)->http, 415);
	CU_ASSERT_EQUAL(api_code(API_TOO_MANY_ATTEMPTS)->http, 429);
	CU_ASSERT_EQUAL(api_code(API_INTERNAL_ERROR)->http, 500);
	CU_ASSERT_EQUAL(api_code(API_SERVICE_UNAVAILABLE)->http, 503);
	CU_ASSERT_STRING_EQUAL(api_code(API_INVALID_UNIT)->code,
	    "INVALID_UNIT");
	for (int s = 0; s < API__MAX; s++)
		CU_ASSERT_PTR_NOT_NULL(api_code(s)->code);
}

static void
t_envelope(void)
{
	struct result	 r;
	char		*e;
	size_t		 n;

	result_init(&r);
	r.data = strdup("{\"token\":\"abc\"}");
	e = http_envelope(&r, &n);
	CU_ASSERT_STRING_EQUAL(e, "{\"data\":{\"token\":\"abc\"},\"status\":"
	    "{\"code\":\"OK\",\"description\":\"\",\"message\":\"\"}}");
	CU_ASSERT_EQUAL(n, strlen(e));
	free(e);
	result_free(&r);
	result_error(&r, API_INVALID_REQUEST, "The field '%s' is \"bad\"\n",
	    "x");
	e = http_envelope(&r, &n);
	CU_ASSERT_STRING_EQUAL(e, "{\"data\":null,\"status\":{\"code\":"
	    "\"INVALID_REQUEST\",\"description\":\"The request is not valid.\","
	    "\"message\":\"The field 'x' is \\\"bad\\\"\\u000a\"}}");
	free(e);
	/* An error never carries data. */
	r.data = strdup("{\"secret\":1}");
	e = http_envelope(&r, &n);
	CU_ASSERT_PTR_NULL(strstr(e, "secret"));
	free(e);
	result_free(&r);
}

static void
t_respond_headers(void)
{
	struct memio	 f = { 0 };
	struct http_io	 io = memio_io(&f, 0);
	struct result	 r;

	result_init(&r);
	result_error(&r, API_METHOD_NOT_ALLOWED, NULL);
	r.allow = "POST";
	r.retry_after = 30;
	r.www_authenticate = "Basic realm=\"crmauth\"";
	CU_ASSERT_EQUAL(http_respond(&io, &r), 0);
	CU_ASSERT_EQUAL(strncmp(f.out, "Status: 405 Method Not Allowed\r\n",
	    32), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.out, "\r\nContent-Type: "
	    "application/json; charset=utf-8\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.out, "\r\nCache-Control: no-store\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.out, "\r\nAllow: POST\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.out, "\r\nRetry-After: 30\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.out,
	    "\r\nWWW-Authenticate: Basic realm=\"crmauth\"\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.out, "\r\nContent-Length: "));
	CU_ASSERT_EQUAL(strlen(body_of(&f)),
	    (size_t)atoi(strstr(f.out, "Content-Length: ") + 16));
	result_free(&r);
}

static void
t_path(void)
{
	char p[64];

	CU_ASSERT_EQUAL(http_path_parse(p, sizeof(p), "/authentication/token"),
	    0);
	CU_ASSERT_STRING_EQUAL(p, "authentication/token");
	CU_ASSERT_EQUAL(http_path_parse(p, sizeof(p), "/health/"), 0);
	CU_ASSERT_STRING_EQUAL(p, "health");
	CU_ASSERT_EQUAL(http_path_parse(p, sizeof(p), "/health//"), 0);
	CU_ASSERT_STRING_EQUAL(p, "health/");
	CU_ASSERT_EQUAL(http_path_parse(p, sizeof(p), "health"), -1);
	CU_ASSERT_EQUAL(http_path_parse(p, sizeof(p), "/"), -1);
	CU_ASSERT_EQUAL(http_path_parse(p, sizeof(p), ""), -1);
	CU_ASSERT_EQUAL(http_path_parse(p, sizeof(p), NULL), -1);
	CU_ASSERT_EQUAL(http_path_parse(p, 8, "/authentication"), -1);
	CU_ASSERT_PTR_NOT_NULL(route_find("authentication/token/release"));
	CU_ASSERT_PTR_NULL(route_find("authentication/token/"));
	CU_ASSERT_PTR_NULL(route_find("Authentication/token"));
}

static void
t_content_length(void)
{
	size_t n;

	CU_ASSERT_EQUAL(http_content_length(NULL, 100, &n), API_OK);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(http_content_length("", 100, &n), API_OK);
	CU_ASSERT_EQUAL(http_content_length("100", 100, &n), API_OK);
	CU_ASSERT_EQUAL(n, 100);
	CU_ASSERT_EQUAL(http_content_length("101", 100, &n),
	    API_PAYLOAD_TOO_LARGE);
	CU_ASSERT_EQUAL(http_content_length("99999999999999999999999", 100,
	    &n), API_PAYLOAD_TOO_LARGE);
	CU_ASSERT_EQUAL(http_content_length("-1", 100, &n),
	    API_INVALID_REQUEST);
	CU_ASSERT_EQUAL(http_content_length("1e3", 100, &n),
	    API_INVALID_REQUEST);
	CU_ASSERT_EQUAL(http_content_length(" 5", 100, &n),
	    API_INVALID_REQUEST);
}

static void
t_content_type(void)
{
	CU_ASSERT_TRUE(http_content_type_ok("application/json"));
	CU_ASSERT_TRUE(http_content_type_ok("Application/JSON"));
	CU_ASSERT_TRUE(http_content_type_ok("application/json; charset=utf-8"));
	CU_ASSERT_TRUE(http_content_type_ok("application/json;charset=\"UTF-8\""));
	CU_ASSERT_FALSE(http_content_type_ok(NULL));
	CU_ASSERT_FALSE(http_content_type_ok("text/plain"));
	CU_ASSERT_FALSE(http_content_type_ok("application/jsonp"));
	CU_ASSERT_FALSE(http_content_type_ok("application/x-www-form-urlencoded"));
	CU_ASSERT_FALSE(http_content_type_ok("application/json; charset=latin1"));
}

static void
t_basic(void)
{
	struct result	r;
	char		key[CRM_NAME_MAX + 1];

	result_init(&r);
	/* "KEY:" */
	CU_ASSERT_EQUAL(http_basic_key("Basic S0VZOg==", key, sizeof(key), &r),
	    0);
	CU_ASSERT_STRING_EQUAL(key, "KEY");
	CU_ASSERT_EQUAL(http_basic_key("basic   S0VZOg==  ", key, sizeof(key),
	    &r), 0);
	/* Missing, wrong scheme, no colon ("KEY"), a password ("KEY:pw"),
	 * empty user (":"), bad base64. */
	static const char *bad[] = { NULL, "", "Bearer S0VZOg==", "Basic",
	    "Basic ", "BasicS0VZOg==", "Basic S0VZ", "Basic S0VZOnB3",
	    "Basic Og==", "Basic S0VZOg", "Basic ***" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		result_init(&r);
		CU_ASSERT_EQUAL(http_basic_key(bad[i], key, sizeof(key), &r),
		    -1);
		CU_ASSERT_EQUAL(r.status, API_INVALID_CREDENTIALS);
		CU_ASSERT_PTR_NOT_NULL(r.www_authenticate);
		CU_ASSERT_PTR_NOT_NULL(strstr(r.www_authenticate ?
		    r.www_authenticate : "", "Basic realm=\"crmauth\""));
	}
}

static void
t_json(void)
{
	struct result	 r;
	json_object	*o;
	const char	*s;
	static const struct { const char *in, *msg; } bad[] = {
		{ "", "not valid JSON" },
		{ "{", "not valid JSON" },
		{ "[1]", "must be a JSON object" },
		{ "\"x\"", "must be a JSON object" },
		{ "{} {}", "not valid JSON" },
		{ "{}x", "not valid JSON" },
		{ "{\"a\":1}\n\n{}", "not valid JSON" },
		{ "{'a':1}", "not valid JSON" },
		{ "{\"a\":'x'}", "not valid JSON" },
		{ "{\"a\":\"\xff\"}", "not valid UTF-8" },
		{ "{\"a\":\"\xc0\xaf\"}", "not valid UTF-8" },
		{ "{\"a\":\"\xed\xa0\x80\"}", "not valid UTF-8" },
		{ "{\"a\":\"\xf4\x90\x80\x80\"}", "not valid UTF-8" },
		{ "{\"a\":\"\xe2\x82\"}", "not valid UTF-8" },
		{ "{\"a\":\"x\ny\"}", "control character" },
		{ "{\"a\":\"\x01\"}", "control character" },
		{ "{\"a\":1,\xc3\xa9:2}", "not valid JSON" },
		{ "{\"a\":[[[[[[[[[[1]]]]]]]]]]}", "nested too deeply" },
		{ "{\"a\":1,\"a\":2}", "names a member twice" },
		/* Regression, found by fuzz_body: more objects than valid
		 * JSON of that length can hold overflowed the count array. */
		{ "{{{{}", "not valid JSON" },
		{ "{{{{{{{{", "not valid JSON" },
		{ "{}{}{}{}", "not valid JSON" },
		{ "{\"a\":1,\"\\u0061\":2}", "names a member twice" },
		{ "{\"o\":{\"x\":1,\"y\":{},\"x\":3}}", "names a member twice" },
		{ "{\"o\":[{\"b\":1},{\"b\":1,\"b\":2}]}", "names a member twice" },
		{ "{\"a\":{\"x\":1},\"a\":2}", "names a member twice" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		result_init(&r);
		o = http_parse_json(bad[i].in, strlen(bad[i].in), &r);
		CU_ASSERT_PTR_NULL(o);
		CU_ASSERT_EQUAL(r.status, API_INVALID_REQUEST);
		CU_ASSERT_PTR_NOT_NULL(strstr(r.message, bad[i].msg));
	}
	/* Up to 64 members and elements; one more is refused. */
	{
		char	big[2048];
		size_t	n = 0;

		n += (size_t)snprintf(big + n, sizeof(big) - n, "{");
		for (int i = 0; i < 64; i++)
			n += (size_t)snprintf(big + n, sizeof(big) - n,
			    "%s\"m%d\":1", i ? "," : "", i);
		snprintf(big + n, sizeof(big) - n, "}");
		result_init(&r);
		o = http_parse_json(big, strlen(big), &r);
		CU_ASSERT_PTR_NOT_NULL(o);
		json_object_put(o);
		snprintf(big + n, sizeof(big) - n, ",\"m64\":1}");
		o = http_parse_json(big, strlen(big), &r);
		CU_ASSERT_PTR_NULL(o);
		CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "too many members"));
		n = (size_t)snprintf(big, sizeof(big), "{\"a\":[0");
		for (int i = 1; i < 65; i++)
			n += (size_t)snprintf(big + n, sizeof(big) - n, ",%d", i);
		snprintf(big + n, sizeof(big) - n, "]}");
		result_init(&r);
		o = http_parse_json(big, strlen(big), &r);
		CU_ASSERT_PTR_NULL(o);
		CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "too many elements"));
		/* The same member names in different objects are fine. */
		s = "{\"a\":{\"x\":1},\"b\":{\"x\":1},\"c\":[{\"x\":1},{\"x\":2}]}";
		o = http_parse_json(s, strlen(s), &r);
		CU_ASSERT_PTR_NOT_NULL(o);
		json_object_put(o);
	}
	result_init(&r);
	/* Well-formed UTF-8 of every length is fine. */
	s = "{\"a\":\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf\"}";
	o = http_parse_json(s, strlen(s), &r);
	CU_ASSERT_PTR_NOT_NULL(o);
	json_object_put(o);
	s = "{\"a\":\"x\",\"n\":1,\"e\":\"\",\"z\":\"a\\u0000b\",\"nul\":null,"
	    "\"q\":\"it's \\\"fine\\\"\"}";
	o = http_parse_json(s, strlen(s), &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_EQUAL(json_field_string(o, NULL, "a", 1, 10, &s, &r), 0);
	CU_ASSERT_STRING_EQUAL(s, "x");
	CU_ASSERT_EQUAL(json_field_string(o, NULL, "missing", 0, 10, &s, &r),
	    1);
	CU_ASSERT_EQUAL(json_field_string(o, NULL, "nul", 0, 10, &s, &r), 1);
	CU_ASSERT_EQUAL(json_field_string(o, NULL, "missing", 1, 10, &s, &r),
	    -1);
	CU_ASSERT_STRING_EQUAL(r.message, "The field 'missing' is missing.");
	CU_ASSERT_EQUAL(json_field_string(o, "outer", "n", 1, 10, &s, &r), -1);
	CU_ASSERT_STRING_EQUAL(r.message,
	    "The field 'outer.n' must be a string.");
	CU_ASSERT_EQUAL(json_field_string(o, NULL, "e", 0, 10, &s, &r), -1);
	CU_ASSERT_STRING_EQUAL(r.message, "The field 'e' must not be empty.");
	CU_ASSERT_EQUAL(json_field_string(o, NULL, "a", 1, 0, &s, &r), -1);
	CU_ASSERT_STRING_EQUAL(r.message,
	    "The field 'a' is longer than 0 bytes.");
	CU_ASSERT_EQUAL(json_field_string(o, NULL, "z", 1, 10, &s, &r), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "NUL"));
	json_object_put(o);
}

static void
t_serve_errors(void)
{
	const char *p404[] = { "REQUEST_METHOD", "POST", "PATH_INFO",
	    "/nothing", NULL };
	const char *pnone[] = { "REQUEST_METHOD", "GET", NULL };
	const char *p405[] = { "REQUEST_METHOD", "GET", "PATH_INFO",
	    "/authentication/token/", NULL };
	const char *p413[] = { "REQUEST_METHOD", "POST", "PATH_INFO",
	    "/authentication/token", "CONTENT_LENGTH", "101",
	    "CONTENT_TYPE", "application/json", NULL };
	const char *p415[] = { "REQUEST_METHOD", "POST", "PATH_INFO",
	    "/authentication/token", "CONTENT_LENGTH", "2",
	    "CONTENT_TYPE", "text/plain", NULL };
	const char *pshort[] = { "REQUEST_METHOD", "POST", "PATH_INFO",
	    "/authentication/token", "CONTENT_LENGTH", "50",
	    "CONTENT_TYPE", "application/json", NULL };
	const char *pempty[] = { "REQUEST_METHOD", "POST", "PATH_INFO",
	    "/authentication/token", NULL };
	const char *pfield[] = { "REQUEST_METHOD", "POST", "PATH_INFO",
	    "/authentication/token", "CONTENT_LENGTH", "20",
	    "CONTENT_TYPE", "application/json", NULL };
	const char *pstore[] = { "REQUEST_METHOD", "GET", "PATH_INFO",
	    "/health", NULL };
	struct memio *f;

	f = serve(p404, NULL);
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 404 ", 12), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(body_of(f), "\"code\":\"NOT_FOUND\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(body_of(f), "\"data\":null"));
	f = serve(pnone, NULL);
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 404 ", 12), 0);
	f = serve(p405, NULL);
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 405 ", 12), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(f->out, "\r\nAllow: POST\r\n"));
	/* 413 without reading a byte of the body. */
	f = serve(p413, "{}");
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 413 ", 12), 0);
	CU_ASSERT_EQUAL(f->pos, 0);
	f = serve(p415, "{}");
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 415 ", 12), 0);
	CU_ASSERT_EQUAL(f->pos, 0);
	/* As CGI the unread body is discarded (within a bound) first. */
	drain = 1;
	f = serve(p415, "{}");
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 415 ", 12), 0);
	CU_ASSERT_EQUAL(f->pos, 2);
	f = serve(p413, "{}");
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 413 ", 12), 0);
	CU_ASSERT_EQUAL(f->pos, 2);	/* all there was */
	drain = 0;
	f = serve(pshort, "{\"username\":");
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 400 ", 12), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(body_of(f), "shorter than"));
	f = serve(pempty, NULL);
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 400 ", 12), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(body_of(f), "must be a JSON object"));
	f = serve(pfield, "{\"username\":\"alice\"}");
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 400 ", 12), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(body_of(f), "'password' is missing"));
	/* No store: 503 with Retry-After, and nothing about the path. */
	f = serve(pstore, NULL);
	CU_ASSERT_EQUAL(strncmp(f->out, "Status: 503 ", 12), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(f->out, "\r\nRetry-After: "));
	CU_ASSERT_PTR_NULL(strstr(f->out, "nonexistent"));
}

static int64_t	 now_at;

static int64_t
moving_now(void)
{
	return now_at;
}

/*
 * Security: a store, configuration or events file under a request's web
 * root is refused for that root (503), said once, while other roots are
 * served: a Host header that picks a root (mass virtual hosting) cannot
 * switch the service off for everyone.
 */
static void
t_web_root(void)
{
	static struct app	 app;
	char			*dir = unit_tmpdir(), sub[1024], link[1100];
	const char		*params[] = { "REQUEST_METHOD", "GET",
	    "PATH_INFO", "/nothing", "DOCUMENT_ROOT", dir, NULL };
	struct memio		 f;
	struct http_io		 io = memio_io(&f, drain);

	memset(&app, 0, sizeof(app));
	config_defaults(&app.cfg);
	app.now = fixed_now;
	app.conf_ok = 1;
	snprintf(app.cfg.db_path, sizeof(app.cfg.db_path), "%s/store/db", dir);
	snprintf(app.cfg.path, sizeof(app.cfg.path), "/nonexistent/c.conf");
	snprintf(sub, sizeof(sub), "%s/store", dir);
	CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0700), 0);	/* db is not made yet */
	CU_ASSERT_EQUAL(webroot_check(&app, NULL, NULL), 0);
	CU_ASSERT_EQUAL(webroot_check(&app, "relative/www", NULL), 0);
	CU_ASSERT_EQUAL(webroot_check(&app, "/nonexistent/www", NULL), 0);
	CU_ASSERT_EQUAL(webroot_check(&app, dir, NULL), -1);
	CU_ASSERT_EQUAL(webroot_check(&app, NULL, sub), -1);
	CU_ASSERT_EQUAL(webroot_check(&app, "/", NULL), -1);
	/* Another root is served still, and the bad one is refused again
	 * from what was remembered. */
	CU_ASSERT_EQUAL(webroot_check(&app, "/nonexistent/www", NULL), 0);
	CU_ASSERT_EQUAL(webroot_check(&app, "/", NULL), -1);
	CU_ASSERT_EQUAL(app.conf_ok, 1);
	/* Verdicts are kept a minute: a root that comes to hold the store
	 * (a link pointed elsewhere) is refused once the minute is over. */
	snprintf(link, sizeof(link), "%s/www", dir);
	CU_ASSERT_EQUAL_FATAL(symlink("/nonexistent", link), 0);
	app.now = moving_now;
	now_at = 1000;
	CU_ASSERT_EQUAL(webroot_check(&app, link, NULL), 0);
	CU_ASSERT_EQUAL(unlink(link), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(sub, link), 0);
	now_at += 59;
	CU_ASSERT_EQUAL(webroot_check(&app, link, NULL), 0);
	now_at += 1;
	CU_ASSERT_EQUAL(webroot_check(&app, link, NULL), -1);
	/* Several roots in turn are each remembered. */
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(webroot_check(&app, "/nonexistent/a", NULL), 0);
		CU_ASSERT_EQUAL(webroot_check(&app, "/nonexistent/b", NULL), 0);
		CU_ASSERT_EQUAL(webroot_check(&app, link, NULL), -1);
	}
	app.now = fixed_now;
	/* Through the dispatcher: 503 for that root, 404 (served) for
	 * another. */
	memset(&f, 0, sizeof(f));
	f.params = params;
	f.body = "";
	http_serve(&app, &io);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.out, "Status: 503 "));
	params[5] = "/nonexistent/www";
	memset(&f, 0, sizeof(f));
	f.params = params;
	f.body = "";
	http_serve(&app, &io);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.out, "Status: 404 "));
	unit_rmtree(dir);
	free(dir);
}

static void
t_request_id(void)
{
	char	 max[130];

	CU_ASSERT(request_id_ok("Zx9-4fQ@AAAAAB1cT7EAAAAK"));	/* Apache */
	CU_ASSERT(request_id_ok("0f1e2d3c4b5a69788796a5b4c3d2e1f0"));	/* nginx */
	CU_ASSERT(request_id_ok("1b4e28ba-2fa1-11d2-883f-0016d3cca427"));
	CU_ASSERT(request_id_ok("a.b_c:d+e/f=g"));
	memset(max, 'x', 128);
	max[128] = '\0';
	CU_ASSERT(request_id_ok(max));
	max[128] = 'x';
	max[129] = '\0';
	CU_ASSERT(!request_id_ok(max));
	CU_ASSERT(!request_id_ok(""));
	CU_ASSERT(!request_id_ok(NULL));
	CU_ASSERT(!request_id_ok("a\"b"));
	CU_ASSERT(!request_id_ok("a b"));
	CU_ASSERT(!request_id_ok("a\nb"));
	CU_ASSERT(!request_id_ok("a\\b"));
	CU_ASSERT(!request_id_ok("\xc3\xa9"));
}

/*
 * The metrics file's layout 1: what each word means.  Responders of two
 * versions share db_path/metrics during an upgrade, so a change to the
 * series (a route, an answer code, a bucket, a reason, a store error
 * kind, or their order) must come with a new LAYOUT and METRICS_FILE in
 * src/metrics.c; then write the new fingerprint here.
 */
static void
t_metrics_layout(void)
{
	CU_ASSERT_EQUAL(metrics_shape(), 0xbcad59991e509c61ULL);
}

/*
 * The file truncated under a process that counts into it: the add that
 * faults completes into memory of the process's own (no SIGBUS death),
 * metrics_lost() says so, and metrics_replaced() too.  A SIGBUS that is
 * not a fault in the mapping keeps its default action: shown in a child
 * killed by it.
 */
static void
t_metrics_truncated(void)
{
	struct config	 cfg;
	struct metrics	 m;
	char		*dir = unit_tmpdir(), path[1100], err[CRM_ERR_MAX];
	pid_t		 pid;
	int		 status;

	config_defaults(&cfg);
	snprintf(cfg.db_path, sizeof(cfg.db_path), "%s", dir);
	snprintf(path, sizeof(path), "%s/%s", dir, METRICS_FILE);
	CU_ASSERT_EQUAL_FATAL(metrics_open(&m, &cfg, METRICS_COUNT, err,
	    sizeof(err)), 0);
	metrics_request(&m, 0, API_OK, 1000);
	CU_ASSERT_FALSE(metrics_lost(&m));
	CU_ASSERT_FALSE(metrics_replaced(&m, &cfg));
	CU_ASSERT_EQUAL(truncate(path, 0), 0);
	metrics_request(&m, 0, API_OK, 1000);	/* faults: caught */
	metrics_request(&m, 0, API_OK, 1000);
	CU_ASSERT_TRUE(metrics_lost(&m));
	CU_ASSERT_TRUE(metrics_replaced(&m, &cfg));
	metrics_close(&m);
	CU_ASSERT_FALSE(metrics_lost(&m));

	/* kill -BUS is not a fault of ours: the default action. */
	CU_ASSERT_EQUAL_FATAL(unlink(path), 0);
	CU_ASSERT_EQUAL_FATAL(metrics_open(&m, &cfg, METRICS_COUNT, err,
	    sizeof(err)), 0);
	if ((pid = fork()) == 0) {
		raise(SIGBUS);
		_exit(0);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
	metrics_close(&m);
	unit_rmtree(dir);
	free(dir);
}

static CU_TestInfo tests[] = {
	{ "metrics: the series are layout 1's", t_metrics_layout },
	{ "metrics: a file truncated under the process: caught, said",
	    t_metrics_truncated },
	{ "request ids: what servers make, nothing else", t_request_id },
	{ "security: our files under a request's web root: 503 for it only",
	    t_web_root },
	{ "status table matches the README's Errors", t_status_table },
	{ "envelope: data or null, escaped message", t_envelope },
	{ "response headers", t_respond_headers },
	{ "PATH_INFO: one trailing slash, exact routes", t_path },
	{ "CONTENT_LENGTH: digits only, limit", t_content_length },
	{ "CONTENT_TYPE: application/json, UTF-8 only", t_content_type },
	{ "Basic: key as user name, empty password", t_basic },
	{ "JSON body: strict object, fields typed and bounded", t_json },
	{ "serve: 404, 405, 413, 415, 400, 503 in order", t_serve_errors },
	CU_TEST_INFO_NULL,
};

int
main(void)
{
	return unit_run("http", tests);
}
