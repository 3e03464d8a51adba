# Sourced by the tests/*-pg.test scripts: the PostgreSQL server programs,
# checked, and the environment that puts the suites on a PostgreSQL store.
: "${top_builddir:=.}"
: "${PYTHON3:=python3}"
: "${LIGHTTPD:=lighttpd}"
: "${CRMAUTH_PG_BIN:=$(pg_config --bindir 2>/dev/null)}"
for tool in "$PYTHON3" "$LIGHTTPD" mdb_dump psql "$CRMAUTH_PG_BIN/initdb" \
    "$CRMAUTH_PG_BIN/pg_ctl" "$CRMAUTH_PG_BIN/pg_dump"; do
	if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "$tool" ] &&
	    [ ! -x "/usr/sbin/$tool" ]; then
		echo "$0: $tool is missing (script/test installs it)" >&2
		exit 99		# a hard error, never a silent skip
	fi
done
PATH="$PATH:/usr/sbin:/sbin"
CRMAUTH_STORE=postgresql
export top_srcdir top_builddir LIGHTTPD PATH CRMAUTH_STORE CRMAUTH_PG_BIN
