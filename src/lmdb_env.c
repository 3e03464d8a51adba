/*
 * LMDB environments, one per path per process, shared by reference
 * (lmdb_env.h says why), and the transaction loop every store operation runs
 * in.  Threads: any number of handles may use one environment at once;
 * a map resize waits until no transaction of this process is running
 * (LMDB requires that), which the remap lock ensures.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"
#include "lmdb_env.h"

#define MAXREADERS	256	/* the same in every process (lock file) */
#define MAXDBS		16
#define DBNAME_MAX	32

struct lmdb {
	MDB_env		*env;
	size_t		 map_max;
	pthread_rwlock_t remap;		/* txns shared, resizing exclusive */
	dev_t		 dev;
	ino_t		 ino;
	pid_t		 pid;
	unsigned	 flags;
	unsigned	 refs;
	struct {
		char	 name[DBNAME_MAX];
		MDB_dbi	 dbi;
	}		 dbis[MAXDBS];
	size_t		 ndbis;
	struct lmdb	*next;
};

/* Every environment this process has open, and their DBI tables. */
static pthread_mutex_t	 reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t	 reg_once = PTHREAD_ONCE_INIT;
static struct lmdb	*reg;

/* A fork while another thread holds reg_lock would leave it locked in
 * the child for ever. */
static void
reg_prepare(void)
{
	pthread_mutex_lock(&reg_lock);
}

static void
reg_release(void)
{
	pthread_mutex_unlock(&reg_lock);
}

static void
reg_init(void)
{
	pthread_atfork(reg_prepare, reg_release, reg_release);
}

/* Make file with mode exactly, unless it exists. */
static void
precreate(const char *file, mode_t mode)
{
	int fd;

	if ((fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
	    mode)) == -1)
		return;		/* there already, or LMDB will say why */
	fchmod(fd, mode);	/* what the umask took away */
	close(fd);
}

int
lmdb_open_raw(MDB_env **env, const char *path, unsigned flags, mode_t mode)
{
	int rc;

	if ((rc = mdb_env_create(env)) != 0)
		return rc;
	if ((rc = mdb_env_set_maxdbs(*env, MAXDBS)) != 0 ||
	    (rc = mdb_env_set_maxreaders(*env, MAXREADERS)) != 0 ||
	    (rc = mdb_env_open(*env, path, flags, mode)) != 0) {
		mdb_env_close(*env);
		*env = NULL;
	}
	return rc;
}

int
lmdb_open(struct lmdb **out, const char *path, unsigned flags, mode_t mode,
    size_t mapsize, size_t mapmax)
{
	struct lmdb	*db;
	struct stat	 sb;
	char		 data[1100], lock[1100];
	int		 rc, dead, n1, n2;

	*out = NULL;
	if (flags & MDB_NOSUBDIR) {
		n1 = snprintf(data, sizeof(data), "%s", path);
		n2 = snprintf(lock, sizeof(lock), "%s-lock", path);
	} else {
		n1 = snprintf(data, sizeof(data), "%s/data.mdb", path);
		n2 = snprintf(lock, sizeof(lock), "%s/lock.mdb", path);
	}
	if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(data) ||
	    (size_t)n2 >= sizeof(lock))
		return ENAMETOOLONG;
	if (!(flags & MDB_RDONLY))
		precreate(data, mode);
	precreate(lock, mode);
	if (stat(path, &sb) == -1)
		return errno;

	pthread_once(&reg_once, reg_init);
	pthread_mutex_lock(&reg_lock);
	for (db = reg; db != NULL; db = db->next) {
		if (db->dev != sb.st_dev || db->ino != sb.st_ino ||
		    db->pid != getpid())
			continue;
		if ((db->flags & MDB_RDONLY) && !(flags & MDB_RDONLY)) {
			pthread_mutex_unlock(&reg_lock);
			return EBUSY;
		}
		db->refs++;
		pthread_mutex_unlock(&reg_lock);
		*out = db;
		return 0;
	}
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		pthread_mutex_unlock(&reg_lock);
		return ENOMEM;
	}
	if ((rc = mdb_env_create(&db->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(db->env, MAXDBS)) != 0 ||
	    (rc = mdb_env_set_maxreaders(db->env, MAXREADERS)) != 0 ||
	    (rc = mdb_env_set_mapsize(db->env, mapsize)) != 0 ||
	    /* MDB_NOTLS: a handle's kept read transaction owns its reader
	     * slot, whichever thread renews it. */
	    (rc = mdb_env_open(db->env, path, flags | MDB_NOTLS, mode)) != 0) {
		if (db->env != NULL)
			mdb_env_close(db->env);
		free(db);
		pthread_mutex_unlock(&reg_lock);
		return rc;
	}
	/* Slots left by processes killed while reading. */
	mdb_reader_check(db->env, &dead);
	pthread_rwlock_init(&db->remap, NULL);
	db->map_max = mapmax;
	db->dev = sb.st_dev;
	db->ino = sb.st_ino;
	db->pid = getpid();
	db->flags = flags;
	db->refs = 1;
	db->next = reg;
	reg = db;
	pthread_mutex_unlock(&reg_lock);
	*out = db;
	return 0;
}

