/* health: 200 when the store can be read, else 503. */
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
