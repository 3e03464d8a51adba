/*
 * Files that someone else named: a configuration, an import, a backup
 * to restore, wrap.key.  A FIFO opens only when a writer comes and a
 * device may never end, so crmauthctl (as root, perhaps) or a responder
 * would hang on one: they are opened without waiting and refused unless
 * they are regular files.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"

int
open_regular(const char *path, int flags, char *err, size_t errlen)
{
	struct stat	 sb;
	int		 fd, fl;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
	    flags)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	/* A regular file never blocks; reads as usual from here. */
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
marker_fresh(const char *marker)
{
	struct stat	 sb;
	time_t		 now = time(NULL);
	int		 fd;

	if (stat(marker, &sb) == 0 && now >= sb.st_mtime &&
	    now - sb.st_mtime < 60)
		return 1;
	if ((fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK, 0600)) != -1) {
		futimens(fd, NULL);
		close(fd);
	}
	return 0;
}
