"""Test harness: a real lighttpd on a free loopback port serving the freshly
built crmauth.fcgi (mod_fastcgi) and crmauth.cgi (mod_cgi), a store made
with crmauthctl, and plain HTTP from the standard library.

Only 127.0.0.1 is ever used.  Every server is started and stopped here.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

TOP_BUILDDIR = os.path.abspath(os.environ.get("top_builddir", "."))
TOP_SRCDIR = os.path.abspath(os.environ.get("top_srcdir", "."))
FCGI = os.path.join(TOP_BUILDDIR, "crmauth.fcgi")
CTL = os.path.join(TOP_BUILDDIR, "crmauthctl")
LIGHTTPD = os.environ.get("LIGHTTPD") or shutil.which("lighttpd") or "/usr/sbin/lighttpd"
VALGRIND = os.environ.get("CRMAUTH_VALGRIND") or ""
VALGRIND_PROBLEMS = []      # filled by Server.cleanup() under valgrind


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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """lighttpd + crmauth with its own store, config and error log."""

    def __init__(self, name, procs=2, conf_extra="", conf_text=None, init=True):
        self.dir = tempfile.mkdtemp(prefix=f"crmauth-e2e-{name}-")
        self.name = name
        self.procs = procs
        self.db = os.path.join(self.dir, "db")
        self.conf = os.path.join(self.dir, "crmauth.conf")
        with open(self.conf, "w") as f:
            if conf_text is not None:
                f.write(conf_text)
            else:
                f.write(f"# e2e {name}\ndb_path = {self.db}\n"
                        "argon2_memory_kib = 8192\nargon2_iterations = 1\n"
                        "max_body = 4096\n" + conf_extra)
        if init:
            self.ctl("init")
        self.proc = None
        self.port = None

    # -- admin tool ------------------------------------------------------
    def ctl(self, *args, input=None, check=True):
        r = subprocess.run([CTL, "-c", self.conf, *args], input=input,
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"crmauthctl {' '.join(args)}: {r.returncode} {r.stderr}")
        return r

    def dump(self):
        """Every named database of the store, for before/after comparison."""
        r = subprocess.run(["mdb_dump", "-a", self.db], capture_output=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"mdb_dump: {r.stderr!r}")
        return r.stdout

    def released_count(self):
        return int(self.ctl("released", "count").stdout)

    # -- web server --------------------------------------------------------
    def _write_lighttpd_conf(self):
        www = os.path.join(self.dir, "www")
        cgibin = os.path.join(self.dir, "cgi-bin")
        os.makedirs(www, exist_ok=True)
        os.makedirs(cgibin, exist_ok=True)
        fcgi = FCGI
        cgi = os.path.join(cgibin, "crmauth.cgi")
        if VALGRIND:
            fcgi = os.path.join(self.dir, "vg-fcgi.sh")
            self._wrapper(fcgi, "fcgi")
            self._wrapper(cgi, "cgi")
        elif not os.path.exists(cgi):
            os.symlink(FCGI, cgi)
        text = f"""
server.document-root = "{www}"
server.bind = "127.0.0.1"
server.port = {self.port}
server.errorlog = "{self.dir}/error.log"
server.breakagelog = "{self.dir}/breakage.log"
server.pid-file = "{self.dir}/lighttpd.pid"
server.modules = ("mod_alias", "mod_setenv", "mod_cgi", "mod_fastcgi")
fastcgi.server = ("/api" => ((
    "bin-path" => "{fcgi}",
    "socket" => "{self.dir}/crmauth.sock",
    "max-procs" => {self.procs},
    "check-local" => "disable",
    "bin-environment" => ("CRMAUTH_CONF" => "{self.conf}"),
)))
alias.url = ("/cgi-bin/" => "{cgibin}/")
$HTTP["url"] =~ "^/cgi-bin/" {{
    cgi.assign = ("" => "")
    setenv.add-environment = ("CRMAUTH_CONF" => "{self.conf}")
}}
"""
        path = os.path.join(self.dir, "lighttpd.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def _wrapper(self, path, tag):
        log = os.path.join(self.dir, f"vg-{tag}.%p.log")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n"
                    f"exec {VALGRIND} --quiet --leak-check=full "
                    "--show-leak-kinds=definite,indirect "
                    "--errors-for-leak-kinds=definite,indirect "
                    f"--log-file={log} {FCGI} \"$@\"\n")
        os.chmod(path, 0o755)

    def start(self):
        for attempt in range(5):
            self.port = free_port()
            conf = self._write_lighttpd_conf()
            self.proc = subprocess.Popen([LIGHTTPD, "-D", "-f", conf],
                                         stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            deadline = time.time() + 20
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    with socket.create_connection(("127.0.0.1", self.port), 0.2):
                        return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise AssertionError(f"lighttpd did not start; see {self.dir}/error.log")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def responder_pids(self):
        """The FastCGI processes lighttpd spawned (its children)."""
        r = subprocess.run(["pgrep", "-P", str(self.proc.pid)],
                           capture_output=True, text=True)
        return set(r.stdout.split())

    def error_log(self):
        """lighttpd's error log and its breakage log, where the stderr of
        FastCGI and CGI programs goes."""
        text = ""
        for name in ("error.log", "breakage.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f.read()
            except FileNotFoundError:
                pass
        return text

    def cleanup(self):
        started = self.port is not None
        self.stop()
        if VALGRIND and started:
            # Give the responders a moment to write their reports.
            time.sleep(0.5)
            VALGRIND_PROBLEMS.extend(valgrind_report([self.dir]))
        if os.environ.get("CRMAUTH_KEEP"):
            print(f"# kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- HTTP ----------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, raw=None,
                content_type="application/json", prefix="/api"):
        """One request on a fresh connection.  body: dict/list/str to send
        as JSON text; raw: bytes sent as they are."""
        hdrs = dict(headers or {})
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
        if data is not None and content_type is not None:
            hdrs.setdefault("Content-Type", content_type)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, prefix + path, body=data, headers=hdrs)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()},
                            r.read())
        finally:
            conn.close()

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)


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
        self.suite = suite
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
