/*
 * HTTP: the API status table, the response envelope, and every check of
 * untrusted request input (CGI/1.1 meta-variables of RFC 3875, the body,
 * the Authorization header).  Methods only see what passed here.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "extern.h"

static const struct api_code codes[API__MAX] = {
	[API_OK] = { 200, "OK", "OK", "", "" },
	[API_INVALID_REQUEST] = { 400, "Bad Request", "INVALID_REQUEST",
	    "The request is not valid.", "The request is not valid." },
	[API_INVALID_CREDENTIALS] = { 401, "Unauthorized",
	    "INVALID_CREDENTIALS", "Authentication failed.",
	    "The credentials are not valid." },
	[API_INVALID_TOKEN] = { 401, "Unauthorized", "INVALID_TOKEN",
	    "The token is not valid.",
	    "The token was not issued by this service or is malformed." },
	[API_TOKEN_EXPIRED] = { 401, "Unauthorized", "TOKEN_EXPIRED",
	    "The token has expired.", "The token has expired." },
	[API_TOKEN_RELEASED] = { 401, "Unauthorized", "TOKEN_RELEASED",
	    "The token was released.", "The token was released." },
	[API_INVALID_UNIT] = { 403, "Forbidden", "INVALID_UNIT",
	    "The unit is not allowed.",
	    "The requested unit is not one these credentials may use." },
	[API_NOT_FOUND] = { 404, "Not Found", "NOT_FOUND",
	    "No such method.", "There is no method at this path." },
	[API_METHOD_NOT_ALLOWED] = { 405, "Method Not Allowed",
	    "METHOD_NOT_ALLOWED", "HTTP method not allowed.",
	    "This method does not accept that HTTP method; see Allow." },
	[API_PAYLOAD_TOO_LARGE] = { 413, "Payload Too Large",
	    "PAYLOAD_TOO_LARGE", "The request body is too large.",
	    "The request body is longer than this service accepts." },
	[API_UNSUPPORTED_MEDIA_TYPE] = { 415, "Unsupported Media Type",
	    "UNSUPPORTED_MEDIA_TYPE", "The body must be JSON.",
	    "Send the body as Content-Type: application/json." },
	[API_TOO_MANY_ATTEMPTS] = { 429, "Too Many Requests",
	    "TOO_MANY_ATTEMPTS", "Too many failed attempts.",
	    "Too many failed attempts; try again after Retry-After "
	    "seconds." },
	[API_INTERNAL_ERROR] = { 500, "Internal Server Error",
	    "INTERNAL_ERROR", "Internal error.",
	    "The service failed; the error was logged." },
	[API_SERVICE_UNAVAILABLE] = { 503, "Service Unavailable",
	    "SERVICE_UNAVAILABLE", "Service unavailable.",
	    "The service cannot reach its store; try again later." },
};

const struct api_code *
api_code(enum api_status s)
{
	if ((unsigned)s >= API__MAX)
		s = API_INTERNAL_ERROR;
	return &codes[s];
}

void
result_init(struct result *r)
{
	memset(r, 0, sizeof(*r));
}

void
result_free(struct result *r)
{
	free(r->data);
	r->data = NULL;
	free(r->raw);
	r->raw = NULL;
}

int
result_error(struct result *r, enum api_status s, const char *fmt, ...)
{
	va_list ap;

	r->status = s;
	free(r->data);
	r->data = NULL;
	r->message[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(r->message, sizeof(r->message), fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---- output -------------------------------------------------------------- */

