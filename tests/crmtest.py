"""Test harness: real web servers on free loopback ports serving the freshly
built responder, each configured from its sample in etc/ with only paths
and ports filled in; a store made with crmauthctl; plain HTTP from the
standard library.

Only 127.0.0.1 is ever used.  Every server is started and stopped here.
"""
import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TOP_BUILDDIR = os.path.abspath(os.environ.get("top_builddir", "."))
TOP_SRCDIR = os.path.abspath(os.environ.get("top_srcdir", "."))
FCGI = os.path.join(TOP_BUILDDIR, "crmauth.fcgi")
CTL = os.path.join(TOP_BUILDDIR, "crmauthctl")
VERIFY = os.path.join(TOP_BUILDDIR, "examples", "crmauth-verify")   # uses libcrmauth
LIGHTTPD = os.environ.get("LIGHTTPD") or shutil.which("lighttpd") or "/usr/sbin/lighttpd"
APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SPAWN_FCGI = shutil.which("spawn-fcgi") or "/usr/bin/spawn-fcgi"
VALGRIND = os.environ.get("CRMAUTH_VALGRIND") or ""
VALGRIND_PROBLEMS = []      # filled by Server.cleanup() under valgrind
PREFIX = "/crmapi/rest/v2"  # where every sample mounts the API

# Run as root (CI), the responders run as the web server's user, as they
# would for real; run as anyone else, everything runs as that user.
RUN_USER = "www-data" if os.geteuid() == 0 else None
# The backend the suites run on (tests/*-pg.test set postgresql).
STORE = os.environ.get("CRMAUTH_STORE", "lmdb")
PG_BIN = os.environ.get("CRMAUTH_PG_BIN", "/usr/lib/postgresql/15/bin")


class Postgres:
    """A throwaway PostgreSQL server for this test run, as PITFALLS.md
    says: initdb as the postgres user, trust, a Unix socket in a short
    directory under /tmp, no TCP port.  One database per Server.  get()
    starts it on first use; it stops when the run ends."""
    _one = None

    @classmethod
    def get(cls):
        if cls._one is None:
            cls._one = Postgres()
            atexit.register(cls._one.destroy)
        return cls._one

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="crmpg", dir="/tmp")
        # The socket directory must be reachable by the web server's user.
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "log")
        self.as_pg = os.geteuid() == 0
        if self.as_pg:
            shutil.chown(self.dir, "postgres", "postgres")
        r = self._pg(["initdb", "-D", self.data, "-U", "crmauth", "-A", "trust", "-E", "UTF8",
                      "--locale=C", "--no-sync"])
        if r.returncode != 0:
            raise AssertionError(f"initdb: {r.stdout} {r.stderr}")
        self.start()
        self.serial = 0

    def _pg(self, args, **kw):
        cmd = [os.path.join(PG_BIN, args[0])] + args[1:]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              **(user_kw("postgres") if self.as_pg else {}), **kw)

    def start(self):
        """The postmaster as our own child (not daemonized by pg_ctl), so
        that once killed it is reaped here and a new one may start."""
        log = open(self.log, "a")
        self.proc = subprocess.Popen(
            [os.path.join(PG_BIN, "postgres"), "-D", self.data, "-c", "listen_addresses=",
             "-c", f"unix_socket_directories={self.dir}", "-c", "max_connections=200"],
            stdout=log, stderr=log, start_new_session=True,
            **(user_kw("postgres") if self.as_pg else {}))
        log.close()
        wait_for(lambda: self.proc.poll() is not None or subprocess.run(
            [os.path.join(PG_BIN, "pg_isready"), "-q", "-h", self.dir]).returncode == 0,
            60, "PostgreSQL to accept connections")
        if self.proc.poll() is not None:
            raise AssertionError(f"postgres did not start: {self.logtail()}")

    def stop(self, mode="fast"):
        self._pg(["pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"])
        self.proc.wait(60)

    def kill(self):
        """SIGKILL to the postmaster, as a crash; returns once it and every
        backend are gone (they exit when they see it died)."""
        procs = self.cluster_pids()
        self.proc.kill()
        self.proc.wait(60)
        wait_for(lambda: not any(alive(p) for p in procs), 30,
                 "every PostgreSQL process gone")

    def postmaster_pid(self):
        return self.proc.pid if self.proc.poll() is None else None

    def cluster_pids(self):
        """The postmaster and every process it started."""
        pm = self.postmaster_pid()
        if pm is None or not alive(pm):
            return []
        return [pm] + [int(p) for p in children(pm)]

    def require_password(self, role):
        """Connections as role must give its password (scram), the rest
        stay trusted."""
        hba = os.path.join(self.data, "pg_hba.conf")
        with open(hba) as f:
            text = f.read()
        line = f"local all {role} scram-sha-256\n"
        if line not in text:
            with open(hba, "w") as f:
                f.write(line + text)
        r = self._pg(["pg_ctl", "-D", self.data, "reload"])
        if r.returncode != 0:
            raise AssertionError(f"pg_ctl reload: {r.stderr}")

    def logtail(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-2000:]
        except FileNotFoundError:
            return ""

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, db):
        return f"host={self.dir} user=crmauth dbname={db}"

    def psql(self, db, sql, check=True):
        r = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", self.conninfo(db),
                            "-c", sql], capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"psql {sql!r}: {r.stderr}")
        return r.stdout

    def createdb(self, name):
        self.serial += 1
        db = re.sub(r"[^a-z0-9_]", "_", f"crm_{name}_{self.serial}".lower())
        self.psql("postgres", f"CREATE DATABASE {db}")
        return db

    def dropdb(self, db):
        self.psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", check=False)

    def dump(self, db, tables):
        """The rows of the tables, sorted: for before/after comparison.
        One psql for them all (a psql per table made the PostgreSQL
        suites spend minutes starting processes)."""
        cmd = ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", self.conninfo(db)]
        for t in tables:
            cmd += ["-c", f"SELECT '-- {t}'", "-c", f"SELECT * FROM {t} ORDER BY 1, 2"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"psql dump of {tables}: {r.stderr}")
        return r.stdout.encode()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token):
    h, p, _ = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p))


