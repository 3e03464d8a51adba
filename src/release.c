/* authentication/token/release: make an authentic token unusable. */
#include <string.h>

#include "extern.h"

void
m_release(struct app *app, const struct request *req, struct result *res)
{
	const char	*token;
	struct claims	 c;
	struct audit_event ev;
	enum tok_err	 te;
	enum store_err	 e;

	/* No length limit here: an over-long token is refused by
	 * tok_verify before any decoding, as INVALID_TOKEN. */
	if (json_field_string(req->body, NULL, "token", 1, app->cfg.max_body,
	    &token, res) == -1)
		return;
	if (app_store(app, res) == NULL)
		return;
	te = tok_verify(token, strlen(token), tok_store_key, app->store,
	    app->now(), app->cfg.token_ttl, &c);
	switch (te) {
	case TOK_OK:
		break;
	case TOK_STORE:
		result_store_error(res, app, app_store_why(app));
		return;
	case TOK_INTERNAL:
		result_error(res, API_INTERNAL_ERROR, NULL);
		return;
	default:
		result_error(res, API_INVALID_TOKEN, NULL);
		return;
	}
	/* Already released or already expired: success all the same. */
	e = store_release(app->store, c.jti_bin, c.exp, app->now());
	if (e != STORE_OK)
		result_store_error(res, app, e);
	else {
		res->status = API_OK;	/* data: null */
		ev = (struct audit_event){ .method = req->path, .org = c.org,
		    .usr = c.usr, .unit = c.oun, .jti = c.jti,
		    .client = req->remote_addr };
		app_event(app, res, &ev, "token_released", NULL);
	}
	tok_claims_free(&c);
}
