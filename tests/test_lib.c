/*
 * libcrmauth as a threaded program uses it: any number of handles, in
 * any threads, one LMDB environment per process; no umask change.
 *
 * This program links libcrmauth and, for making the store and tokens,
 * the core it is made of: two copies of the store code, each with its
 * own table of open environments.  So everything the core does to the
 * store is done in a child process, as crmauthctl would.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crmauth.h"
#include "unit.h"

/* The jti tok_issue wrote last. */
static char	 issued_jti[CRM_JTI_HEX + 1];

static char		*dir, *conf;
static struct config	 cfg;
static char		 good[CRM_TOKEN_MAX + 1], gone[CRM_TOKEN_MAX + 1];

/* In a child: make the store, a user, and two tokens, one released. */
static void
make_store(void)
{
	struct store		*st;
	struct sigkey		 k;
	struct user_rec		 u;
	struct claims		 c;
	struct tok_subject	 s = { "alice", "ACME", "HQ", NULL, NULL };
	char			 err[CRM_ERR_MAX], *t;
	int			 fds[2], status;
	pid_t			 pid;
	int64_t			 now = (int64_t)time(NULL);

	/* Not yet inside a test: failures abort. */
	if (pipe(fds) != 0)
		abort();
	if ((pid = fork()) == 0) {
		close(fds[0]);
		if (store_open(&st, &cfg, STORE_CREATE, err, sizeof(err)) !=
		    STORE_OK || store_sigkey_current(st, &k) != STORE_OK)
			_exit(1);
		memset(&u, 0, sizeof(u));
		strcpy(u.pwhash, "x");
		strcpy(u.units[0], "HQ");
		u.nunits = 1;
		u.created = now - 10;
		if (store_user_add(st, "ACME", "alice", &u) != STORE_OK)
			_exit(2);
		for (int i = 0; i < 2; i++) {
			if (tok_issue(&k, &s, now, 7200, &t, issued_jti) != TOK_OK)
				_exit(3);
			dprintf(fds[1], "%s\n", t);
			if (i == 1 && (tok_verify(t, strlen(t), tok_store_key,
			    st, now, 7200, &c) != TOK_OK ||
			    store_release(st, c.jti_bin, c.exp, now) !=
			    STORE_OK))
				_exit(4);
			free(t);
		}
		store_close(st);
		_exit(0);
	}
	close(fds[1]);
	{
		FILE *f = fdopen(fds[0], "r");

		if (f == NULL || fgets(good, sizeof(good), f) == NULL ||
		    fgets(gone, sizeof(gone), f) == NULL)
			abort();
		fclose(f);
	}
	good[strcspn(good, "\n")] = '\0';
	gone[strcspn(gone, "\n")] = '\0';
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "test_lib: making the store failed\n");
		abort();
	}
}

/* Can another process take the exclusive lock a process takes on byte 0
 * of lock.mdb when it opens the store alone (as LMDB does)? */
static int
others_have_it(void)
{
	char		 lock[1100];
	struct flock	 fl;
	int		 fd, status, busy;
	pid_t		 pid;

	snprintf(lock, sizeof(lock), "%s/lock.mdb", cfg.db_path);
	if ((pid = fork()) == 0) {
		if ((fd = open(lock, O_RDWR)) == -1)
			_exit(2);
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		fl.l_len = 1;
		busy = fcntl(fd, F_SETLK, &fl) == -1 &&
		    (errno == EAGAIN || errno == EACCES);
		_exit(busy ? 1 : 0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) == 2)
		return -1;
	return WEXITSTATUS(status);
}

/*
 * Security regression: with one LMDB environment per handle, closing a
 * handle closed its environment's lock file, which drops every lock the
 * process holds on it (POSIX): the other handle's process then looked
 * unused, and a newcomer would reset the reader table under it.
 */
static void
t_close_keeps_lock(void)
{
	struct crmauth		*a, *b;
	struct crmauth_claims	 c;
	char			 err[CRM_ERR_MAX];

	CU_ASSERT_EQUAL(others_have_it(), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a = crmauth_open(conf, err, sizeof(err)));
	CU_ASSERT_PTR_NOT_NULL_FATAL(b = crmauth_open(conf, err, sizeof(err)));
	CU_ASSERT_EQUAL(others_have_it(), 1);
	CU_ASSERT_EQUAL(crmauth_verify(a, good, strlen(good), &c), CRMAUTH_OK);
	crmauth_close(a);
	CU_ASSERT_EQUAL(others_have_it(), 1);	/* b still holds it */
	CU_ASSERT_EQUAL(crmauth_verify(b, good, strlen(good), &c), CRMAUTH_OK);
	CU_ASSERT_STRING_EQUAL(c.usr, "alice");
	CU_ASSERT_EQUAL(crmauth_verify(b, gone, strlen(gone), &c),
	    CRMAUTH_RELEASED);
	crmauth_close(b);
	CU_ASSERT_EQUAL(others_have_it(), 0);
}

/*
 * Security regression: a child that closes a handle it inherited across
 * fork() closed the parent's lock file descriptor in itself, which drops
 * every lock the child holds on that file, its own handle's included.
 */