def sign(header, payload, key, alg="sha256"):
    """A compact JWS over arbitrary header and payload (dicts or text)."""
    if not isinstance(header, str):
        header = json.dumps(header, separators=(",", ":"))
    if not isinstance(payload, str):
        payload = json.dumps(payload, separators=(",", ":"))
    signing_input = b64url(header.encode()) + "." + b64url(payload.encode())
    mac = hmac.new(key, signing_input.encode(), getattr(hashlib, alg)).digest()
    return signing_input + "." + b64url(mac)


def basic(user, password=""):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # lower-case name -> value
        self.body = body                # bytes
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None

    @property
    def code(self):
        return (self.json or {}).get("status", {}).get("code")

    @property
    def data(self):
        return (self.json or {}).get("data")

    @property
    def message(self):
        return (self.json or {}).get("status", {}).get("message")

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def eq(a, b, what=""):
    if a != b:
        raise AssertionError(f"{what}: expected {b!r}, got {a!r}")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expect(r, status, code, what=""):
    """Status line, envelope code, the fixed headers, data null on errors."""
    eq(r.status, status, f"{what} status ({r!r})")
    eq(r.code, code, f"{what} status.code ({r!r})")
    eq(r.headers.get("content-type"), "application/json; charset=utf-8",
       f"{what} Content-Type")
    eq(r.headers.get("cache-control"), "no-store", f"{what} Cache-Control")
    check(r.json is not None and set(r.json) == {"data", "status"},
          f"{what}: not the envelope: {r!r}")
    check(set(r.json["status"]) == {"code", "description", "message"},
          f"{what}: status members: {r!r}")
    if status != 200:
        eq(r.data, None, f"{what} data on error")
        check(r.message, f"{what}: empty message")
    return r


def cgi_response(out):
    """A CGI program's output (bytes) as a Response: the Status header is
    the status line (RFC 3875 §6.3.3)."""
    head, sep, body = out.partition(b"\r\n\r\n")
    check(sep, f"no end of the CGI header: {out[:300]!r}")
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(headers.pop("status", "200").split()[0])
    return Response(status, headers, body)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=20, what="the condition", interval=0.05):
    """Poll cond() until it gives a true value, which is returned; past
    the deadline, fail naming what was awaited (and cond's last value).
    Every test waits this way: never a fixed sleep and one look."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout} s for {what}; last: {v!r}")
        time.sleep(interval)


def parallel(n, fn):
    """fn(i) for i in range(n), all released at once; their results."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        barrier.wait()
        out[i] = fn(i)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def statuses(responses):
    """How many responses had each status."""
    counts = {}
    for r in responses:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def children(pid):
    """PIDs (as strings) of pid's child processes."""
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return r.stdout.split()


def alive(pid):
    """The process exists and has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def running(*prefixes):
    """PIDs of live processes whose command line has an argument that
    starts with one of the path prefixes (compared as text, not as a
    pattern)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == str(os.getpid()):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if any(a.startswith(p.encode()) for a in args for p in prefixes) and alive(pid):
            found.append(pid)
    return found


