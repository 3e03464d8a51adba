/*
 * Dispatch on PATH_INFO through a table, and serve one request end to
 * end: route, method, body limits, body, method, envelope.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "extern.h"

static const struct route routes[] = {
	{ "authentication/token", HTTP_POST, "POST", BODY_REQUIRED,
	    m_token, 1 },
	{ "authentication/web_api_key/token", HTTP_POST, "POST",
	    BODY_OPTIONAL, m_web_api_key_token, 1 },
	{ "authentication/consumer_application_key/token", HTTP_POST, "POST",
	    BODY_REQUIRED, m_consumer_token, 1 },
	{ "authentication/token/release", HTTP_POST, "POST", BODY_REQUIRED,
	    m_release, 0 },
	{ "authentication/token/check", HTTP_GET | HTTP_POST, "GET, POST",
	    BODY_OPTIONAL, m_check, 0 },
	{ "health", HTTP_GET, "GET", BODY_NONE, m_health, 0 },
	/* Only to metrics_allow's addresses; to others, as if not here. */
	{ "metrics", HTTP_GET, "GET", BODY_NONE, m_metrics, 0 },
};
_Static_assert(sizeof(routes) / sizeof(routes[0]) == NROUTES, "NROUTES");

const struct route *
route_find(const char *path)
{
	for (size_t i = 0; i < NROUTES; i++)
		if (strcmp(routes[i].path, path) == 0)
			return &routes[i];
	return NULL;
}

int
route_index(const struct route *r)
{
	return r == NULL ? -1 : (int)(r - routes);
}

const char *
route_path(size_t i)
{
	return routes[i].path;
}

int
route_auth(size_t i)
{
	return routes[i].auth;
}

int
app_ready(struct app *app, const struct http_io *io, struct result *res)
{
	/* A file the web server could serve under this request's root:
	 * refused, like a configuration that cannot be read. */
	if (app->conf_ok && webroot_check(app,
	    io->param(io->ctx, "DOCUMENT_ROOT"),
	    io->param(io->ctx, "CONTEXT_DOCUMENT_ROOT")) == 0)
		return 0;
	result_error(res, API_SERVICE_UNAVAILABLE,
	    "The service is not configured; see the error log.");
	res->retry_after = 60;
	return -1;
}

enum store_err
app_store_try(struct app *app)
{
	char		 err[CRM_ERR_MAX];
	enum store_err	 e;

	if (app->store != NULL)
		return STORE_OK;
	/* Retried on each request, so that a store made (or repaired)
	 * after start is picked up without a restart. */
	e = store_open(&app->store, &app->cfg, 0, err, sizeof(err));
	if (e != STORE_OK) {
		/* Once a minute per process, not once per request. */
		if (app->now() - app->store_logged >= 60) {
			log_err("%s", err);
			app->store_logged = app->now();
		}
		app->store = NULL;
	}
	return e;
}

struct store *
app_store(struct app *app, struct result *res)
{
	enum store_err	 e;

	if ((e = app_store_try(app)) != STORE_OK) {
		metrics_store_error(&app->met, e);
		result_error(res, API_SERVICE_UNAVAILABLE, NULL);
		res->retry_after = 30;
	}
	return app->store;
}

/* Why the store failed a token's check: the token code knows only that
 * it did; the store kept what its read gave, so that an outage counts as
 * one (crmauth_store_errors_total{kind="unavailable"}). */
enum store_err
app_store_why(struct app *app)
{
	enum store_err e = app->store->checked;

	return e == STORE_OK || e == STORE_NOTFOUND ? STORE_ERROR : e;
}

void
result_store_error(struct result *res, struct app *app, enum store_err e)
{
	metrics_store_error(&app->met, e);
	switch (e) {
	case STORE_FULL:
		log_err("store: %s", store_detail(app->store));
		result_error(res, API_SERVICE_UNAVAILABLE,
		    "The store is full; try again later.");
		res->retry_after = 60;
		break;
	case STORE_NOTINIT:
	case STORE_VERSION:
	case STORE_ERROR:
	case STORE_UNAVAILABLE:
		log_err("store: %s: %s", store_strerror(e),
		    app->store ? store_detail(app->store) : "");
		result_error(res, API_SERVICE_UNAVAILABLE, NULL);
		res->retry_after = 30;
		break;
	default:
		log_err("store: %s: %s", store_strerror(e),
		    app->store ? store_detail(app->store) : "");
		result_error(res, API_INTERNAL_ERROR, NULL);
		break;
	}
}