char *
http_envelope(const struct result *r, size_t *len)
{
	const struct api_code	*c = api_code(r->status);
	struct buf		 b = { 0 };

	buf_str(&b, "{\"data\":");
	buf_str(&b, r->status == API_OK && r->data != NULL ? r->data : "null");
	buf_str(&b, ",\"status\":{\"code\":");
	buf_json_str(&b, c->code);
	buf_str(&b, ",\"description\":");
	buf_json_str(&b, c->description);
	buf_str(&b, ",\"message\":");
	buf_json_str(&b, r->message[0] != '\0' ? r->message : c->message);
	buf_str(&b, "}}");
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

int
http_respond(const struct http_io *io, const struct result *r)
{
	static const char	 fallback[] = "Status: 500 Internal Server "
	    "Error\r\nContent-Type: application/json; charset=utf-8\r\n"
	    "Cache-Control: no-store\r\n\r\n{\"data\":null,\"status\":"
	    "{\"code\":\"INTERNAL_ERROR\",\"description\":\"Internal error."
	    "\",\"message\":\"The service failed; the error was logged.\"}}";
	const struct api_code	*c = api_code(r->status);
	struct buf		 b = { 0 };
	char			*body;
	size_t			 blen;
	int			 rc;

	if (r->status == API_OK && r->raw != NULL) {
		if ((body = malloc(r->rawlen)) == NULL)
			return io->write(io->ctx, fallback,
			    sizeof(fallback) - 1);
		memcpy(body, r->raw, r->rawlen);
		blen = r->rawlen;
	} else if ((body = http_envelope(r, &blen)) == NULL)
		return io->write(io->ctx, fallback, sizeof(fallback) - 1);
	buf_fmt(&b, "Status: %d %s\r\n", c->http, c->reason);
	buf_fmt(&b, "Content-Type: %s\r\n", r->status == API_OK &&
	    r->raw != NULL ? r->raw_type : "application/json; charset=utf-8");
	buf_str(&b, "Cache-Control: no-store\r\n"
	    "Pragma: no-cache\r\n"
	    "X-Content-Type-Options: nosniff\r\n");
	buf_fmt(&b, "Content-Length: %zu\r\n", blen);
	if (r->www_authenticate != NULL)
		buf_fmt(&b, "WWW-Authenticate: %s\r\n", r->www_authenticate);
	if (r->allow != NULL)
		buf_fmt(&b, "Allow: %s\r\n", r->allow);
	if (r->retry_after != 0)
		buf_fmt(&b, "Retry-After: %u\r\n", r->retry_after);
	buf_str(&b, "\r\n");
	buf_add(&b, body, blen);
	free(body);
	if (b.failed) {
		free(b.p);
		return io->write(io->ctx, fallback, sizeof(fallback) - 1);
	}
	rc = io->write(io->ctx, b.p, b.len);
	free(b.p);
	return rc;
}

/* ---- input ---------------------------------------------------------------- */

enum http_method
http_method_parse(const char *m)
{
	if (m == NULL)
		return HTTP_OTHER;
	if (strcmp(m, "GET") == 0)
		return HTTP_GET;
	if (strcmp(m, "POST") == 0)
		return HTTP_POST;
	if (strcmp(m, "HEAD") == 0)
		return HTTP_HEAD;
	return HTTP_OTHER;
}

int
http_path_parse(char *out, size_t outsz, const char *pi)
{
	size_t len;

	if (pi == NULL || pi[0] != '/')
		return -1;
	pi++;				/* routes are written without it */
	len = strlen(pi);
	if (len > 0 && pi[len - 1] == '/')
		len--;			/* one trailing slash is tolerated */
	if (len == 0 || len >= outsz)
		return -1;
	memcpy(out, pi, len);
	out[len] = '\0';
	return 0;
}

enum api_status
http_content_length(const char *s, size_t max, size_t *out)
{
	long long	 v;
	const char	*why;

	*out = 0;
	if (s == NULL || *s == '\0')
		return API_OK;
	/* Digits only, and no bigger than fits: RFC 9110 §8.6. */
	if (parse_int(s, 0, 0x7fffffffffffffffLL, &v, &why) == -1)
		return strcmp(why, "is out of range") == 0 ?
		    API_PAYLOAD_TOO_LARGE : API_INVALID_REQUEST;
	if ((unsigned long long)v > max)
		return API_PAYLOAD_TOO_LARGE;
	*out = (size_t)v;
	return API_OK;
}

int
http_content_type_ok(const char *ct)
{
	static const char	 json[] = "application/json";
	const char		*p, *v;
	size_t			 n;

	if (ct == NULL || strncasecmp(ct, json, sizeof(json) - 1) != 0)
		return 0;
	p = ct + sizeof(json) - 1;
	/* Parameters (RFC 9110 §8.3.1): only charset matters, and it must
	 * be UTF-8 (RFC 8259 §8.1). */
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (*p++ != ';')
			return 0;
		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, ";");
		if (strncasecmp(p, "charset=", 8) == 0) {
			v = p + 8;
			if (strncasecmp(v, "utf-8", 5) == 0)
				v += 5;
			else if (strncasecmp(v, "\"utf-8\"", 7) == 0)
				v += 7;
			else
				return 0;
			while (*v == ' ' || *v == '\t')
				v++;
			if (*v != '\0' && *v != ';')
				return 0;
		}
		p += n;
	}
	return 1;
}

int
http_read_body(const struct http_io *io, char *buf, size_t len)
{
	size_t	 got = 0;
	ssize_t	 n;

	while (got < len) {
		n = io->read(io->ctx, buf + got, len - got);
		if (n <= 0)
			return -1;	/* ended early: aborted or lying */
		got += (size_t)n;
	}
	return 0;
}

/*
 * A structural pass over the body before json-c parses it, for what
 * json-c lets through: 'single-quoted' strings (RFC 8259 has none), raw
 * control characters in strings (§7), UTF-8 that is not well-formed
 * (json-c takes overlong forms, surrogates and code points past
 * U+10FFFF), and too many members or elements.  It records, in document order, how many
 * members each object has, for has_duplicates() below.  NULL when fine,
 * else the problem for the 400's message.
 */
