#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "memio.h"

const struct sigkey fuzz_key = {
	.kid = FUZZ_KID,
	.secret = "0123456789abcdef0123456789abcdef",
	.current = 1,
};

int
fuzz_keyfn(void *arg, const char *kid, struct sigkey *out)
{
	(void)arg;
	if (strcmp(kid, fuzz_key.kid) != 0)
		return 1;
	*out = fuzz_key;
	return 0;
}

static int64_t
fixed_now(void)
{
	return 1800000000;
}

struct app *
fuzz_app(void)
{
	static struct app	 app;
	static int		 made;
	char			 dir[64], err[CRM_ERR_MAX];
	struct user_rec		 u;
	struct apikey_rec	 ak;
	struct consumer_rec	 ck;
	struct access_rec	 at;
	unsigned char		 d[CRM_DIGEST_BYTES];

	if (made)
		return &app;
	made = 1;
	if (sec_init() == -1)
		abort();
	snprintf(dir, sizeof(dir), "%s/crmauth-fuzz.XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(dir) == NULL)
		abort();
	memset(&app, 0, sizeof(app));
	config_defaults(&app.cfg);
	snprintf(app.cfg.db_path, sizeof(app.cfg.db_path), "%s/db", dir);
	app.cfg.argon2_memory_kib = 8;
	app.cfg.argon2_iterations = 1;
	app.cfg.db_map_size_mb = 8;
	app.cfg.db_map_max_mb = 64;
	app.cfg.max_body = 16384;
	/* The clock stands still here: a lockout would last for ever and
	 * hide every path behind it. */
	app.cfg.lockout_threshold = 1000000;
	app.cfg.lockout_account_threshold = 1000000;
	app.conf_ok = 1;
	app.now = fixed_now;
	sec_dummy_hash(app.dummy_hash, &app.cfg);
	if (store_open(&app.store, &app.cfg, STORE_CREATE, err,
	    sizeof(err)) != STORE_OK) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	memset(&u, 0, sizeof(u));
	strcpy(u.units[0], "HQ");
	strcpy(u.units[1], "EU");
	u.nunits = 2;
	if (sec_pwhash(u.pwhash, "pw", 2, &app.cfg) != 0 ||
	    store_user_add(app.store, "ACME", "alice", &u) != STORE_OK)
		abort();
	memset(&ak, 0, sizeof(ak));
	strcpy(ak.org, "ACME");
	strcpy(ak.user, "alice");
	sec_sha256(d, FUZZ_APIKEY, strlen(FUZZ_APIKEY));
	store_apikey_put(app.store, d, &ak, 1);
	memset(&ck, 0, sizeof(ck));
	strcpy(ck.org, "ACME");
	strcpy(ck.app, "shop");
	strcpy(ck.units[0], "HQ");
	ck.nunits = 1;
	sec_sha256(d, FUZZ_CONSUMER, strlen(FUZZ_CONSUMER));
	store_consumer_put(app.store, d, &ck, 1);
	memset(&at, 0, sizeof(at));
	strcpy(at.contact, "C-1");
	sec_sha256(d, "CODE-1", 6);
	store_access_add(app.store, "ACME", d, NULL, &at);
	if (sec_pwhash(at.passhash, "1234", 4, &app.cfg) != 0)
		abort();
	store_access_add(app.store, "ACME", NULL, "card", &at);
	return &app;
}

#define NPARAMS 32

void
fuzz_serve(const char *params, size_t plen, const char *body, size_t blen)
{
	static struct memio	 m;
	struct http_io		 io = memio_io(&m, 0);
	const char		*pv[2 * NPARAMS + 1];
	char			*copy, *line, *next, *eq;
	size_t			 n = 0;

	if ((copy = malloc(plen + 1)) == NULL)
		return;
	memcpy(copy, params, plen);
	copy[plen] = '\0';	/* a NUL inside ends the params: as CGI */
	for (line = copy; line != NULL && n < 2 * NPARAMS; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((eq = strchr(line, '=')) == NULL)
			continue;
		*eq = '\0';
		pv[n++] = line;
		pv[n++] = eq + 1;
	}
	pv[n] = NULL;
	m.params = pv;
	m.body = body;
	m.blen = blen;
	m.pos = m.olen = 0;
	http_serve(fuzz_app(), &io);
	if (m.olen == 0)
		abort();	/* every request gets an answer */
	free(copy);
}
