/*
 * What operators ask the service: health (200 when the store can be
 * read, else 503) and metrics (the node's figures, to metrics_allow).
 */
#include <stdio.h>
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
metrics_allowed(const struct app *app, const char *addr, int proxied)
{
	return strcmp(app->cfg.metrics, "on") == 0 && !proxied &&
	    cidr_match(app->cfg.metrics_nets, app->cfg.metrics_nnets, addr);
}

/* The failure is said once a minute: by a FastCGI responder, since it
 * last said it; under CGI, where every request is a process, across
 * them (db_path/metrics-warned, as audit-warned). */
static int
said_lately(struct app *app)
{
	char marker[1100];

	if (!app->cgi) {
		if (app->met_logged != 0 && app->now() - app->met_logged < 60)
			return 1;
		app->met_logged = app->now();
		return 0;
	}
	return (size_t)snprintf(marker, sizeof(marker), "%s/metrics-warned",
	    app->cfg.db_path) < sizeof(marker) && marker_fresh(marker);
}

/* Counting starts at the first request after the configuration was
 * read.  A file that cannot be made or mapped is logged, and tried
 * again a minute later; meanwhile this process counts nothing and its
 * scrapes answer 503, never figures that are not the node's. */
void
metrics_start(struct app *app)
{
	char err[CRM_ERR_MAX];

	app->met_tried = app->now();
	if (strcmp(app->cfg.metrics, "on") == 0 && metrics_open(&app->met,
	    &app->cfg, METRICS_COUNT, err, sizeof(err)) == -1 &&
	    !said_lately(app))
		log_err("metrics: %s; this process counts nothing until it "
		    "can", err);
}

/* A scrape that cannot give the node's figures. */
static void
unavailable(struct result *res)
{
	result_error(res, API_SERVICE_UNAVAILABLE, "The figures cannot be "
	    "read; see the error log.");
	res->retry_after = 60;
}

void
m_metrics(struct app *app, const struct request *req, struct result *res)
{
	struct metrics_gauges	 g;

	/* A file removed or replaced since it was mapped: the new one. */
	if (metrics_replaced(&app->met, &app->cfg)) {
		metrics_close(&app->met);
		metrics_start(app);
	}
	if (app->met.w == NULL) {
		unavailable(res);
		return;
	}

	/* The store's gauges, in one read; a store that cannot be opened
	 * or read is a 0 in crmauth_store_up, not a failed scrape nor one
	 * of the requests counted in crmauth_store_errors_total. */
	metrics_gauges_read(app_store_try(app) == STORE_OK ? app->store : NULL,
	    &app->cfg, app->now(), &g);
	if ((res->raw = metrics_text(&app->met, &g, &res->rawlen)) == NULL) {
		result_error(res, API_INTERNAL_ERROR, NULL);
		return;
	}
	/* Truncated while it was read: what was read is not the node's. */
	if (metrics_lost(&app->met)) {
		free(res->raw);
		res->raw = NULL;
		metrics_close(&app->met);
		metrics_start(app);
		unavailable(res);
		return;
	}
	res->raw_type = "text/plain; version=0.0.4; charset=utf-8";
	res->status = API_OK;
}