void
app_event(struct app *app, struct result *res, struct audit_event *ev,
    const char *event, const char *reason)
{
	ev->event = event;
	ev->reason = reason;
	ev->request_id = app->request_id;
	audit_emit(&app->audit, ev);
	metrics_event(&app->met, app->met_route, event, reason);
	res->audited = 1;
}

/* A string member of a body, as the client sent it, or NULL. */
static const char *
body_string(struct json_object *o, const char *name)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/*
 * An authentication request refused before any secret was looked at
 * (a malformed body, a missing key): auth_failed all the same, naming
 * what the client claimed to be, cut and escaped by audit_format.
 */
static void
refused_event(struct app *app, const struct route *r,
    const struct request *req, struct result *res)
{
	struct audit_event	 ev = { .method = r->path,
				    .client = req->remote_addr };
	json_object		*ati;

	switch (res->status) {
	case API_INVALID_REQUEST:
	case API_PAYLOAD_TOO_LARGE:
	case API_UNSUPPORTED_MEDIA_TYPE:
	case API_INVALID_CREDENTIALS:
		break;
	default:
		return;		/* not the client's doing, or not refused */
	}
	ev.org = body_string(req->body, "organisation");
	ev.usr = body_string(req->body, "username");
	ev.unit = body_string(req->body, "unit");
	if (req->body != NULL && json_object_object_get_ex(req->body,
	    "access_token_identifier", &ati))
		ev.identifier = body_string(ati, "identifier");
	app_event(app, res, &ev, "auth_failed",
	    res->status == API_INVALID_CREDENTIALS ? "no_key" :
	    "invalid_request");
}

static const char *
param(const struct http_io *io, const char *name)
{
	return io->param(io->ctx, name);
}

/* Read and discard what is left of a CGI body, within a bound. */
static void
drain(const struct http_io *io, size_t left)
{
	char	 buf[4096];
	ssize_t	 n;

	if (left > CRM_DRAIN_MAX)
		left = CRM_DRAIN_MAX;
	while (left > 0 && (n = io->read(io->ctx, buf, left < sizeof(buf) ?
	    left : sizeof(buf))) > 0)
		left -= (size_t)n;
}

int
request_id_ok(const char *s)
{
	size_t n = s == NULL ? 0 : strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789._:@+/=-");

	return n >= 1 && n <= 128 && s[n] == '\0';
}

/* The id the web server gave the request: Apache's mod_unique_id, else
 * an X-Request-ID header (nginx sets it from $request_id).  One that is
 * not an id is left out of the events, not cut or escaped into one. */
static const char *
request_id(const struct http_io *io)
{
	const char *id;

	if ((id = param(io, "UNIQUE_ID")) == NULL)
		id = param(io, "HTTP_X_REQUEST_ID");
	return request_id_ok(id) ? id : NULL;
}

/* A request passed on by a proxy: REMOTE_ADDR is the proxy's.  The
 * headers proxies and CDNs add to say so (only asked of a request for
 * metrics). */
