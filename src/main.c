/*
 * crmauth.fcgi: the FastCGI responder, which also answers one request
 * when started as a plain CGI program.
 *
 * FastCGI (a listening socket on fd 0, as mod_fcgid, mod_fastcgi and
 * spawn-fcgi give it): serve requests in a loop until SIGTERM, SIGUSR1
 * or SIGINT, finishing the request in hand first.
 * CGI (GATEWAY_INTERFACE set): serve one request.  argv is ignored then:
 * RFC 3875 §4.4 lets a server put query-string words there.
 * With -w N, a supervisor forks N workers that accept on the same fd 0,
 * restarts any that dies, and on SIGTERM passes it on and waits for them:
 * for systemd (StandardInput=socket) and spawn-fcgi -n, whose own fork
 * mode (-F) discards stderr and never restarts a worker.
 * Otherwise (a terminal): -t checks the configuration and store.
 */
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "extern.h"

#define WORKERS_MAX 64

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
	FCGX_ShutdownPending();
}

static int64_t
now_real(void)
{
	return (int64_t)time(NULL);
}

/* ---- FastCGI I/O ----------------------------------------------------------- */

static const char *
fcgi_param(void *ctx, const char *name)
{
	return FCGX_GetParam(name, ((FCGX_Request *)ctx)->envp);
}

static ssize_t
fcgi_read(void *ctx, void *buf, size_t n)
{
	int chunk = n > 65536 ? 65536 : (int)n;

	return FCGX_GetStr(buf, chunk, ((FCGX_Request *)ctx)->in);
}

static int
fcgi_write(void *ctx, const void *buf, size_t n)
{
	FCGX_Request *r = ctx;

	if (FCGX_PutStr(buf, (int)n, r->out) != (int)n)
		return -1;
	return 0;
}

/* ---- CGI I/O ---------------------------------------------------------------- */

static const char *
cgi_param(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

static ssize_t
cgi_read(void *ctx, void *buf, size_t n)
{
	size_t got;

	(void)ctx;
	got = fread(buf, 1, n, stdin);
	if (got == 0 && ferror(stdin))
		return -1;
	return (ssize_t)got;
}

static int
cgi_write(void *ctx, const void *buf, size_t n)
{
	(void)ctx;
	if (fwrite(buf, 1, n, stdout) != n || fflush(stdout) != 0)
		return -1;
	return 0;
}

/* ---- set-up ------------------------------------------------------------------ */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: crmauth.fcgi [-c FILE] [-w N] (started by a FastCGI process "
	    "manager or as CGI)\n"
	    "       crmauth.fcgi [-c FILE] -t  check the configuration and "
	    "the store, then exit\n"
	    "       crmauth.fcgi -V | --version  print the version\n"
	    "       crmauth.fcgi -h | --help     print this\n"
	    "  -w N  supervise N worker processes on the FastCGI socket "
	    "(1-%d)\n"
	    "Configuration: -c FILE, else $CRMAUTH_CONF, else %s\n",
	    WORKERS_MAX, config_place());
}

/* Read the configuration into app; on failure log one line and leave
 * app->conf_ok 0, so that every request answers 503. */
static void
app_init(struct app *app, const char *conf_arg)
{
	char		 err[CRM_ERR_MAX];

	memset(app, 0, sizeof(*app));
	app->now = now_real;
	audit_init(&app->audit, "off");	/* until the file says */
	config_defaults(&app->cfg);
	if (config_find(&app->cfg, conf_arg, err, sizeof(err)) == -1) {
		log_err("%s", err);
		return;
	}
	sec_dummy_hash(app->dummy_hash, &app->cfg);
	audit_init(&app->audit, app->cfg.audit_log);
	app->conf_ok = 1;
}

static int
check_only(struct app *app)
{
	char		 err[CRM_ERR_MAX];
	enum store_err	 e;

	if (!app->conf_ok)
		return 1;
	e = store_open(&app->store, &app->cfg, 0, err, sizeof(err));
	if (e != STORE_OK) {
		fprintf(stderr, "crmauth.fcgi: %s\n", err);
		return 1;
	}
	/* What health asks: readable, and able to sign (PostgreSQL: the
	 * current key unseals with this node's wrap.key). */
	if ((e = store_ping(app->store)) != STORE_OK) {
		fprintf(stderr, "crmauth.fcgi: %s: %s\n", store_strerror(e),
		    store_detail(app->store));
		return 1;
	}
	printf("configuration %s: ok\nstore %s: ok\n", app->cfg.path,
	    app->cfg.db_path);
	return 0;
}