static void
t_fork_close_inherited(void)
{
	struct crmauth	*inherited, *own;
	char		 err[CRM_ERR_MAX], b = 0;
	int		 status, go[2];
	pid_t		 pid;

	CU_ASSERT_FATAL(pipe(go) == 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(inherited = crmauth_open(conf, err,
	    sizeof(err)));
	if ((pid = fork()) == 0) {
		int rc;

		close(go[1]);
		if ((own = crmauth_open(conf, err, sizeof(err))) == NULL)
			_exit(2);
		crmauth_close(inherited);
		/* Once the parent holds nothing, the child still has the
		 * store open through its own handle. */
		if (read(go[0], &b, 1) != 1)
			_exit(3);
		rc = others_have_it() == 1 ? 0 : 1;
		crmauth_close(own);
		_exit(rc);
	}
	close(go[0]);
	crmauth_close(inherited);	/* the parent holds nothing now */
	CU_ASSERT_EQUAL(write(go[1], &b, 1), 1);
	close(go[1]);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* crmauth_open changes no process-wide state: the umask stays, and a
 * lock file it makes still gets the store's mode. */
static void
t_no_umask_change(void)
{
	struct crmauth	*a;
	struct stat	 sb;
	char		 err[CRM_ERR_MAX], lock[1100];
	mode_t		 before;

	snprintf(lock, sizeof(lock), "%s/lock.mdb", cfg.db_path);
	CU_ASSERT_EQUAL_FATAL(chmod(cfg.db_path, 0770), 0);	/* shared */
	CU_ASSERT_EQUAL(unlink(lock), 0);
	before = umask(077);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a = crmauth_open(conf, err, sizeof(err)));
	CU_ASSERT_EQUAL(umask(before), 077);
	CU_ASSERT_EQUAL(stat(lock, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 0777, 0660);
	crmauth_close(a);
	chmod(cfg.db_path, 0700);
}

struct worker {
	int	 n, bad;
};

static volatile int writer_done;

/* Each thread opens its own handles and checks both tokens, at least n
 * times and until the writer is done, closing and opening handles as it
 * goes. */
static void *
work(void *arg)
{
	struct worker		*w = arg;
	struct crmauth		*h = NULL;
	struct crmauth_claims	 c;
	char			 err[CRM_ERR_MAX];

	for (int i = 0; i < w->n || !__atomic_load_n(&writer_done,
	    __ATOMIC_ACQUIRE); i++) {
		if (h == NULL && (h = crmauth_open(conf, err,
		    sizeof(err))) == NULL) {
			w->bad++;
			break;
		}
		if (crmauth_verify(h, good, strlen(good), &c) != CRMAUTH_OK ||
		    strcmp(c.usr, "alice") != 0 ||
		    crmauth_verify(h, gone, strlen(gone), &c) !=
		    CRMAUTH_RELEASED)
			w->bad++;
		if (i % 50 == 49) {
			crmauth_close(h);
			h = NULL;
		}
	}
	crmauth_close(h);
	return NULL;
}

/* Threads checking while another process writes, and grows the map under
 * them: every answer right. */
static void
t_threads(void)
{
	pthread_t	 th[6];
	struct worker	 w[6];
	struct crmauth	*keep;
	char		 err[CRM_ERR_MAX];
	int		 status;
	pid_t		 pid;

	CU_ASSERT_PTR_NOT_NULL_FATAL(keep = crmauth_open(conf, err,
	    sizeof(err)));
	if ((pid = fork()) == 0) {
		struct store	*st;
		struct user_rec	 u;
		char		 name[32];

		if (store_open(&st, &cfg, 0, err, sizeof(err)) != STORE_OK)
			_exit(1);
		memset(&u, 0, sizeof(u));
		memset(u.pwhash, 'h', 100);
		for (int i = 0; i < CRM_UNITS_MAX; i++)
			memset(u.units[i], 'a' + i % 26, 200);
		u.nunits = CRM_UNITS_MAX;
		for (int i = 0; i < 1500; i++) {
			snprintf(name, sizeof(name), "user%d", i);
			if (store_user_add(st, "ACME", name, &u) != STORE_OK)
				_exit(2);
		}
		store_close(st);
		_exit(0);
	}
	for (int i = 0; i < 6; i++) {
		w[i] = (struct worker){ 2000, 0 };
		CU_ASSERT_EQUAL(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	__atomic_store_n(&writer_done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(w[i].bad, 0);
	}
	crmauth_close(keep);
}

static CU_TestInfo tests[] = {
	{ "security: closing one handle keeps the process's lock",
	    t_close_keeps_lock },
	{ "security: a child closing an inherited handle keeps its lock",
	    t_fork_close_inherited },
	{ "crmauth_open leaves the umask alone", t_no_umask_change },
	{ "handles in six threads while another process grows the map",
	    t_threads },
	CU_TEST_INFO_NULL,
};

static int
setup_and_run(void)
{
	char	 text[1200];
	int	 rc;

	dir = unit_tmpdir();
	unit_config(&cfg, dir);
	/* A small map, so that the writer grows it under the readers. */
	cfg.db_map_size_mb = 1;
	snprintf(text, sizeof(text), "db_path = %s\ndb_map_size_mb = 1\n",
	    cfg.db_path);
	conf = unit_write(dir, "crmauth.conf", text);
	if (sec_init() == -1)
		return 99;
	make_store();
	rc = unit_run("lib", tests);
	unit_rmtree(dir);
	free(conf);
	free(dir);
	return rc;
}

int
main(void)
{
	return setup_and_run();
}