static int
proxied(const struct http_io *io)
{
	static const char *const hdrs[] = {
		"HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_VIA",
		"HTTP_X_REAL_IP", "HTTP_X_FORWARDED_HOST",
		"HTTP_X_FORWARDED_PROTO", "HTTP_X_CLIENT_IP",
		"HTTP_X_CLUSTER_CLIENT_IP", "HTTP_CF_CONNECTING_IP",
		"HTTP_TRUE_CLIENT_IP",
	};
	size_t	 i;

	for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
		if (param(io, hdrs[i]) != NULL)
			return 1;
	return 0;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
http_serve(struct app *app, const struct http_io *io)
{
	const struct route	*r = NULL;
	struct request		 req;
	struct result		 res;
	enum http_method	 m;
	enum api_status		 s;
	size_t			 clen;
	unsigned long long	 unread = 0;	/* body bytes not read */
	const char		*cl;
	long long		 v;
	const char		*why;
	char			*body = NULL;
	uint64_t		 t0 = 0;

	memset(&req, 0, sizeof(req));
	result_init(&res);
	app->met_route = -1;
	app->request_id = request_id(io);
	/* A file truncated under this process (metrics_lost: one load) is
	 * given up at once: counting into memory of its own would be lost. */
	if (app->met.w != NULL && metrics_lost(&app->met))
		metrics_close(&app->met);
	if (app->met.w == NULL && app->conf_ok &&
	    app->now() - app->met_tried >= 60)
		metrics_start(app);
	if (app->met.w != NULL)
		t0 = now_ns();
	req.remote_addr = param(io, "REMOTE_ADDR");
	if (req.remote_addr == NULL)
		req.remote_addr = "";

	/* Whatever happens, this much body may be left to discard. */
	cl = param(io, "CONTENT_LENGTH");
	if (cl != NULL && parse_int(cl, 0, 0x7fffffffffffffffLL, &v, &why) == 0)
		unread = (unsigned long long)v;
	if (app_ready(app, io, &res) == -1)
		goto send;
	if (http_path_parse(req.path, sizeof(req.path),
	    param(io, "PATH_INFO")) == -1 ||
	    (r = route_find(req.path)) == NULL ||
	    (r->fn == m_metrics && !metrics_allowed(app, req.remote_addr,
	    proxied(io)))) {
		r = NULL;
		result_error(&res, API_NOT_FOUND, NULL);
		goto send;
	}
	app->met_route = route_index(r);
	m = http_method_parse(param(io, "REQUEST_METHOD"));
	if ((r->methods & m) == 0) {
		result_error(&res, API_METHOD_NOT_ALLOWED,
		    "Use %s for this method.", r->allow);
		res.allow = r->allow;
		goto send;
	}
	req.method = m;

	if (r->body != BODY_NONE) {
		/* Size and type are checked before a byte is read. */
		s = http_content_length(cl, app->cfg.max_body, &clen);
		if (s == API_PAYLOAD_TOO_LARGE) {
			result_error(&res, s, "The request body is longer "
			    "than %zu bytes.", app->cfg.max_body);
			goto send;
		}
		if (s != API_OK) {
			result_error(&res, s, "Content-Length is not valid.");
			goto send;
		}
		if (clen > 0) {
			if (!http_content_type_ok(param(io, "CONTENT_TYPE"))) {
				result_error(&res, API_UNSUPPORTED_MEDIA_TYPE,
				    NULL);
				goto send;
			}
			if ((body = malloc(clen)) == NULL) {
				result_error(&res, API_INTERNAL_ERROR, NULL);
				goto send;
			}
			unread = 0;
			if (http_read_body(io, body, clen) == -1) {
				result_error(&res, API_INVALID_REQUEST,
				    "The request body is shorter than its "
				    "Content-Length.");
				goto send;
			}
			if ((req.body = http_parse_json(body, clen,
			    &res)) == NULL)
				goto send;
		}
		if (r->body == BODY_REQUIRED && req.body == NULL) {
			result_error(&res, API_INVALID_REQUEST,
			    "The request body must be a JSON object.");
			goto send;
		}
	}
	req.authorization = param(io, "HTTP_AUTHORIZATION");
	r->fn(app, &req, &res);
send:
	if (r != NULL && r->auth && !res.audited && req.method != 0)
		refused_event(app, r, &req, &res);
	if (io->drain && unread > 0)
		drain(io, unread > CRM_DRAIN_MAX ? CRM_DRAIN_MAX : (size_t)unread);
	/* Counted before it is sent: a responder killed while sending
	 * has counted what the client may have got. */
	if (app->met.w != NULL && t0 != 0)	/* (mapped by this scrape) */
		metrics_request(&app->met, app->met_route, res.status,
		    now_ns() - t0);
	http_respond(io, &res);
	app->request_id = NULL;
	result_free(&res);
	if (req.body != NULL)
		json_object_put(req.body);
	free(body);
}
