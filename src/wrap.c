/*
 * A deployment's key, db_path/wrap.key (32 random bytes, never in the
 * store): PostgreSQL seals the signing keys with it, and both backends
 * key authentication codes with what is derived from it, so that a dump,
 * a backup or a standby of the store alone cannot be guessed back to
 * short codes (README.md, "Authentication codes at rest").
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"

#define WRAP_NAME	"wrap.key"

int
store_wrap_load(const struct config *cfg, unsigned char *key,
    int *have, int create, char *detail, size_t len)
{
	char		 path[1100];
	unsigned char	 k[CRM_SEAL_KEY];
	struct stat	 sb;
	mode_t		 mode = 0600;
	ssize_t		 n;
	int		 fd;

	snprintf(path, sizeof(path), "%s/" WRAP_NAME, cfg->db_path);
	/* A FIFO or device planted there is refused, not waited on. */
	if ((fd = open_regular(path, O_NOFOLLOW, detail, len)) != -1) {
		/* Whole or not at all: the key held so far stays until a
		 * file of exactly the right size is read. */
		n = -1;
		if (fstat(fd, &sb) == 0 && sb.st_size == (off_t)sizeof(k))
			n = read(fd, k, sizeof(k));
		close(fd);
		if (n != (ssize_t)sizeof(k)) {
			snprintf(detail, len, "%s: not a key of %zu bytes",
			    path, sizeof(k));
			explicit_bzero(k, sizeof(k));
			return -1;
		}
		memcpy(key, k, sizeof(k));
		explicit_bzero(k, sizeof(k));
		*have = 1;
		return 0;
	}
	if (errno != ENOENT || access(path, F_OK) == 0)
		return -1;	/* detail says why */
	/* Serving without it (or no longer with it: removed since). */
	if (!create) {
		*have = 0;
		return 0;
	}
	if (store_make_dir(cfg, detail, len) == -1)
		return -1;
	if (stat(cfg->db_path, &sb) == 0 && (sb.st_mode & 070) != 0)
		mode = 0640;
	sec_random(k, sizeof(k));
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, mode)) == -1 || fchmod(fd, mode) == -1 ||
	    write(fd, k, sizeof(k)) != (ssize_t)sizeof(k) || fsync(fd) == -1) {
		snprintf(detail, len, "%s: %s", path, strerror(errno));
		if (fd != -1) {
			close(fd);
			unlink(path);
		}
		explicit_bzero(k, sizeof(k));
		return -1;
	}
	close(fd);
	memcpy(key, k, sizeof(k));
	explicit_bzero(k, sizeof(k));
	*have = 1;
	return 0;
}

void
store_code_key_id(char out[CODE_KEY_ID_HEX + 1], const unsigned char *wrap)
{
	static const char	 ctx[] = "crmauth authentication code key id";
	unsigned char		 d[CRM_DIGEST_BYTES];

	sec_hmac_sha256(d, wrap, ctx, sizeof(ctx) - 1);
	sec_hex(out, d, CODE_KEY_ID_HEX / 2);
}

void
store_code_keyed(unsigned char out[CRM_DIGEST_BYTES],
    const unsigned char *wrap, const unsigned char *code)
{
	static const char	 ctx[] = "crmauth authentication code lookup";
	unsigned char		 key[CRM_DIGEST_BYTES];

	/* sec_hmac256: both keys' pads kept from one code to the next. */
	sec_hmac256(key, wrap, CRM_SEAL_KEY, ctx, sizeof(ctx) - 1);
	sec_hmac256(out, key, sizeof(key), code, CRM_DIGEST_BYTES);
	explicit_bzero(key, sizeof(key));
}