void
lmdb_close(struct lmdb *db)
{
	struct lmdb **pp;

	if (db == NULL)
		return;
	pthread_mutex_lock(&reg_lock);
	if (--db->refs > 0) {
		pthread_mutex_unlock(&reg_lock);
		return;
	}
	for (pp = &reg; *pp != NULL; pp = &(*pp)->next)
		if (*pp == db) {
			*pp = db->next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	/*
	 * One inherited across fork() is the parent's: closing its lock
	 * file here would drop every lock this process holds on that file,
	 * its own environment's included.  Leave its descriptors be.
	 */
	if (db->pid == getpid())
		mdb_env_close(db->env);
	pthread_rwlock_destroy(&db->remap);
	free(db);
}

MDB_env *
lmdb_env(const struct lmdb *db)
{
	return db->env;
}

int
lmdb_dbis(struct lmdb *db, const char *const names[], MDB_dbi dbis[],
    size_t n, int create)
{
	MDB_txn	*txn = NULL;
	size_t	 i, j;
	int	 rc = 0;

	/* mdb_dbi_open must not run in two transactions at once. */
	pthread_mutex_lock(&reg_lock);
	pthread_rwlock_rdlock(&db->remap);
	for (i = 0; i < n; i++) {
		for (j = 0; j < db->ndbis; j++)
			if (strcmp(db->dbis[j].name, names[i]) == 0)
				break;
		if (j < db->ndbis) {
			dbis[i] = db->dbis[j].dbi;
			continue;
		}
		if (db->ndbis == MAXDBS || strlen(names[i]) >= DBNAME_MAX) {
			rc = EINVAL;
			break;
		}
		if (txn == NULL && (rc = mdb_txn_begin(db->env, NULL,
		    create ? 0 : MDB_RDONLY, &txn)) != 0)
			break;
		if ((rc = mdb_dbi_open(txn, names[i], create ? MDB_CREATE : 0,
		    &dbis[i])) != 0)
			break;
	}
	/* Committed, even read-only: handles opened in an aborted
	 * transaction are closed again. */
	if (txn != NULL) {
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc == 0)
		for (i = 0; i < n; i++) {
			for (j = 0; j < db->ndbis; j++)
				if (strcmp(db->dbis[j].name, names[i]) == 0)
					break;
			if (j == db->ndbis) {
				snprintf(db->dbis[j].name, DBNAME_MAX, "%s",
				    names[i]);
				db->dbis[j].dbi = dbis[i];
				db->ndbis++;
			}
		}
	pthread_rwlock_unlock(&db->remap);
	pthread_mutex_unlock(&reg_lock);
	return rc;
}

int
lmdb_prune_index(MDB_txn *txn, MDB_dbi index, MDB_dbi db, int64_t now,
    size_t minkey, size_t maxkey, size_t limit, size_t *n)
{
	MDB_cursor	*c;
	MDB_val		 key, val, rk;
	int		 rc;

	*n = 0;
	if ((rc = mdb_cursor_open(txn, index, &c)) != 0)
		return rc;
	while ((limit == 0 || *n < limit) &&
	    (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST)) == 0) {
		if (key.mv_size < 8 + minkey || key.mv_size > 8 + maxkey) {
			rc = MDB_CORRUPTED;
			break;
		}
		if ((int64_t)get_be64(key.mv_data) > now)
			break;
		rk.mv_size = key.mv_size - 8;
		rk.mv_data = (unsigned char *)key.mv_data + 8;
		rc = mdb_del(txn, db, &rk, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		(*n)++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

size_t
lmdb_mapsize(struct lmdb *db)
{
	MDB_envinfo info;

	mdb_env_info(db->env, &info);
	return info.me_mapsize;
}

/* Adopt the size another process grew the map to (newsize 0), or double
 * ours up to map_max.  Waits for this process's transactions to end.
 * 0, or -1 when already at the maximum. */
static int
remap(struct lmdb *db, int grow)
{
	size_t	 cur, next;
	int	 rc = 0;

	pthread_rwlock_wrlock(&db->remap);
	if (!grow)
		mdb_env_set_mapsize(db->env, 0);
	else if ((cur = lmdb_mapsize(db)) >= db->map_max)
		rc = -1;
	else {
		next = cur > db->map_max / 2 ? db->map_max : cur * 2;
		if (mdb_env_set_mapsize(db->env, next) != 0)
			rc = -1;
		else
			log_err("store: map grown from %zu to %zu MiB",
			    cur >> 20, next >> 20);
	}
	pthread_rwlock_unlock(&db->remap);
	return rc;
}

int
lmdb_run(struct lmdb *db, int write, lmdb_fn fn, void *arg, MDB_txn **kept)
{
	MDB_txn	*txn = NULL;
	int	 rc, tries, dead;

	for (tries = 0; tries < 32; tries++) {
		pthread_rwlock_rdlock(&db->remap);
		/* A read renews the handle (and reader slot) the last read
		 * left; if that fails, it is dropped and a new one begun. */
		rc = -1;
		if (!write && kept != NULL && (txn = *kept) != NULL) {
			*kept = NULL;
			if ((rc = mdb_txn_renew(txn)) != 0)
				mdb_txn_abort(txn);
		}
		if (rc != 0)
			rc = mdb_txn_begin(db->env, NULL,
			    write ? 0 : MDB_RDONLY, &txn);
		if (rc != 0) {
			pthread_rwlock_unlock(&db->remap);
			if (rc == MDB_MAP_RESIZED) {
				remap(db, 0);
				continue;
			}
			if (rc == MDB_READERS_FULL && tries == 0) {
				mdb_reader_check(db->env, &dead);
				continue;
			}
			return rc;
		}
		rc = fn(txn, arg);
		if (!write) {
			if (kept != NULL) {
				mdb_txn_reset(txn);
				*kept = txn;
			} else
				mdb_txn_abort(txn);
			pthread_rwlock_unlock(&db->remap);
			return rc;
		}
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		pthread_rwlock_unlock(&db->remap);
		if (rc == MDB_MAP_FULL && remap(db, 1) == 0)
			continue;
		return rc;
	}
	return EAGAIN;		/* too many retries */
}
