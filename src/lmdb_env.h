/*
 * LMDB environments as crmauth uses them: opened once per process and
 * shared by every handle on the same path (LMDB forbids opening one
 * environment twice in a process: closing either copy drops the
 * process's lock on the lock file, and another process may then reset
 * the reader table under the survivor), and transactions that cope with
 * a map grown by another process, a full map (grown here, up to a
 * maximum) and reader slots left by dead processes.
 *
 * Private to the store; not part of extern.h.
 */
#ifndef LMDB_H_CRMAUTH
#define LMDB_H_CRMAUTH

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <lmdb.h>

struct lmdb;

/*
 * Open the environment at path (a directory, or a file with
 * MDB_NOSUBDIR), or take another reference to the one this process has
 * open there.  flags: MDB_RDONLY, MDB_NOSUBDIR, MDB_NOSYNC; MDB_NOTLS is
 * always added.  Files made here get mode exactly (the umask is neither
 * read nor changed).  An environment already open read-only here cannot
 * be opened for writing (EBUSY).  0, or an LMDB or errno code.
 */
int		 lmdb_open(struct lmdb **, const char *path, unsigned flags,
		    mode_t mode, size_t mapsize, size_t mapmax);
void		 lmdb_close(struct lmdb *);
/* An environment of this process alone, outside the sharing above, with
 * the same limits: for restore, which must control the lock file. */
int		 lmdb_open_raw(MDB_env **, const char *path, unsigned flags,
		    mode_t mode);
MDB_env		*lmdb_env(const struct lmdb *);

/*
 * Open the named databases once per environment (callers share the
 * handles): names[i] into dbis[i].  create: make what is missing.
 * 0, MDB_NOTFOUND when one is missing and !create, or an error.
 */
int		 lmdb_dbis(struct lmdb *, const char *const names[],
		    MDB_dbi dbis[], size_t n, int create);

/*
 * Run fn in a read (write 0) or write transaction.  A write commits when
 * fn returns 0 and is aborted otherwise; MDB_MAP_FULL, from fn or the
 * commit, grows the map (doubling, up to mapmax) and runs fn again.
 * Reads renew *kept when given (the transaction is reset and kept there
 * afterwards, reader slot and all) and begin a new one otherwise.
 * Returns fn's result or the LMDB error.
 */
typedef int	(*lmdb_fn)(MDB_txn *, void *);
int		 lmdb_run(struct lmdb *, int write, lmdb_fn, void *,
		    MDB_txn **kept);

/* The map size now, in bytes. */
size_t		 lmdb_mapsize(struct lmdb *);

/*
 * Expiry through a time index: delete, oldest first, the entries of
 * index (keys: 8-byte big-endian time, then the key of a record of db)
 * whose time is <= now, and the records of db they name; at most limit
 * (0: no limit), counted in *n.  The walk stops at the first live
 * entry.  MDB_CORRUPTED for an index key whose record key is not minkey
 * to maxkey bytes long.
 */
int		 lmdb_prune_index(MDB_txn *, MDB_dbi index, MDB_dbi db,
		    int64_t now, size_t minkey, size_t maxkey, size_t limit,
		    size_t *n);

/*
 * The failed-attempt counters of an LMDB store (attempts.c): an
 * environment of their own, unsynced, one per boot.  Each function
 * returns 0 or an LMDB/errno code; the store maps them.
 */
struct attdb;
struct config;
struct att_reserve;
/* rdonly: never create (ENOENT if there is no file for this boot). */
int		 attdb_open(struct attdb **, const struct config *, int rdonly,
		    char *err, size_t errlen);
void		 attdb_close(struct attdb *);
int		 attdb_reserve(struct attdb *, struct att_reserve *);
int		 attdb_peek(struct attdb *, struct att_reserve *);
int		 attdb_decide(struct attdb *, struct att_reserve *, int ok);
int		 attdb_giveback(struct attdb *, struct att_reserve *,
		    int success, int64_t trust_until);
int		 attdb_locks(struct attdb *, store_lock_cb, void *);
int		 attdb_clear(struct attdb *, const unsigned char *key,
		    size_t keylen, int prefix, size_t *n);
int		 attdb_prune(struct attdb *, int64_t now, size_t *n);
int		 attdb_usage(struct attdb *, size_t *bytes, size_t *records);

/* Big-endian integers in keys and records. */
static inline void
put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static inline uint64_t
get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static inline void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static inline uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

#endif /* LMDB_H_CRMAUTH */