struct jscan {
	size_t	*counts;	/* members of the n-th object to open */
	size_t	 nobjects;
};

static const char *
json_prescan(const char *buf, size_t len, struct jscan *js)
{
	struct {
		int	 object;
		size_t	 index;		/* into counts, for objects */
		size_t	 n;		/* members, or commas of an array */
	}	 stack[CRM_JSON_DEPTH + 1];
	size_t	 depth = 0, cap;
	int	 in = 0, esc = 0;

	/* Valid JSON holds at most len / 2 objects ("{}" each); more braces
	 * than that are refused before they are counted. */
	cap = len / 2 + 1;
	js->nobjects = 0;
	if ((js->counts = calloc(cap, sizeof(size_t))) == NULL)
		return "";
	for (size_t i = 0; i < len; i++) {
		char	 c = buf[i];
		size_t	 n;

		if ((unsigned char)c >= 0x80) {
			if ((n = utf8_len((const unsigned char *)buf + i,
			    len - i)) == 0)
				return "The request body is not valid UTF-8.";
			i += n - 1;
			if (!in)
				return "The request body is not valid JSON.";
			continue;
		}
		if (in && (unsigned char)c < 0x20)
			return "The request body has a control character in "
			    "a string.";
		if (in) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in = 0;
			continue;
		}
		switch (c) {
		case '"':
			in = 1;
			break;
		case '\'':
			return "The request body is not valid JSON.";
		case '{':
		case '[':
			if (depth == CRM_JSON_DEPTH + 1)
				return "The request body is nested too deeply.";
			stack[depth].object = c == '{';
			stack[depth].index = js->nobjects;
			stack[depth].n = 0;
			if (c == '{' && js->nobjects == cap)
				return "The request body is not valid JSON.";
			if (c == '{')
				js->nobjects++;
			depth++;
			break;
		case '}':
		case ']':
			if (depth == 0)
				return "The request body is not valid JSON.";
			depth--;
			if (stack[depth].object)
				js->counts[stack[depth].index] = stack[depth].n;
			break;
		case ':':
			if (depth > 0 && stack[depth - 1].object &&
			    ++stack[depth - 1].n > CRM_JSON_MEMBERS)
				return "An object in the request body has too "
				    "many members.";
			break;
		case ',':
			if (depth > 0 && !stack[depth - 1].object &&
			    ++stack[depth - 1].n >= CRM_JSON_MEMBERS)
				return "An array in the request body has too "
				    "many elements.";
			break;
		}
	}
	return NULL;
}

/*
 * json-c keeps the last of two members of the same name, so a parsed
 * object with fewer members than the text gave it had a duplicate
 * (escapes included: "a" and "\u0061" are one name).  Objects are
 * compared in document order, parents before children.
 */
static int
has_duplicates(json_object *o, const struct jscan *js, size_t *next)
{
	size_t n;

	if (json_object_is_type(o, json_type_object)) {
		if (*next >= js->nobjects ||
		    js->counts[(*next)++] != (size_t)json_object_object_length(o))
			return 1;
		json_object_object_foreach(o, k, v) {
			(void)k;
			if (v != NULL && has_duplicates(v, js, next))
				return 1;
		}
	} else if (json_object_is_type(o, json_type_array)) {
		n = json_object_array_length(o);
		for (size_t i = 0; i < n; i++) {
			json_object *v = json_object_array_get_idx(o, i);

			if (v != NULL && has_duplicates(v, js, next))
				return 1;
		}
	}
	return 0;
}