def cpu_ticks(pids):
    """CPU time (user + system, in clock ticks) the processes used so far."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])      # utime, stime
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def wait_idle(pids, timeout=30):
    """Wait until the processes use no CPU for 0.3 s in a row: whatever
    work was queued for them (requests a load tool left behind) is done."""
    state = {"last": cpu_ticks(pids), "since": time.time()}

    def idle():
        now = cpu_ticks(pids)
        if now != state["last"]:
            state["last"], state["since"] = now, time.time()
        return time.time() - state["since"] >= 0.3
    wait_for(idle, timeout, f"processes {sorted(pids)} to be idle")


def wait_port(port, proc=None, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process(proc, sig=signal.SIGTERM, timeout=20):
    """Signal a process (or its group) and wait; returns its exit status."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args[0]} ignored signal {sig}")


def user_kw(user):
    """Popen arguments that run the child as user (and only its group),
    switching in the child itself so that its PID is the program's."""
    return {} if user is None else {"user": user, "group": user, "extra_groups": []}


class Endpoint:
    """Where requests go: a loopback port and the prefix the API is
    mounted at."""

    def __init__(self, port, prefix=PREFIX):
        self.port = port
        self.prefix = prefix

    def request(self, method, path, body=None, headers=None, raw=None,
                content_type="application/json", prefix=None, source="127.0.0.1"):
        """One request on a fresh connection.  body: dict/list/str sent as
        JSON text; raw: bytes sent as they are; source: the client address
        (any of 127.0.0.0/8), which the server sees as REMOTE_ADDR."""
        hdrs = dict(headers or {})
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
        if data is not None and content_type is not None:
            hdrs.setdefault("Content-Type", content_type)
        if method == "POST" and data is None:
            data = b""          # Content-Length: 0, as curl -d '' sends
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60,
                                          source_address=(source, 0))
        try:
            conn.request(method, (self.prefix if prefix is None else prefix) + path,
                         body=data, headers=hdrs)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def key_token(self, key):
        """A new token for a Web API key; anything but 200 fails."""
        r = self.post("/authentication/web_api_key/token", headers={"Authorization": basic(key)})
        eq(r.status, 200, f"token {r!r}")
        return r.data["token"]

    def login_token(self, user, password, org="ACME"):
        """A new token for a password login; anything but 200 fails."""
        r = self.post("/authentication/token",
                      {"username": user, "password": password, "organisation": org})
        eq(r.status, 200, f"login {r!r}")
        return r.data["token"]


