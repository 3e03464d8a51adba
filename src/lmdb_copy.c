/*
 * Whole-store copies of the LMDB store (lmdb_store.h): backup (a
 * compacted copy taken while it serves), restore (swapped in under
 * LMDB's own lock, carrying over what must not roll back), and export and
 * import (every record out from one snapshot, and in, in one write
 * transaction; export.c reads and checks the file).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "extern.h"
#include "lmdb_env.h"
#include "lmdb_store.h"

/* ---- restore: what is carried over ------------------------------------------ */

/*
 * What a restore keeps of the store it replaces: it rolls users, keys
 * and access tokens back to the backup, but never brings back what was
 * revoked since, and never breaks what was issued since.  Read from the
 * store being replaced (src), written into the restored copy.
 */
struct carry_arg {
	MDB_txn		*src;		/* a read of the store being replaced */
	MDB_dbi		 s_released, s_users, s_apikeys, s_consumers;
	MDB_dbi		 s_sigkeys, s_meta, s_cutoffs;
	int64_t		 now;
	size_t		 n;		/* releases carried */
};

/* Every unexpired released id stays released. */
static int
carry_released(struct lstore *st, MDB_txn *txn, struct carry_arg *a)
{
	struct rel_arg	 r = { .now = a->now };
	MDB_cursor	*c;
	MDB_val		 key, val;
	int		 rc;

	if ((rc = mdb_cursor_open(a->src, a->s_released, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != CRM_JTI_BYTES || val.mv_size != 8) {
			rc = RC_CORRUPT;
			break;
		}
		r.jti = key.mv_data;
		r.exp = (int64_t)get_be64(val.mv_data);
		if (r.exp <= a->now)
			continue;
		if ((rc = lm_release_fn(st, txn, &r)) != 0)
			break;
		a->n++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The signing keys are those of the store replaced: a key retired since
 * the backup stays retired, and tokens signed since keep verifying. */
static int
carry_sigkeys(struct lstore *st, MDB_txn *txn, struct carry_arg *a)
{
	MDB_val	 mk = { 11, "current_kid" }, key, val;
	MDB_cursor *c;
	int	 rc;

	if ((rc = mdb_drop(txn, st->sigkeys, 0)) != 0 ||
	    (rc = mdb_cursor_open(a->src, a->s_sigkeys, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT))
		if ((rc = mdb_put(txn, st->sigkeys, &key, &val, 0)) != 0)
			break;
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return rc;
	if ((rc = mdb_get(a->src, a->s_meta, &mk, &val)) != 0)
		return rc == MDB_NOTFOUND ? RC_CORRUPT : rc;
	return mdb_put(txn, st->meta, &mk, &val, 0);
}

/* A user is disabled if either store says so, and refuses tokens up to
 * the later cutoff of the two; one deleted since the backup comes back,
 * but none of the tokens it had does. */
static int
carry_users(struct lstore *st, MDB_txn *txn, struct carry_arg *a)
{
	MDB_cursor	*c;
	MDB_val		 key, val, sv;
	struct user_rec	 u, s;
	char		 org[CRM_NAME_MAX + 1], user[CRM_NAME_MAX + 1];
	int		 rc, rc2;

	if ((rc = mdb_cursor_open(txn, st->users, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if ((rc = lm_user_decode(&val, &u, org, user)) != 0)
			break;
		if ((rc2 = mdb_get(a->src, a->s_users, &key, &sv)) == 0) {
			if ((rc = lm_user_decode(&sv, &s, NULL, NULL)) != 0)
				break;
			u.disabled |= s.disabled;
			if (s.not_before > u.not_before)
				u.not_before = s.not_before;
		} else if (rc2 == MDB_NOTFOUND)
			u.not_before = a->now;
		else {
			rc = rc2;
			break;
		}
		if ((rc = lm_user_write(st, txn, org, user, &u, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	explicit_bzero(&u, sizeof(u));
	explicit_bzero(&s, sizeof(s));
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* A key revoked since the backup, or gone (its user deleted), stays
 * revoked. */
static int
carry_keys(struct lstore *st, MDB_txn *txn, struct carry_arg *a, int consumer)
{
	struct apikey_rec	 ak;
	struct consumer_rec	 ck;
	struct key_arg		 k = { .consumer = consumer, .ak = &ak,
				    .ck = &ck };
	MDB_cursor		*c;
	MDB_val			 key, val, sv;
	int			 rc, rc2, revoked;

	if ((rc = mdb_cursor_open(txn, consumer ? st->consumers : st->apikeys,
	    &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (key.mv_size != CRM_DIGEST_BYTES ||
		    (rc = lm_key_decode(&val, &k)) != 0) {
			rc = RC_CORRUPT;
			break;
		}
		rc2 = mdb_get(a->src, consumer ? a->s_consumers : a->s_apikeys,
		    &key, &sv);
		if (rc2 == MDB_NOTFOUND)
			revoked = 1;
		else if (rc2 != 0) {
			rc = rc2;
			break;
		} else {
			struct apikey_rec	 sak;
			struct consumer_rec	 sck;
			struct key_arg		 sk = { .consumer = consumer,
						    .ak = &sak, .ck = &sck };

			if ((rc = lm_key_decode(&sv, &sk)) != 0)
				break;
			revoked = consumer ? sck.revoked : sak.revoked;
		}
		if (!revoked || (consumer ? ck.revoked : ak.revoked))
			continue;
		if (consumer)
			ck.revoked = 1;
		else
			ak.revoked = 1;
		k.digest = key.mv_data;
		if ((rc = lm_key_put(st, txn, &k, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* An application's cutoff: the later of the two. */
static int
carry_cutoffs(struct lstore *st, MDB_txn *txn, struct carry_arg *a)
{
	MDB_cursor	*c;
	MDB_val		 key, val, cur;
	int		 rc;

	if ((rc = mdb_cursor_open(a->src, a->s_cutoffs, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		if (val.mv_size != 8) {
			rc = RC_CORRUPT;
			break;
		}
		if (mdb_get(txn, st->cutoffs, &key, &cur) == 0 &&
		    cur.mv_size == 8 && get_be64(cur.mv_data) >=
		    get_be64(val.mv_data))
			continue;
		if ((rc = mdb_put(txn, st->cutoffs, &key, &val, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
carry_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct carry_arg	*a = p;
	int			 rc;

	if ((rc = carry_released(st, txn, a)) != 0 ||
	    (rc = carry_sigkeys(st, txn, a)) != 0 ||
	    (rc = carry_users(st, txn, a)) != 0 ||
	    (rc = carry_keys(st, txn, a, 0)) != 0 ||
	    (rc = carry_keys(st, txn, a, 1)) != 0)
		return rc;
	return carry_cutoffs(st, txn, a);
}

/* ---- backup and restore ---------------------------------------------------- */

/* a followed by b into buf; -1 if it does not fit. */
static int
path_join(char *buf, size_t size, const char *a, const char *b)
{
	int n = snprintf(buf, size, "%s%s", a, b);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

enum store_err
lmdb_backup(struct store *s, const char *file)
{
	struct lstore *st = (struct lstore *)s;
	char	 tmp[1100];
	int	 fd, rc = 0;

	/* A new file of our own beside the target (mode 0600, O_EXCL:
	 * nothing planted there is reused), then renamed over it: never a
	 * half-written backup, never a symlink followed. */
	if (path_join(tmp, sizeof(tmp), file, ".XXXXXX") == -1)
		return lm_map_rc(st, file, ENAMETOOLONG);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
		return lm_map_rc(st, file, errno);
	if (fchmod(fd, 0600) == -1)
		rc = errno;
	/* A consistent snapshot (one read transaction), compacted. */
	if (rc == 0)
		rc = mdb_env_copyfd2(lmdb_env(st->db), fd, MDB_CP_COMPACT);
	if (rc == 0 && fsync(fd) == -1)
		rc = errno;
	if (close(fd) == -1 && rc == 0)
		rc = errno;
	if (rc == 0 && rename(tmp, file) == -1)
		rc = errno;
	if (rc != 0) {
		unlink(tmp);
		return lm_map_rc(st, file, rc);
	}
	return STORE_OK;
}

/* Copy src to dst (created 0600), synced.  0, or -1 with err. */
static int
copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
	char	 buf[65536];
	ssize_t	 n;
	int	 in, out, rc = 0;

	/* A FIFO or device named as the backup: refused, not waited on. */
	if ((in = open_regular(src, 0, err, errlen)) == -1)
		return -1;
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = errno != 0 ? errno : EIO;
			break;
		}
	if (n < 0 && rc == 0)
		rc = errno;
	if (rc == 0 && fsync(out) == -1)
		rc = errno;
	if (close(out) == -1 && rc == 0)
		rc = errno;
	close(in);
	if (rc != 0) {
		snprintf(err, errlen, "copying %s: %s", src, strerror(rc));
		return -1;
	}
	return 0;
}

/*
 * LMDB's own lock: every process with the environment open holds a
 * shared fcntl lock on byte 0 of lock.mdb, and one that opens it takes
 * an exclusive lock if it can (then it resets the lock file) or waits
 * for a shared one.  So holding the exclusive lock ourselves proves that
 * no process has the store open (dead ones hold no lock), and makes
 * every process that opens it meanwhile wait until we let go.
 * A process finishing its request, or ending after a signal, lets go
 * within moments: we try for RESTORE_WAIT_MS.
 * The descriptor, or -1 with errno (EAGAIN: in use).
 */
#define RESTORE_WAIT_MS	2000
static int
lock_exclusive(const char *lock, mode_t mode)
{
	struct flock	 fl;
	struct timespec	 pause = { 0, 50 * 1000 * 1000 };
	int		 fd, saved, waited, rc;

	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, mode)) == -1)
		return -1;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 1;
	for (waited = 0; (rc = fcntl(fd, F_SETLK, &fl)) == -1 &&
	    (errno == EACCES || errno == EAGAIN) && waited < RESTORE_WAIT_MS;
	    waited += 50)
		nanosleep(&pause, NULL);
	if (rc == -1) {
		saved = errno == EACCES ? EAGAIN : errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Carry what must survive the restore (carry_fn) from the store at dir
 * (opened without its lock file: we hold the lock) into st.  0 or an
 * LMDB error. */
static int
carry_over(struct lstore *st, const char *dir)
{
	struct carry_arg	 a = { .now = (int64_t)time(NULL) };
	MDB_env			*env;
	int			 rc;

	if ((rc = lmdb_open_raw(&env, dir, MDB_RDONLY | MDB_NOLOCK,
	    0600)) != 0)
		return rc;
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &a.src)) == 0) {
		if ((rc = mdb_dbi_open(a.src, "released", 0,
		    &a.s_released)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "users", 0, &a.s_users)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "apikeys", 0,
		    &a.s_apikeys)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "consumer_keys", 0,
		    &a.s_consumers)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "signing_keys", 0,
		    &a.s_sigkeys)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "meta", 0, &a.s_meta)) == 0 &&
		    (rc = mdb_dbi_open(a.src, "cutoffs", 0,
		    &a.s_cutoffs)) == 0)
			rc = lm_txn_run(st, 1, "restore", carry_fn, &a) ==
			    STORE_OK ? 0 : EIO;
		mdb_txn_abort(a.src);
	}
	mdb_env_close(env);
	return rc;
}

enum store_err
lmdb_store_restore(const struct config *cfg, const char *file, char *err,
    size_t errlen)
{
	struct config	 bcfg = *cfg;
	struct lstore	*st = NULL;
	struct stat	 sb;
	MDB_env		*env;
	char		 dir[1100], tmp[1100], data[1100], lock[1100];
	mode_t		 mode = 0600;
	enum store_err	 e = STORE_ERROR;
	int		 rc, lfd = -1;

	/* The copy is made inside the store's directory, which is ours
	 * (its parent may not be), and renamed into place from there. */
	if (path_join(dir, sizeof(dir), cfg->db_path, "/restore.tmp") == -1 ||
	    path_join(tmp, sizeof(tmp), dir, "/data.mdb") == -1 ||
	    path_join(data, sizeof(data), cfg->db_path, "/data.mdb") == -1 ||
	    path_join(lock, sizeof(lock), cfg->db_path, "/lock.mdb") == -1 ||
	    strlen(dir) >= sizeof(bcfg.db_path)) {
		snprintf(err, errlen, "%s: path too long", cfg->db_path);
		return STORE_ERROR;
	}
	if (mkdir(cfg->db_path, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", cfg->db_path,
		    strerror(errno));
		return STORE_ERROR;
	}
	/* The backup must be a store of ours: open a copy of it. */
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return STORE_ERROR;
	}
	unlink(tmp);	/* left by an interrupted restore */
	if (copy_file(file, tmp, err, errlen) == -1)
		goto out;
	memcpy(bcfg.db_path, dir, strlen(dir) + 1);
	if ((e = lm_open(&st, &bcfg, 0, err, errlen)) != STORE_OK) {
		snprintf(err, errlen, "%s is not a crmauth store backup (%s)",
		    file, store_strerror(e));
		e = STORE_ERROR;
		goto out;
	}
	e = STORE_ERROR;
	if (stat(cfg->db_path, &sb) == 0 && (sb.st_mode & 070) != 0)
		mode = 0660;
	/* From here until the end, nobody else has the store open, and
	 * whoever tries waits. */
	if ((lfd = lock_exclusive(lock, mode)) == -1) {
		if (errno == EAGAIN)
			snprintf(err, errlen, "%s is in use (still after %d "
			    "s): stop the service (and every program using "
			    "it) first", cfg->db_path, RESTORE_WAIT_MS / 1000);
		else
			snprintf(err, errlen, "%s: %s", lock, strerror(errno));
		goto out;
	}
	/* What was released or revoked since the backup stays so; the
	 * signing keys stay the current ones.  A store too damaged to read
	 * is replaced all the same (that may be why it is restored). */
	if (stat(data, &sb) == 0 && (rc = carry_over(st, cfg->db_path)) != 0)
		log_err("warning: %s cannot be read (%s): releases, revocations "
		    "and signing keys since the backup are not kept",
		    cfg->db_path, rc == RC_CORRUPT ? "a damaged record" :
		    mdb_strerror(rc));
	lm_close(&st->base);
	st = NULL;
	/* Keep the replaced file's owner and mode (as root; else ours). */
	if (stat(data, &sb) == 0 && chown(tmp, sb.st_uid, sb.st_gid) == 0)
		chmod(tmp, sb.st_mode & 0777);
	if (rename(tmp, data) == -1) {
		snprintf(err, errlen, "%s: %s", data, strerror(errno));
		goto out;
	}
	if ((rc = open(cfg->db_path, O_RDONLY | O_DIRECTORY)) != -1) {
		fsync(rc);
		close(rc);
	}
	/*
	 * The lock file still describes the old data file.  Opened here,
	 * in the process that holds the exclusive lock, LMDB resets it
	 * from the new one; closing it lets the waiting processes in.
	 */
	if ((rc = lmdb_open_raw(&env, cfg->db_path, MDB_RDONLY, mode)) != 0) {
		snprintf(err, errlen, "%s: %s", cfg->db_path,
		    mdb_strerror(rc));
		goto out;
	}
	mdb_env_close(env);
	e = STORE_OK;
out:
	if (st != NULL)
		lm_close(&st->base);
	if (lfd != -1)
		close(lfd);
	unlink(tmp);
	if (path_join(tmp, sizeof(tmp), dir, "/lock.mdb") == 0)
		unlink(tmp);
	rmdir(dir);
	return e;
}

/* ---- whole-store copies: export and import ------------------------------- */

struct dump_arg {
	store_xrec_cb	 cb;
	void		*cbarg;
	struct xrec	*x;
	int64_t		 now;
	int		 stopped;
	char		 cur[CRM_KID_HEX + 1];	/* the current kid */
	unsigned char	(*cut)[CRM_DIGEST_BYTES];	/* cutoffs given */
	size_t		 ncut;
};

/* Each record of dbi through decode(), then the callback. */
static int
dump_db(struct lstore *st, MDB_txn *txn, MDB_dbi dbi, struct dump_arg *a,
    int (*decode)(struct lstore *, MDB_txn *, const MDB_val *,
    const MDB_val *, struct dump_arg *))
{
	MDB_cursor	*c;
	MDB_val		 key, val;
	int		 rc;

	if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0 &&
	    !a->stopped; rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		memset(a->x, 0, sizeof(*a->x));
		if ((rc = decode(st, txn, &key, &val, a)) == RC_SKIP)
			continue;
		if (rc != 0)
			break;
		a->stopped = a->cb(a->cbarg, a->x) != 0;
	}
	explicit_bzero(a->x, sizeof(*a->x));
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == RC_SKIP ? 0 : rc;
}

static int
dump_user(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	a->x->kind = XR_USER;
	return lm_user_decode(v, &a->x->u.user, a->x->org, a->x->name);
}

static int
dump_apikey(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	if (k->mv_size != CRM_DIGEST_BYTES)
		return RC_CORRUPT;
	a->x->kind = XR_APIKEY;
	memcpy(a->x->digest, k->mv_data, CRM_DIGEST_BYTES);
	return lm_apikey_decode(v, &a->x->u.apikey);
}

static int
dump_consumer(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	if (k->mv_size != CRM_DIGEST_BYTES)
		return RC_CORRUPT;
	a->x->kind = XR_CONSUMER;
	memcpy(a->x->digest, k->mv_data, CRM_DIGEST_BYTES);
	return lm_consumer_decode(v, &a->x->u.consumer);
}

static int
dump_access(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	struct access_owner	 o;
	int			 rc;

	if (k->mv_size != CRM_DIGEST_BYTES)
		return RC_CORRUPT;
	a->x->kind = XR_ACCESS;
	memcpy(a->x->id, k->mv_data, CRM_DIGEST_BYTES);
	if ((rc = lm_access_decode(v, &a->x->u.access, &o)) != 0)
		return rc;
	if ((a->x->access_kind = o.kind) == 0)
		return 0;
	memcpy(a->x->org, o.org, sizeof(o.org));
	if (o.kind == 'I')
		memcpy(a->x->name, o.lookup, sizeof(o.lookup));
	else if (sec_unhex(a->x->digest, CRM_DIGEST_BYTES, o.lookup,
	    strlen(o.lookup)) != 0)
		return RC_CORRUPT;
	return 0;
}

static int
dump_sigkey(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	struct sigkey	*key = &a->x->u.key;
	int		 rc;

	a->x->kind = XR_SIGKEY;
	if ((rc = lm_sigkey_decode(k, v, key)) != 0)
		return rc;
	key->current = strcmp(key->kid, a->cur) == 0;
	return !key->current && key->expires <= a->now ? RC_SKIP : 0;
}

static int
dump_released(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	if (k->mv_size != CRM_JTI_BYTES || v->mv_size != 8)
		return RC_CORRUPT;
	a->x->kind = XR_RELEASED;
	memcpy(a->x->u.rel.jti, k->mv_data, CRM_JTI_BYTES);
	a->x->u.rel.exp = (int64_t)get_be64(v->mv_data);
	return a->x->u.rel.exp <= a->now ? RC_SKIP : 0;	/* past */
}

/*
 * Cutoffs are keyed by a hash of (org, application): their names come
 * from the consumer keys, which are never deleted, so every cutoff has
 * one.  One that has not is reported, not left out.
 */
static int
dump_cutoff(struct lstore *st, MDB_txn *txn, const MDB_val *k,
    const MDB_val *v, struct dump_arg *a)
{
	struct consumer_rec	*ck = &a->x->u.consumer;
	unsigned char		 h[CRM_DIGEST_BYTES], (*more)[CRM_DIGEST_BYTES];
	int64_t			 cutoff;
	int			 rc;

	if ((rc = lm_consumer_decode(v, ck)) != 0)
		return rc;
	sec_tagged_hash(h, 'A', ck->org, ck->app, strlen(ck->app));
	for (size_t i = 0; i < a->ncut; i++)
		if (memcmp(a->cut[i], h, sizeof(h)) == 0)
			return RC_SKIP;		/* given already */
	if ((rc = lm_app_cutoff_get(st, txn, ck->org, ck->app, &cutoff)) != 0)
		return rc;
	if (cutoff == 0)
		return RC_SKIP;
	if ((more = reallocarray(a->cut, a->ncut + 1, sizeof(*a->cut))) ==
	    NULL)
		return ENOMEM;
	a->cut = more;
	memcpy(a->cut[a->ncut++], h, sizeof(h));
	a->x->kind = XR_CUTOFF;
	memcpy(a->x->org, ck->org, sizeof(ck->org));
	memcpy(a->x->name, ck->app, sizeof(ck->app));
	a->x->u.cutoff = cutoff;
	return 0;
}

static int
dump_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct dump_arg	*a = p;
	MDB_stat	 ms;
	int		 rc;

	if ((rc = lm_current_kid(st, txn, a->cur)) != 0 ||
	    (rc = dump_db(st, txn, st->users, a, dump_user)) != 0 ||
	    (rc = dump_db(st, txn, st->apikeys, a, dump_apikey)) != 0 ||
	    (rc = dump_db(st, txn, st->consumers, a, dump_consumer)) != 0 ||
	    (rc = dump_db(st, txn, st->access, a, dump_access)) != 0 ||
	    (rc = dump_db(st, txn, st->sigkeys, a, dump_sigkey)) != 0 ||
	    (rc = dump_db(st, txn, st->released, a, dump_released)) != 0 ||
	    (rc = dump_db(st, txn, st->consumers, a, dump_cutoff)) != 0)
		return rc;
	if (a->stopped)
		return 0;
	if ((rc = mdb_stat(txn, st->cutoffs, &ms)) != 0)
		return rc;
	if (ms.ms_entries != a->ncut) {
		snprintf(st->base.detail, sizeof(st->base.detail), "export: "
		    "%zu cutoff(s) belong to no consumer key's application",
		    (size_t)ms.ms_entries - a->ncut);
		return RC_STOP;
	}
	return 0;
}

enum store_err
lmdb_dump(struct store *s, store_xrec_cb cb, void *arg)
{
	struct lstore	*st = (struct lstore *)s;
	struct dump_arg	 a = { .cb = cb, .cbarg = arg,
			    .now = (int64_t)time(NULL) };
	enum store_err	 e;

	if ((a.x = calloc(1, sizeof(*a.x))) == NULL)
		return lm_map_rc(st, "export", ENOMEM);
	e = lm_txn_run(st, 0, "export", dump_fn, &a);
	free(a.x);
	free(a.cut);
	return e;
}

/* Import: what the store holds must be nothing but init's signing key. */
static int
load_empty(struct lstore *st, MDB_txn *txn)
{
	const MDB_dbi	 dbis[] = { st->users, st->apikeys, st->consumers,
			    st->access, st->released, st->cutoffs };
	MDB_val		 mk = { 11, "current_kid" };
	MDB_stat	 ms;
	int		 rc;

	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		if ((rc = mdb_stat(txn, dbis[i], &ms)) != 0)
			return rc;
		if (ms.ms_entries != 0)
			return RC_NOTEMPTY;
	}
	if ((rc = mdb_drop(txn, st->sigkeys, 0)) != 0)
		return rc;
	rc = mdb_del(txn, st->meta, &mk, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
load_one(struct lstore *st, MDB_txn *txn, const struct xrec *x)
{
	struct rec_out		 w;
	struct access_owner	 o;
	unsigned char		 v[8], ik[8 + CRM_JTI_BYTES];
	unsigned char		 kd[CRM_DIGEST_BYTES], id[CRM_DIGEST_BYTES];
	struct user_rec		 u;
	MDB_val			 key, val, empty = { 0, "" };
	MDB_val			 mk = { 11, "current_kid" };
	int64_t			 t;
	int			 rc;

	switch (x->kind) {
	case XR_USER:
		return lm_user_write(st, txn, x->org, x->name, &x->u.user,
		    MDB_NOOVERWRITE);
	case XR_APIKEY:
		/* Only a key whose user is in the file (above it): another
		 * would serve whoever is added later under that name. */
		if ((rc = lm_user_read(st, txn, x->u.apikey.org,
		    x->u.apikey.user, &u)) != 0) {
			explicit_bzero(&u, sizeof(u));
			return rc == MDB_NOTFOUND ? RC_NOUSER : rc;
		}
		explicit_bzero(&u, sizeof(u));
		lm_apikey_encode(&w, &x->u.apikey);
		return lm_put_rec(txn, st->apikeys, x->digest, CRM_DIGEST_BYTES,
		    &w, MDB_NOOVERWRITE);
	case XR_CONSUMER:
		lm_consumer_encode(&w, &x->u.consumer);
		return lm_put_rec(txn, st->consumers, x->digest,
		    CRM_DIGEST_BYTES, &w, MDB_NOOVERWRITE);
	case XR_ACCESS:
		if (x->access_kind == 'K' && !st->have_wrap)
			return RC_REFUSED;
		memset(&o, 0, sizeof(o));
		/*
		 * A code kept plain is keyed from its digest, as crmauthctl
		 * init does.  A file may hold a code both ways (exported
		 * before init keyed the plain one): the keyed record wins,
		 * in whichever order the two come.
		 */
		if (x->access_kind == 'C' && st->have_wrap) {
			store_code_keyed(kd, st->wrap, x->digest);
			store_access_id(id, x->org, kd, NULL);
			lm_access_owner(&o, x->org, kd, NULL);
			o.kind = 'K';
			rc = lm_access_write(st, txn, id, &x->u.access, &o,
			    MDB_NOOVERWRITE);
			return rc == MDB_KEYEXIST ? 0 : rc;
		}
		if (x->access_kind != 0)
			lm_access_owner(&o, x->org, x->access_kind != 'I' ?
			    x->digest : NULL, x->name);
		if (x->access_kind == 'K')
			o.kind = 'K';
		return lm_access_write(st, txn, x->id, &x->u.access, &o,
		    x->access_kind == 'K' ? 0 : MDB_NOOVERWRITE);
	case XR_SIGKEY:
		if ((rc = lm_sigkey_put(st, txn, &x->u.key, MDB_NOOVERWRITE)) != 0 ||
		    !x->u.key.current)
			return rc;
		val = (MDB_val){ CRM_KID_HEX, (void *)x->u.key.kid };
		return mdb_put(txn, st->meta, &mk, &val, MDB_NOOVERWRITE);
	case XR_RELEASED:
		put_be64(v, (uint64_t)x->u.rel.exp);
		key = (MDB_val){ CRM_JTI_BYTES, (void *)x->u.rel.jti };
		val = (MDB_val){ 8, v };
		if ((rc = mdb_put(txn, st->released, &key, &val,
		    MDB_NOOVERWRITE)) != 0)
			return rc;
		memcpy(ik, v, 8);
		memcpy(ik + 8, x->u.rel.jti, CRM_JTI_BYTES);
		key = (MDB_val){ sizeof(ik), ik };
		return mdb_put(txn, st->released_exp, &key, &empty, 0);
	case XR_CUTOFF:
		if ((rc = lm_app_cutoff_get(st, txn, x->org, x->name, &t)) != 0)
			return rc;
		if (t != 0)
			return MDB_KEYEXIST;
		return lm_app_cutoff_put(st, txn, x->org, x->name, x->u.cutoff);
	}
	return RC_CORRUPT;
}

static int
load_fn(struct lstore *st, MDB_txn *txn, void *p)
{
	struct xsource	*src = p;
	struct xrec	*x;
	int		 rc, more;

	/* From the first record on every try (a full map is grown and the
	 * whole transaction run again). */
	src->rewind(src);
	if ((rc = load_empty(st, txn)) != 0)
		return rc;
	if ((x = malloc(sizeof(*x))) == NULL)
		return ENOMEM;
	while ((more = src->next(src, x)) == 1)
		if ((rc = load_one(st, txn, x)) != 0)
			break;
	if (rc == MDB_KEYEXIST)
		snprintf(st->base.detail, sizeof(st->base.detail),
		    "line %ld: a record that is there already (the same "
		    "record twice)", x->line);
	if (rc == RC_NOUSER) {
		snprintf(st->base.detail, sizeof(st->base.detail),
		    "line %ld: a Web API key of user %s in organisation %s, "
		    "who is not in the file (before it)", x->line,
		    x->u.apikey.user, x->u.apikey.org);
		rc = RC_REFUSED;
	} else if (rc == RC_REFUSED)
		snprintf(st->base.detail, sizeof(st->base.detail),
		    "line %ld: an authentication code kept keyed with a "
		    "PostgreSQL deployment's wrap.key: copy that wrap.key "
		    "into %s first (0600, the store's owner)", x->line,
		    st->base.cfg.db_path);
	explicit_bzero(x, sizeof(*x));
	free(x);
	return rc != 0 ? rc : more == -1 ? RC_STOP : 0;
}

enum store_err
lmdb_load(struct store *s, struct xsource *src)
{
	struct lstore *st = (struct lstore *)s;

	return lm_txn_run(st, 1, "import", load_fn, src);
}