struct json_object *
http_parse_json(const char *buf, size_t len, struct result *res)
{
	json_tokener		*tok = NULL;
	json_object		*o = NULL;
	enum json_tokener_error	 jerr;
	struct jscan		 js = { NULL, 0 };
	const char		*why;
	size_t			 next = 0;

	if ((why = json_prescan(buf, len, &js)) != NULL) {
		if (*why == '\0')
			result_error(res, API_INTERNAL_ERROR, NULL);
		else
			result_error(res, API_INVALID_REQUEST, "%s", why);
		goto out;
	}
	if ((tok = json_tokener_new_ex(CRM_JSON_DEPTH)) == NULL) {
		result_error(res, API_INTERNAL_ERROR, NULL);
		goto out;
	}
	/* Strict also refuses anything after the value. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	if (o == NULL) {
		if (jerr == json_tokener_error_depth)
			result_error(res, API_INVALID_REQUEST,
			    "The request body is nested too deeply.");
		else
			result_error(res, API_INVALID_REQUEST,
			    "The request body is not valid JSON.");
	} else if (json_tokener_get_parse_end(tok) != len) {
		result_error(res, API_INVALID_REQUEST,
		    "The request body has data after the JSON object.");
	} else if (!json_object_is_type(o, json_type_object)) {
		result_error(res, API_INVALID_REQUEST,
		    "The request body must be a JSON object.");
	} else if (has_duplicates(o, &js, &next)) {
		result_error(res, API_INVALID_REQUEST,
		    "The request body names a member twice.");
	} else
		goto out;
	if (o != NULL)
		json_object_put(o);
	o = NULL;
out:
	if (tok != NULL)
		json_tokener_free(tok);
	free(js.counts);
	return o;
}

/* "The field 'where.field' problem": made only when there is one. */
static int
field_error(struct result *res, const char *where, const char *field,
    const char *problem)
{
	return result_error(res, API_INVALID_REQUEST, "The field '%s%s%s' %s",
	    where ? where : "", where ? "." : "", field, problem);
}

int
json_field_string(struct json_object *obj, const char *where,
    const char *field, int flags, size_t maxlen, const char **out,
    struct result *res)
{
	int		 mandatory = (flags & FIELD_MANDATORY) != 0;
	json_object	*m;
	char		 longer[64];
	size_t		 len;

	if (obj == NULL || !json_object_object_get_ex(obj, field, &m) ||
	    m == NULL) {
		if (mandatory)
			return field_error(res, where, field, "is missing.");
		return 1;
	}
	if (!json_object_is_type(m, json_type_string))
		return field_error(res, where, field, "must be a string.");
	len = (size_t)json_object_get_string_len(m);
	if (len == 0 && !(flags & FIELD_EMPTY_OK))
		return field_error(res, where, field, "must not be empty.");
	if (len > maxlen) {
		snprintf(longer, sizeof(longer), "is longer than %zu bytes.",
		    maxlen);
		return field_error(res, where, field, longer);
	}
	*out = json_object_get_string(m);
	if (strlen(*out) != len)
		return field_error(res, where, field,
		    "must not contain a NUL character.");
	return 0;
}

int
http_bearer(const char *authz, const char **tok, size_t *len)
{
	/* b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
	 *     *"=" */
	static const char	 b64token[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-._~+/";
	const char		*p;
	size_t			 n;

	if (authz == NULL || strncasecmp(authz, "Bearer", 6) != 0 ||
	    (authz[6] != ' ' && authz[6] != '\0'))
		return 0;
	if (strlen(authz) > CRM_AUTH_MAX)
		return -1;
	for (p = authz + 6; *p == ' '; p++)
		;
	n = strspn(p, b64token);
	n += strspn(p + n, "=");
	if (n == 0 || strspn(p + n, " ") != strlen(p + n))
		return -1;
	*tok = p;
	*len = n;
	return 1;
}

#define BASIC_CHALLENGE "Basic realm=\"crmauth\", charset=\"UTF-8\""

static int
basic_fail(struct result *res, const char *msg)
{
	result_error(res, API_INVALID_CREDENTIALS, "%s", msg);
	res->www_authenticate = BASIC_CHALLENGE;
	return -1;
}

int
http_basic_key(const char *authz, char *out, size_t outsz,
    struct result *res)
{
	static const char	 how[] = "Send the key as the HTTP Basic user "
	    "name with an empty password.";
	unsigned char		 dec[CRM_AUTH_MAX];
	const char		*p, *end;
	unsigned char		*colon;
	size_t			 declen, ulen;

	if (authz == NULL || *authz == '\0')
		return basic_fail(res, how);
	if (strlen(authz) > CRM_AUTH_MAX)
		return basic_fail(res, how);
	/* RFC 7617 §2: "Basic" (any case), one or more spaces, token68. */
	if (strncasecmp(authz, "Basic", 5) != 0 || authz[5] != ' ')
		return basic_fail(res, how);
	for (p = authz + 5; *p == ' '; p++)
		;
	for (end = p + strlen(p); end > p && end[-1] == ' '; end--)
		;
	if (b64_decode(dec, sizeof(dec), &declen, p, (size_t)(end - p)) != 0)
		return basic_fail(res, how);
	if ((colon = memchr(dec, ':', declen)) == NULL)
		return basic_fail(res, how);
	ulen = (size_t)(colon - dec);
	if (ulen == 0 || colon + 1 != dec + declen)
		return basic_fail(res, how);
	if (memchr(dec, '\0', ulen) != NULL)
		return basic_fail(res, how);
	if (ulen >= outsz)
		/* Longer than any key: cannot be one of ours. */
		return basic_fail(res, "The credentials are not valid.");
	memcpy(out, dec, ulen);
	out[ulen] = '\0';
	return 0;
}
