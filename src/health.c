/*
 * What operators ask the service: health (200 when the store can be
 * read, else 503) and metrics (the node's figures, to metrics_allow).
 */
#include <stdlib.h>
#include <string.h>

#include "extern.h"

void
m_health(struct app *app, const struct request *req, struct result *res)
{
	enum store_err e;

	if (app_store(app, res) == NULL)
		return;
	if ((e = store_ping(app->store)) != STORE_OK) {
		result_store_error(res, app, e == STORE_NOTFOUND ?
		    STORE_NOTINIT : e);
		return;
	}
	if ((res->data = strdup("{\"status\":\"ok\"}")) == NULL) {
		result_error(res, API_INTERNAL_ERROR, NULL);
		return;
	}
	res->status = API_OK;
}

int
metrics_allowed(const struct app *app, const char *addr)
{
	return strcmp(app->cfg.metrics, "on") == 0 &&
	    cidr_match(app->cfg.metrics_nets, app->cfg.metrics_nnets, addr);
}

void
m_metrics(struct app *app, const struct request *req, struct result *res)
{
	struct metrics_gauges	 g;
	struct result		 ignored;

	/* The store's gauges; a store that cannot be opened is a 0 in
	 * crmauth_store_up, not a failed scrape. */
	result_init(&ignored);
	metrics_gauges_read(app_store(app, &ignored), &app->cfg, app->now(),
	    &g);
	result_free(&ignored);
	if ((res->raw = metrics_text(&app->met, &g, &res->rawlen)) == NULL) {
		result_error(res, API_INTERNAL_ERROR, NULL);
		return;
	}
	res->raw_type = "text/plain; version=0.0.4; charset=utf-8";
	res->status = API_OK;
}