static void
catch_signals(void (*fn)(int))
{
	struct sigaction sa;

	/* No SA_RESTART: a signal must wake accept(2) and wait(2). */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* Serve until a signal asks us to stop, finishing the request in hand. */
static int
serve_fcgi(struct app *app)
{
	FCGX_Request		 req;
	struct http_io		 io = { &req, fcgi_param, fcgi_read,
				    fcgi_write, 0 };

	catch_signals(on_signal);
	if (FCGX_InitRequest(&req, 0, 0) != 0) {
		log_err("FCGX_InitRequest failed");
		return 1;
	}
	/* The event of a request is written once its answer is on its
	 * way (FCGX_Finish_r sends it). */
	audit_defer(&app->audit);
	while (!stop && FCGX_Accept_r(&req) >= 0) {
		if (req.role == FCGI_AUTHORIZER)
			http_authorize(app, &io);
		else
			http_serve(app, &io);
		FCGX_Finish_r(&req);
		audit_flush(&app->audit);
	}
	audit_flush(&app->audit);	/* whatever way the loop ended */
	FCGX_Free(&req, 1);
	return 0;
}

static void
on_supervisor_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static pid_t
start_worker(struct app *app)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(serve_fcgi(app));
	if (pid == -1)
		log_err("fork: %s", strerror(errno));
	return pid;
}

/*
 * Keep n workers serving fd 0.  A worker that dies is logged and
 * replaced (after a second if it died young, so that a broken set-up
 * does not spin).  On SIGTERM, SIGINT or SIGUSR1: pass SIGTERM on, wait
 * for every worker to finish its request, exit 0.
 */
static int
supervise(struct app *app, int n)
{
	pid_t	 pids[WORKERS_MAX];
	time_t	 born[WORKERS_MAX];
	pid_t	 pid;
	int	 status, i, alive = 0;

	catch_signals(on_supervisor_signal);
	for (i = 0; i < n; i++) {
		pids[i] = start_worker(app);
		born[i] = time(NULL);
		alive += pids[i] > 0;
	}
	while (!stop && alive > 0) {
		if ((pid = wait(&status)) == -1)
			continue;	/* EINTR: look at stop */
		for (i = 0; i < n && pids[i] != pid; i++)
			;
		if (i == n)
			continue;
		if (WIFSIGNALED(status))
			log_err("worker %ld killed by signal %d; restarting",
			    (long)pid, WTERMSIG(status));
		else
			log_err("worker %ld exited with %d; restarting",
			    (long)pid, WEXITSTATUS(status));
		if (time(NULL) - born[i] < 1 && !stop)
			sleep(1);
		if (stop) {
			pids[i] = -1;
			alive--;
			break;
		}
		pids[i] = start_worker(app);
		born[i] = time(NULL);
		if (pids[i] <= 0)
			alive--;
	}
	for (i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	while (wait(&status) > 0 || errno == EINTR)
		;
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct app	 app;
	const char	*conf = NULL;
	int		 ch, check = 0, cgi, rc = 0, workers = 0;
	long long	 v;
	const char	*why;
	struct http_io	 cgi_io = { NULL, cgi_param, cgi_read, cgi_write, 1 };
	char		 marker[1024 + 32];

	log_init("crmauth.fcgi");
	if (sec_init() == -1) {
		log_err("libsodium failed to initialise");
		return 1;
	}
	/* FCGX_IsCGI() initialises libfcgi: a socket on fd 0 is FastCGI. */
	cgi = FCGX_IsCGI();
	if (cgi && getenv("GATEWAY_INTERFACE") != NULL) {
		app_init(&app, NULL);
		app.cgi = 1;
		/* A process per request: a sink that cannot be written is
		 * said once a minute, not once per request. */
		if (app.conf_ok && snprintf(marker, sizeof(marker),
		    "%s/audit-warned", app.cfg.db_path) < (int)sizeof(marker))
			audit_marker(&app.audit, marker);
		http_serve(&app, &cgi_io);
		store_close(app.store);
		return 0;
	}
	while ((ch = getopt_long(argc, argv, "c:htVw:", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'w':
			if (parse_int(optarg, 1, WORKERS_MAX, &v, &why) == -1) {
				fprintf(stderr, "crmauth.fcgi: -w %s %s (1 to "
				    "%d)\n", optarg, why, WORKERS_MAX);
				return 2;
			}
			workers = (int)v;
			break;
		case 't':
			check = 1;
			break;
		case 'V':
			printf("crmauth.fcgi %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (cgi && !check) {
		usage(stderr);
		return 2;
	}
	app_init(&app, conf);
	if (check)
		rc = check_only(&app);
	else if (workers > 0)
		rc = supervise(&app, workers);
	else
		rc = serve_fcgi(&app);
	store_close(app.store);
	return rc;
}