class Server(Endpoint):
    """A store, its configuration and a web server in front of crmauth.

    Subclasses write the web server's configuration (from the sample in
    etc/) and start whatever the deployment needs."""
    kind = "base"
    prefix = PREFIX

    # Suites that fail on purpose would lock themselves out: throttling is
    # tested on its own, with servers that pass their own lockout lines.
    NO_LOCKOUT = "lockout_threshold = 1000000\nlockout_account_threshold = 1000000\n"

    CHEAP_ARGON2 = "argon2_memory_kib = 8192\nargon2_iterations = 1\n"

    def __init__(self, name, conf_extra="", conf_text=None, init=True, user=None,
                 procs=2, gate=False, lockout=NO_LOCKOUT, argon2=CHEAP_ARGON2,
                 program=None, store=None, pg_db=None):
        self.name = name
        self.store = store or STORE
        self.pg = Postgres.get() if self.store == "postgresql" else None
        # pg_db: another server's database, shared (two web nodes).
        self.pg_db = (pg_db or self.pg.createdb(name)) if self.pg else None
        self.owns_db = pg_db is None
        self.gate = gate        # also protect /private/ with crmauth tokens
        self.user = user
        self.procs = procs
        self.program = program or FCGI     # what serves (bench: a baseline)
        self.dir = tempfile.mkdtemp(prefix=f"crmauth-{name}-")
        self.db = os.path.join(self.dir, "db")
        self.conf = os.path.join(self.dir, "crmauth.conf")
        self.run = os.path.join(self.dir, "run")
        self.logdir = os.path.join(self.dir, "log")
        self.sbindir = os.path.join(self.dir, "sbin")
        self.pkgdatadir = os.path.join(self.dir, "share")
        os.makedirs(self.run)
        os.makedirs(self.logdir)
        os.makedirs(os.path.join(self.dir, "www"))
        self._install_programs()
        # Events go to a file of the test's own (not the machine's syslog),
        # unless the test names a sink.
        self.audit_path = os.path.join(self.logdir, "audit.log")
        if "audit_log" not in conf_extra:
            conf_extra += f"audit_log = {self.audit_path}\n"
        with open(self.conf, "w") as f:
            if conf_text is not None:
                f.write(conf_text)
            else:
                f.write(f"# test {name}\ndb_path = {self.db}\n" + self.store_conf() +
                        argon2 + ("" if "max_body" in conf_extra else "max_body = 4096\n") +
                        lockout + conf_extra)
        if user is not None:
            # The web server's user must reach its store, socket, programs.
            os.chmod(self.dir, 0o755)
            os.makedirs(self.db)
            # lighttpd opens its logs after dropping to server.username.
            for d in (self.db, self.run, self.logdir):
                shutil.chown(d, user, user)
        if init:
            self.ctl("init")
        self.procs_started = []         # (Popen, what) started by start()
        self.port = None

    def store_conf(self):
        """The configuration lines naming this server's store."""
        if self.pg is None:
            return ""
        return f"store = postgresql\npg_conninfo = {self.pg.conninfo(self.pg_db)}\n"

    def _install_programs(self):
        """Copies the web server's user can run, as make install would lay
        them out: sbin/ and share/cgi-bin/."""
        os.makedirs(self.sbindir)
        os.makedirs(os.path.join(self.pkgdatadir, "cgi-bin"))
        if VALGRIND:
            self._valgrind_wrapper(os.path.join(self.sbindir, "crmauth.fcgi"), "fcgi")
            self._valgrind_wrapper(os.path.join(self.pkgdatadir, "cgi-bin", "crmauth.cgi"), "cgi")
        else:
            shutil.copy2(self.program, os.path.join(self.sbindir, "crmauth.fcgi"))
            shutil.copy2(self.program, os.path.join(self.pkgdatadir, "cgi-bin", "crmauth.cgi"))
        shutil.copy2(CTL, os.path.join(self.sbindir, "crmauthctl"))

    def _valgrind_wrapper(self, path, tag):
        # The program copied beside the wrapper (the build directory may
        # be closed to the web server's user), the log in log/, which
        # that user may write.
        real = path + ".real"
        shutil.copy2(self.program, real)
        log = os.path.join(self.logdir, f"vg-{tag}.%p.log")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n"
                    f"exec {VALGRIND} --quiet --leak-check=full "
                    "--show-leak-kinds=definite,indirect "
                    "--errors-for-leak-kinds=definite,indirect "
                    f"--log-file={log} {real} \"$@\"\n")
        os.chmod(path, 0o755)

    def sample(self, name):
        """etc/NAME.in with this server's paths, as make would fill them."""
        with open(os.path.join(TOP_SRCDIR, "etc", name + ".in")) as f:
            text = f.read()
        for k, v in (("@sbindir@", self.sbindir), ("@sysconfdir@", self.dir),
                     ("@localstatedir@", self.dir), ("@cgibindir@", os.path.join(self.pkgdatadir, "cgi-bin")),
                     ("@docdir@", self.dir), ("/run/crmauth", self.run),
                     ("/run/lighttpd", self.run)):
            text = text.replace(k, v)
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- admin tool ------------------------------------------------------
    def ctl(self, *args, input=None, check=True, conf=None):
        cmd = [os.path.join(self.sbindir, "crmauthctl"), "-c", conf or self.conf, *args]
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=120,
                           **user_kw(self.user))
        if check and r.returncode != 0:
            raise AssertionError(f"crmauthctl {' '.join(args)}: {r.returncode} {r.stderr}")
        return r

    DATA_DBS = ("meta", "users", "apikeys", "consumer_keys", "access_tokens", "signing_keys",
                "released", "released_by_exp", "cutoffs")
    DATA_TABLES = ("meta", "users", "apikeys", "consumer_keys", "access_tokens",
                   "signing_keys", "released", "cutoffs")

    def dump(self, dbs=None):
        """The store's data (LMDB: the named databases, all by default;
        PostgreSQL: the data tables, sorted), for before/after comparison.
        The failed-attempt counters are not part of it (counters())."""
        if self.pg is not None:
            return self.pg.dump(self.pg_db, self.DATA_TABLES)
        out = b""
        for args in ([["-a"]] if dbs is None else [["-s", d] for d in dbs]):
            r = subprocess.run(["mdb_dump", *args, self.db], capture_output=True, timeout=60)
            if r.returncode != 0:
                raise AssertionError(f"mdb_dump: {r.stderr!r}")
            out += r.stdout
        return out

    def counters_file(self):
        """The failed-attempt counters of this boot (attempts-BOOTID.mdb
        beside the store), or None before the first attempt."""
        names = [n for n in os.listdir(self.db)
                 if n.startswith("attempts") and n.endswith(".mdb")]
        check(len(names) <= 1, f"one counters file per boot: {names}")
        return os.path.join(self.db, names[0]) if names else None

    def where(self):
        """What the log and crmauthctl call this server's store."""
        return f"postgresql database {self.pg_db}" if self.pg is not None else self.db

    def records(self, name):
        """One table (PostgreSQL) or named database (LMDB) as text."""
        if self.pg is not None:
            return self.pg.psql(self.pg_db, f"SELECT * FROM {name}")
        return subprocess.run(["mdb_dump", "-p", "-s", name, self.db], capture_output=True,
                              text=True, check=True, timeout=60).stdout

    def raw_dump(self):
        """Everything the store holds, as an operator's dump tool shows
        it: mdb_dump -p -a, or pg_dump of the database."""
        if self.pg is not None:
            r = subprocess.run([os.path.join(PG_BIN, "pg_dump"), self.pg.conninfo(self.pg_db)],
                               capture_output=True, check=True, timeout=120)
        else:
            r = subprocess.run(["mdb_dump", "-p", "-a", self.db], capture_output=True,
                               check=True, timeout=120)
        return r.stdout

    def counters(self):
        """The counters and trusted addresses, for before/after
        comparison (b"" before there are any)."""
        if self.pg is not None:
            return self.pg.dump(self.pg_db, ("attempts",))
        path = self.counters_file()
        if path is None:
            return b""
        r = subprocess.run(["mdb_dump", "-n", "-s", "counters", path],
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"mdb_dump: {r.stderr!r}")
        return r.stdout

    def verify(self, token):
        """crmauthctl token verify, the token on standard input."""
        return self.ctl("token", "verify", input=token + "\n", check=False)

    def add_code(self, org, contact, code, ari=None):
        """An access token with an authentication code (from stdin)."""
        extra = ["--accounts-receivable", ari] if ari else []
        self.ctl("access-token", "add", org, "--contact", contact, *extra,
                 "--authentication-code", input=code + "\n")

    def released_count(self):
        return int(self.ctl("released", "count").stdout)

    # -- processes -----------------------------------------------------------
    def spawn(self, cmd, what, env=None, user=None, **kw):
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                             stderr=kw.pop("stderr", subprocess.DEVNULL),
                             start_new_session=True, **user_kw(user), **kw)
        self.procs_started.append((p, what))
        return p

    def start(self):
        for attempt in range(5):
            self.port = free_port()
            self._start()
            front = self.procs_started[-1][0]
            if wait_port(self.port, front):
                return self
            self.stop()
        raise AssertionError(f"{self.kind} did not start; see {self.dir}:\n{self.error_log()[-3000:]}")

    def _start(self):
        raise NotImplementedError

    def stop(self):
        # The web server first, then what serves behind it; then wait for
        # every responder to be gone (under valgrind they take a while),
        # so that the store is really closed when this returns.
        pids = self.responder_pids() if self.procs_started else set()
        for p, what in reversed(self.procs_started):
            stop_process(p)
        self.procs_started = []
        wait_for(lambda: not any(alive(p) for p in pids), 30,
                 f"the responders of {self.kind} to exit")

    def logs(self):
        return ["error.log", "breakage.log", "crmauth-stderr.log"]

    def audit_text(self):
        """The audit log file as text ("" when there is none)."""
        try:
            with open(self.audit_path, encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def events(self):
        """The audit log's events in order; a line that is not one JSON
        object fails."""
        out = []
        for n, line in enumerate(self.audit_text().split("\n")[:-1], 1):
            try:
                ev = json.loads(line)
            except ValueError:
                raise AssertionError(f"audit.log:{n} is not JSON: {line[:300]!r}") from None
            check(isinstance(ev, dict), f"audit.log:{n} is not an object")
            out.append(ev)
        return out

    def error_log(self):
        """The web server's error log and wherever the responders' stderr
        goes for this server."""
        text = ""
        for name in self.logs():
            try:
                with open(os.path.join(self.logdir, name), errors="replace") as f:
                    text += f.read()
            except FileNotFoundError:
                pass
        return text

    def programs_running(self):
        """Processes running any program copied into this server's
        directory (responders, CGI processes, valgrind around them)."""
        return running(self.sbindir + "/", self.pkgdatadir + "/")

    def responder_pids(self):
        """Processes running this server's responder (by its path)."""
        return set(running(os.path.join(self.sbindir, "crmauth.fcgi")))

    def cleanup(self):
        started = self.port is not None
        self.stop()
        if VALGRIND and started:
            # valgrind writes its report as the process ends: wait until
            # nothing runs from this server's programs any more (CGI
            # processes included).
            wait_for(lambda: not self.programs_running(), 60,
                     f"{self.kind}'s programs to exit under valgrind")
            VALGRIND_PROBLEMS.extend(valgrind_report([self.logdir]))
        if os.environ.get("CRMAUTH_KEEP"):
            print(f"# kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.pg is not None and self.owns_db:
                self.pg.dropdb(self.pg_db)

    # -- HTTP ----------------------------------------------------------------
class Lighttpd(Server):
    """lighttpd starting the responders itself (etc/lighttpd-fastcgi.conf),
    plus mod_cgi serving share/cgi-bin/crmauth.cgi at /cgi-bin/."""
    kind = "lighttpd"
    sample_name = "lighttpd-fastcgi.conf"
    front_extra = ""    # more lighttpd configuration (bench: mod_extforward)

    def _start_backend(self):
        pass

    def _extra(self):
        cgibin = os.path.join(self.pkgdatadir, "cgi-bin")
        gate = ""
        if self.gate:
            gate = f"""include "{self.sample('lighttpd-authorizer.conf')}"
$HTTP["url"] =~ "^/private/.*\\.cgi$" {{
    cgi.assign = (".cgi" => "")
}}
"""
        return gate + f"""
server.modules += ("mod_alias", "mod_setenv", "mod_cgi")
alias.url = ("/cgi-bin/" => "{cgibin}/")
$HTTP["url"] =~ "^/cgi-bin/" {{
    cgi.assign = ("" => "")
    setenv.add-environment = ("CRMAUTH_CONF" => "{self.conf}")
}}
"""

    def _start(self):
        self._start_backend()
        sample = self.sample(self.sample_name)
        # The sample's max-procs is 2; tests may ask for another count.
        if self.procs != 2:
            text = open(sample).read().replace('"max-procs" => 2', f'"max-procs" => {self.procs}')
            open(sample, "w").write(text)
        user = f'server.username = "{self.user}"\nserver.groupname = "{self.user}"\n' \
            if self.user else ""
        frame = os.path.join(self.dir, "lighttpd.conf")
        with open(frame, "w") as f:
            f.write(f"""
server.document-root = "{self.dir}/www"
server.bind = "127.0.0.1"
server.port = {self.port}
server.errorlog = "{self.logdir}/error.log"
server.breakagelog = "{self.logdir}/breakage.log"
{user}
include "{sample}"
{self._extra()}
{self.front_extra}
""")
        self.spawn([LIGHTTPD, "-D", "-f", frame], "lighttpd")

    def responder_pids(self):
        """The FastCGI processes lighttpd spawned (its children)."""
        return set(children(self.procs_started[-1][0].pid))


class LighttpdSocket(Lighttpd):
    """lighttpd talking to a socket (etc/lighttpd-fastcgi-socket.conf); the
    responders started by the ExecStart of etc/crmauth-spawn-fcgi.service."""
    kind = "lighttpd+socket"
    sample_name = "lighttpd-fastcgi-socket.conf"

    def _start_backend(self):
        self.backend = start_unit_spawn_fcgi(self)

    def _extra(self):
        return ""

    responder_pids = Server.responder_pids


def spawn_fcgi_cmd(server, workers=2):
    """The spawn-fcgi line documented in the samples (workers None: the
    responder alone, without its -w supervisor)."""
    cmd = [SPAWN_FCGI, "-n", "-s", os.path.join(server.run, "crmauth.sock"), "-M", "0660"]
    if server.user:
        cmd += ["-u", server.user, "-g", server.user, "-U", server.user, "-G", server.user]
    cmd += ["--", os.path.join(server.sbindir, "crmauth.fcgi")]
    return cmd if workers is None else cmd + ["-w", str(workers)]


def parse_unit(path):
    """Key = value pairs of a systemd unit file (last one wins, except
    Environment and ReadWritePaths, which accumulate)."""
    keys = {"Environment": [], "ReadWritePaths": []}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            k, v = line.split("=", 1)
            if k == "Environment":
                keys[k].append(v)
            elif k == "ReadWritePaths":
                keys[k] += v.split()
            else:
                keys[k] = v
    return keys


# What ProtectSystem= makes read-only (systemd.exec(5)).
PROTECTED = {"yes": ["/usr", "/boot", "/efi"], "true": ["/usr", "/boot", "/efi"],
             "full": ["/usr", "/boot", "/efi", "/etc"], "strict": ["/"]}

SANDBOX_SH = r"""
set -e
RO=$1 RW=$2
shift 2
mount --make-rprivate /
# Each protected tree, and every mount under it, read-only.
for top in $RO; do
	[ -d "$top" ] || continue
	mount --rbind "$top" "$top"
	awk -v t="$top" '$5 == t || index($5, (t == "/" ? "" : t) "/") == 1 { print $5 }' \
	    /proc/self/mountinfo | sort -u | while read -r m; do
		mount -o remount,bind,ro "$m" 2>/dev/null || true
	done
done
# ReadWritePaths= writable again ("-": only if it exists).
for p in $RW; do
	case $p in -*) p=${p#-}; [ -e "$p" ] || continue ;; esac
	mount --bind "$p" "$p"
	mount -o remount,bind,rw "$p"
done
exec "$@"
"""


def sandboxed(unit, cmd, user=None):
    """cmd as systemd runs a unit's ExecStart, as far as this machine
    allows without systemd: in a mount namespace of its own with the trees
    of ProtectSystem= read-only and ReadWritePaths= writable, then as User=
    with NoNewPrivileges=.  Not run as root: in a user namespace of its
    own too, as the caller.  The program keeps the PID of the command
    returned."""
    ro = PROTECTED.get(unit.get("ProtectSystem", "no"), [])
    rw = unit.get("ReadWritePaths", [])
    for p in rw:
        if not p.startswith("-") and not os.path.exists(p):
            # systemd refuses to start the unit then.
            raise AssertionError(f"ReadWritePaths={p} does not exist")
    if user is not None:
        nnp = ["--no-new-privs"] if unit.get("NoNewPrivileges") == "yes" else []
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
               *nnp, "--", *cmd]
    if not ro:
        return cmd
    ns = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    return [*ns, "sh", "-c", SANDBOX_SH, "sandbox", " ".join(ro), " ".join(rw), *cmd]


def unit_env(unit):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for e in unit["Environment"]:
        k, v = e.split("=", 1)
        env[k] = v
    return env


def start_unit_spawn_fcgi(server):
    """What systemd does with etc/crmauth-spawn-fcgi.service: make the
    RuntimeDirectory for User, run ExecStart as User with Environment."""
    unit = parse_unit(server.sample("crmauth-spawn-fcgi.service"))
    user = server.user if unit.get("User") else None
    cmd = sandboxed(unit, unit["ExecStart"].split(), user)
    err = open(os.path.join(server.logdir, "crmauth-stderr.log"), "w")
    return server.spawn(cmd, "crmauth-spawn-fcgi.service", env=unit_env(unit), stderr=err)


def start_units_socket(server):
    """What systemd does with etc/crmauth.socket + etc/crmauth.service:
    make the socket as ListenStream/SocketUser/SocketGroup/SocketMode say,
    then run ExecStart as User with the socket on standard input."""
    sock_unit = parse_unit(server.sample("crmauth.socket"))
    svc = parse_unit(server.sample("crmauth.service"))
    path = sock_unit["ListenStream"]
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(128)
    if server.user:
        shutil.chown(path, sock_unit["SocketUser"], sock_unit["SocketGroup"])
    os.chmod(path, int(sock_unit["SocketMode"], 8))
    assert svc["StandardInput"] == "socket", "the service takes the socket on stdin"
    user = server.user if svc.get("User") else None
    cmd = sandboxed(svc, svc["ExecStart"].split(), user)
    err = open(os.path.join(server.logdir, "crmauth-stderr.log"), "w")
    p = server.spawn(cmd, "crmauth.service", env=unit_env(svc), stdin=s.fileno(), stderr=err)
    s.close()
    return p


class Nginx(Server):
    """nginx with etc/nginx.conf; responders from the documented spawn-fcgi
    line (backend="spawn-fcgi") or the systemd units (backend="systemd")."""

    def __init__(self, name, backend="spawn-fcgi", workers=2, **kw):
        self.backend_kind = backend
        self.workers = workers
        super().__init__(name, **kw)
        self.kind = f"nginx+{backend}"

    def _start(self):
        if self.backend_kind == "systemd":
            self.backend = start_units_socket(self)
        else:
            env = {"PATH": os.environ.get("PATH", ""), "CRMAUTH_CONF": self.conf}
            err = open(os.path.join(self.logdir, "crmauth-stderr.log"), "w")
            self.backend = self.spawn(spawn_fcgi_cmd(self, self.workers), "spawn-fcgi",
                                      env=env, stderr=err)
        sock = os.path.join(self.run, "crmauth.sock")
        wait_for(lambda: os.path.exists(sock) or self.backend.poll() is not None, 10,
                 f"{sock} to exist")
        sample = self.sample("nginx.conf")
        gate = f"include {self.sample('nginx-auth-request.conf')};" if self.gate else ""
        tmp = os.path.join(self.dir, "nginx-tmp")
        os.makedirs(tmp, exist_ok=True)
        user = f"user {self.user};" if self.user else ""
        frame = os.path.join(self.dir, "nginx-frame.conf")
        with open(frame, "w") as f:
            f.write(f"""
daemon off;
{user}
worker_processes 2;
pid {self.dir}/nginx.pid;
error_log {self.logdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.dir}/www;
        include {sample};
        {gate}
    }}
}}
""")
        self.spawn([NGINX, "-c", frame, "-p", self.dir], "nginx")


class Apache(Server):
    """Apache 2.4 (event MPM) with etc/apache-fcgid.conf (mode="fcgid"),
    etc/apache-cgi.conf (mode="cgi"), or cgi-bin/.htaccess as a shared-
    hosting user uploads it (mode="htaccess")."""

    def __init__(self, name, mode="fcgid", extra="", **kw):
        self.mode = mode
        self.extra = extra
        super().__init__(name, **kw)
        self.kind = f"apache+{mode}"
        if mode == "htaccess":
            self.prefix = "/cgi-bin/crmauth.cgi"

    def _start(self):
        m = APACHE_MODULES
        if self.mode == "fcgid":
            include = f"Include {self.sample('apache-fcgid.conf')}"
            if self.gate:
                include += f"\nInclude {self.sample('apache-fcgid-gate.conf')}"
            mods = ["fcgid"]
        elif self.mode == "cgi":
            include = f"Include {self.sample('apache-cgi.conf')}"
            mods = ["cgid", "env"]
        else:
            cgibin = os.path.join(self.dir, "htdocs-cgi-bin")
            os.makedirs(cgibin, exist_ok=True)
            shutil.copy2(os.path.join(self.pkgdatadir, "cgi-bin", "crmauth.cgi"), cgibin)
            # Without suEXEC, SetEnv reaches the program: the
            # configuration of this test, not the bundle's ~/crmauth/.
            with open(os.path.join(TOP_SRCDIR, "cgi-bin", ".htaccess")) as f:
                ht = f.read() + f"\nSetEnv CRMAUTH_CONF {self.conf}\n"
            with open(os.path.join(cgibin, ".htaccess"), "w") as f:
                f.write(ht)
            # A stray file next to the program, which must not be served.
            with open(os.path.join(cgibin, "crmauth.conf"), "w") as f:
                f.write("db_path = secret\n")
            include = f"""Alias /cgi-bin/ {cgibin}/
<Directory {cgibin}>
    AllowOverride All
    Require all granted
</Directory>"""
            mods = ["cgid", "env"]
        user = f"User {self.user}\nGroup {self.user}" if self.user else ""
        loads = "\n".join(f"LoadModule {n}_module {m}/mod_{n}.so"
                          for n in ["mpm_event", "authz_core", "alias", "mime"] + mods)
        fcgid = (f"FcgidIPCDir {self.run}\nFcgidProcessTableFile {self.run}/fcgid_shm"
                 if "fcgid" in mods else "")
        cgid = f"ScriptSock {self.run}/cgid.sock" if "cgid" in mods else ""
        frame = os.path.join(self.dir, "httpd.conf")
        with open(frame, "w") as f:
            f.write(f"""
ServerRoot /etc/apache2
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {self.dir}/httpd.pid
Mutex file:{self.run}
{loads}
{user}
ErrorLog {self.logdir}/error.log
LogLevel {"warn fcgid:info" if "fcgid" in mods else "warn"}
TypesConfig /etc/mime.types
DocumentRoot {self.dir}/www
<Directory />
    Require all denied
</Directory>
<Directory {self.dir}/www>
    Require all granted
</Directory>
{fcgid}
{cgid}
{include}
{self.extra}
""")
        self.spawn([APACHE, "-f", frame, "-DFOREGROUND"], "apache")


def valgrind_report(servers_dirs):
    """Errors or leaks in the valgrind logs: a list of problems.  A server
    whose responders left no log at all did not run under valgrind."""
    problems = []
    for d in servers_dirs:
        if not any(n.startswith("vg-fcgi.") for n in os.listdir(d)):
            problems.append(f"{d}: no valgrind log from any responder")
        for name in sorted(os.listdir(d)):
            if not name.startswith("vg-") or not name.endswith(".log"):
                continue
            with open(os.path.join(d, name), errors="replace") as f:
                text = f.read()
            if text.strip():
                problems.append(f"{name}:\n{text[:4000]}")
    return problems


class Runner:
    """Runs test functions, counts, and prints the summary line."""

    def __init__(self, suite):
        self.suite = suite + ("-pg" if STORE == "postgresql" else "")
        self.passed = 0
        self.failed = 0

    def run(self, name, fn, *args):
        t0 = time.time()
        try:
            fn(*args)
        except Exception:                       # noqa: BLE001 - report all
            self.failed += 1
            print(f"FAIL {name} ({time.time() - t0:.1f}s)")
            traceback.print_exc(file=sys.stdout)
        else:
            self.passed += 1
            print(f"ok   {name} ({time.time() - t0:.1f}s)")
        sys.stdout.flush()

    def finish(self):
        print(f"RESULT {self.suite}: {self.passed} passed, {self.failed} failed")
        return 0 if self.failed == 0 and self.passed > 0 else 1
