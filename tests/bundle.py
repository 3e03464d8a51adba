"""The shared-hosting bundle with nothing else: its two programs, fully
static, in an otherwise empty directory tree (the bundle, /dev/null,
/dev/urandom and a writable home), chrooted there as an unprivileged
user that has no account: crmauthctl makes the store, and crmauth.cgi
answers every method as CGI.  Also under the system calls of Linux 3.10,
and traced: nothing is opened but the configuration, the store, the
events file and /dev/urandom."""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crmtest import Runner, basic, cgi_response, eq, check, expect  # noqa: E402
import hosting  # noqa: E402

TARBALL = os.environ["SH_TARBALL"]
CC = os.environ.get("CC") or "cc"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
STRACE = shutil.which("strace") or "/usr/bin/strace"
UID = 4242              # no account anywhere: the customer as suEXEC runs it
HOME = "/home/cust"     # inside the tree
CONF = HOME + "/crmauth/crmauth.conf"

ROOT = None             # the tree
BUNDLE = None           # the bundle's directory, inside the tree
OLDKERNEL = None        # tests/oldkernel.c, built
K = {}


def host(path):
    """A path of the tree, seen from outside it."""
    return ROOT + path


def run(argv, env=None, input=None, kernel=None, trace=None):
    """argv[0] (a path inside the tree) run there, chrooted, as UID."""
    cmd = [CHROOT, f"--userspec={UID}:{UID}", ROOT] + argv
    if trace:
        cmd = [STRACE, "-f", "-qq", "-o", trace] + cmd
    if kernel:
        cmd = [kernel] + cmd
    return subprocess.run(cmd, env=env if env is not None else {}, input=input,
                          capture_output=True, timeout=60)


def ctl(*args, input=None, conf=CONF, check_rc=True, **kw):
    argv = [BUNDLE + "/bin/crmauthctl"] + (["-c", conf] if conf else []) + list(args)
    r = run(argv, input=input.encode() if input else None, **kw)
    if check_rc and r.returncode != 0:
        raise AssertionError(f"crmauthctl {' '.join(args)}: {r.returncode} {r.stderr!r}")
    return r


def cgi(method, path, body=None, headers=None, env_extra=None, conf=CONF, **kw):
    """One request to crmauth.cgi as a web server runs a CGI program
    (RFC 3875): its environment, the body on stdin."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else (body or b"")
    env = {"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
           "REQUEST_METHOD": method, "PATH_INFO": path,
           "SCRIPT_NAME": "/cgi-bin/crmauth.cgi", "REMOTE_ADDR": "127.0.0.1",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80"}
    if conf:
        env["CRMAUTH_CONF"] = conf
    if data or method == "POST":
        env["CONTENT_LENGTH"] = str(len(data))
        env["CONTENT_TYPE"] = "application/json"
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    env.update(env_extra or {})
    r = run([BUNDLE + "/cgi-bin/crmauth.cgi"], env=env, input=data, **kw)
    eq(r.returncode, 0, f"crmauth.cgi exit status ({r.stderr!r})")
    resp = cgi_response(r.stdout)
    resp.stderr = r.stderr.decode(errors="replace")
    return resp


def events():
    with open(host(HOME + "/crmauth/events.log")) as f:
        return [json.loads(line) for line in f]


# ---- the tree -----------------------------------------------------------------

def make_tree():
    """Only the bundle, /dev/null, /dev/urandom and a writable home; the
    configuration copied where the bundle's README puts it."""
    global ROOT, BUNDLE
    ROOT = tempfile.mkdtemp(prefix="crmauth-bundle.")
    os.chmod(ROOT, 0o755)
    os.makedirs(host("/dev"))
    os.mknod(host("/dev/null"), 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod(host("/dev/urandom"), 0o444 | 0o020000, os.makedev(1, 9))
    os.makedirs(host(HOME))
    with tarfile.open(TARBALL) as t:
        names = t.getnames()
        t.extractall(host(HOME))
    top = names[0].split("/")[0]
    BUNDLE = HOME + "/" + top
    os.makedirs(host(HOME + "/crmauth"), mode=0o700)
    shutil.copy(host(BUNDLE + "/crmauth.conf"), host(CONF))
    for d, dirs, files in os.walk(host(HOME)):
        for n in [d] + [os.path.join(d, f) for f in files + dirs]:
            os.lchown(n, UID, UID)
    return names


def build_oldkernel():
    global OLDKERNEL
    OLDKERNEL = os.path.join(tempfile.gettempdir(), f"crmauth-oldkernel.{os.getpid()}")
    src = os.path.join(os.environ.get("top_srcdir", "."), "tests", "oldkernel.c")
    subprocess.run([CC, "-o", OLDKERNEL, src], check=True)


# ---- tests ----------------------------------------------------------------------

def t_contents(names):
    top = names[0].split("/")[0]
    eq(top, os.path.basename(TARBALL).replace("-x86_64-linux.tar.gz", ""), "top directory")
    want = {f"{top}/{p}" for p in ("README", "crmauth.conf", "bin/crmauthctl",
                                   "cgi-bin/crmauth.cgi", "cgi-bin/.htaccess")}
    check(want <= set(names), f"bundle holds {sorted(want - set(names))}")
    for p in ("/bin/crmauthctl", "/cgi-bin/crmauth.cgi"):
        check(os.stat(host(BUNDLE + p)).st_mode & 0o111, f"{p} is executable")
    with open(host(BUNDLE + "/cgi-bin/.htaccess")) as f:
        ht = f.read()
    check("SetEnv" not in re.sub(r"#.*", "", ht), ".htaccess sets nothing suEXEC strips")
    size = os.path.getsize(TARBALL)
    print(f"     bundle {os.path.basename(TARBALL)}: {size / 1e6:.2f} MB; programs "
          f"{os.path.getsize(host(BUNDLE + '/bin/crmauthctl')) / 1e6:.2f} and "
          f"{os.path.getsize(host(BUNDLE + '/cgi-bin/crmauth.cgi')) / 1e6:.2f} MB")


def t_static():
    """No program interpreter, no dynamic section, nothing needed."""
    for p in ("/bin/crmauthctl", "/cgi-bin/crmauth.cgi"):
        path = host(BUNDLE + p)
        hdr = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True)
        eq(hdr.returncode, 0, f"readelf -l {p}")
        check("INTERP" not in hdr.stdout and "interpreter" not in hdr.stdout,
              f"{p} has a program interpreter:\n{hdr.stdout}")
        dyn = subprocess.run(["readelf", "-dW", path], capture_output=True, text=True)
        check("NEEDED" not in dyn.stdout, f"{p} needs libraries:\n{dyn.stdout}")
        check("There is no dynamic section" in dyn.stdout, f"{p}: {dyn.stdout}")


def t_admin():
    """crmauthctl, chrooted, as a user with no account: every kind of record."""
    r = ctl("init")
    check(b"is ready" in r.stdout, r.stdout)
    hosting.make_records(lambda *a, input=None: ctl(*a, input=input).stdout.decode(), K)
    listed = ctl("user", "list").stdout.decode()
    check(listed.startswith("ACME\talice\tHQ,EU\tenabled"), listed)
    # The store is the user's, in ~/crmauth/db as the sample says.
    for f in ("data.mdb", "lock.mdb"):
        st = os.stat(host(HOME + "/crmauth/db/" + f))
        eq((st.st_uid, st.st_mode & 0o777), (UID, 0o600), f"db/{f} owner and mode")


def t_methods():
    """Every method through crmauth.cgi as CGI, answers as e2e checks them."""
    K["login"] = hosting.every_method(cgi, K, "CGI")
    eq(ctl("released", "count").stdout.decode().strip(), "1", "one release kept")
    # The figures of those CGI runs, over SSH: crmauthctl stats.
    js = json.loads(ctl("stats", "--json").stdout)
    issued = {x["labels"]["method"]: x["value"]
              for x in js["crmauth_tokens_issued_total"]["samples"]}
    eq(issued, {"authentication/token": 1, "authentication/web_api_key/token": 1,
                "authentication/consumer_application_key/token": 2}, "tokens issued, counted")
    eq(js["crmauth_released_tokens"]["samples"][0]["value"], 1, "released, from the store")
    text = ctl("stats").stdout.decode()
    check("crmauth_token_releases_total         2" in text, text)
    # The sample refuses GET metrics to every address (co-tenants).
    expect(cgi("GET", "/metrics"), 404, "NOT_FOUND", "metrics_allow = none")
    st = os.stat(host(HOME + "/crmauth/db/metrics"))
    eq((st.st_uid, st.st_mode & 0o777), (UID, 0o600), "db/metrics owner and mode")


def allowed_open(path):
    """What the programs may open: theirs, and nothing of a system."""
    return (path.startswith(HOME + "/crmauth/") or path in ("/dev/urandom", "/dev/random")
            or path.startswith(("/proc/", "/sys/")))


def traced_opens(trace, prog):
    """The paths prog opened (after its own execve), the system calls that
    loaded or ran anything, and its sockets."""
    with open(trace) as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if f'execve("{prog}"' in line)
    opened, bad = [], []
    for line in lines[start + 1:]:
        m = re.search(r'\b(?:open|openat|openat2|creat|stat|lstat|newfstatat|statx|access|'
                      r'faccessat2?|readlink|readlinkat|execve)\((?:AT_FDCWD|-?\d+), "([^"]*)"'
                      r'|\b(?:open|creat|stat|lstat|access|readlink)\("([^"]*)"', line)
        if m and (m.group(1) or m.group(2)):
            opened.append(m.group(1) or m.group(2))
        if re.search(r"\b(execve|socket|connect)\(", line):
            bad.append(line)
    return opened, bad


def t_nothing_loaded():
    """Traced, chrooted: a login as CGI and a crmauthctl command open
    nothing but the configuration, the store, the events file and
    /dev/urandom; they load nothing, run nothing and open no socket, even
    with a locale, a time zone and gconv asked for."""
    trace = os.path.join(ROOT, "..", f"crmauth-trace.{os.getpid()}")
    lure = {"LANG": "de_DE.UTF-8", "LC_ALL": "de_DE.UTF-8", "LANGUAGE": "de",
            "TZ": "Europe/Berlin", "GCONV_PATH": "/gconv", "LOCPATH": "/locale"}
    try:
        for what, fn, prog in (
                ("crmauth.cgi", lambda: expect(cgi(
                    "POST", "/authentication/token", {"username": "alice", "password":
                                                      hosting.PASSWORD, "organisation": "ACME"},
                    env_extra=lure, trace=trace), 200, "OK"), BUNDLE + "/cgi-bin/crmauth.cgi"),
                ("crmauthctl", lambda: ctl("user", "disable", "ACME", "nobody-here",
                                           check_rc=False, trace=trace, env=lure),
                 BUNDLE + "/bin/crmauthctl"),
                ("crmauthctl", lambda: ctl("apikey", "list", trace=trace, env=lure),
                 BUNDLE + "/bin/crmauthctl")):
            fn()
            opened, bad = traced_opens(trace, prog)
            check(opened, f"{what}: the trace shows no file at all")
            check(any(p == CONF for p in opened), f"{what}: never read {CONF}: {opened}")
            stray = [p for p in opened if not allowed_open(p)]
            eq(stray, [], f"{what} opened")
            eq(bad, [], f"{what}: loaded, ran or connected")
    finally:
        if os.path.exists(trace):
            os.unlink(trace)


def t_old_kernel():
    """Under the system calls of Linux 3.10 (CloudLinux 7): getrandom,
    statx, rseq, clone3... fail with ENOSYS, and everything still works."""
    ctl("apikey", "list", kernel=OLDKERNEL)
    key = ctl("apikey", "add", "ACME", "alice", kernel=OLDKERNEL).stdout.decode().strip()
    check(re.fullmatch(r"[0-9A-F]{32}", key), "a key made on Linux 3.10")
    r = expect(cgi("POST", "/authentication/web_api_key/token", b"",
                   headers={"Authorization": basic(key)}, kernel=OLDKERNEL),
               200, "OK", "key token on Linux 3.10")
    hosting.check_token(K, r.data["token"], "alice", "ACME", "HQ")
    expect(cgi("GET", "/authentication/token/check", kernel=OLDKERNEL,
               headers={"Authorization": f"Bearer {r.data['token']}"}), 200, "OK",
           "check on Linux 3.10")
    # The filter does bite: a program that needs getrandom(2) is refused it.
    probe = subprocess.run([OLDKERNEL, sys.executable, "-c",
                            "import os\ntry:\n os.getrandom(1)\nexcept OSError as e:\n"
                            " print(e.errno)"], capture_output=True, text=True)
    eq(probe.stdout.strip(), "38", "getrandom under the filter: ENOSYS")


def t_no_configuration():
    """No CRMAUTH_CONF and no account to find a home by: 503, and one
    line in the error log naming the places tried."""
    want = (f"no configuration: CRMAUTH_CONF is not set, and ~/crmauth/crmauth.conf: "
            f"no home directory for uid {UID}: /etc/passwd: No such file or directory")
    r = expect(cgi("GET", "/health", conf=None), 503, "SERVICE_UNAVAILABLE", "no configuration")
    check(r.headers.get("retry-after"), "Retry-After")
    lines = r.stderr.splitlines()
    eq(len(lines), 1, f"one line in the error log: {lines}")
    check(lines[0].endswith(want), lines[0])
    r = ctl("user", "list", conf=None, check_rc=False)
    eq(r.returncode, 1, "crmauthctl without a configuration")
    eq(r.stderr.decode(), f"crmauthctl: {want}\n", "crmauthctl's one line")
    r = cgi("GET", "/health", conf=None, env_extra={"CRMAUTH_CONF": HOME + "/nowhere.conf"})
    expect(r, 503, "SERVICE_UNAVAILABLE", "CRMAUTH_CONF names a missing file")
    check(r.stderr.strip().endswith(f"no configuration: CRMAUTH_CONF names {HOME}/nowhere.conf"
                                    ": No such file or directory"), r.stderr)


def t_search_order():
    """With an account in /etc/passwd (and nothing else: no NSS), both
    programs find ~/crmauth/crmauth.conf with no variable at all, and
    crmauthctl's events name the user."""
    os.makedirs(host("/etc"))
    try:
        with open(host("/etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n"
                    f"cust:x:{UID}:{UID}:A customer:{HOME}:/bin/sh\n")
        with open(host("/etc/group"), "w") as f:
            f.write(f"cust:x:{UID}:\n")
        expect(cgi("GET", "/health", conf=None), 200, "OK", "health, found by the home")
        r = expect(cgi("POST", "/authentication/web_api_key/token", b"", conf=None,
                       headers={"Authorization": basic(K["apikey"])}), 200, "OK", "key token")
        ctl("user", "add", "ACME", "carol", "--unit", "HQ", input="carol-pw-1\n", conf=None)
        ev = events()[-1]
        eq((ev["event"], ev["command"], ev["usr"], ev["unix_user"]),
           ("admin", "user add", "carol", "cust"), "the admin event names the user")
        # Never a file the web server could serve.
        for name, root in (("DOCUMENT_ROOT", HOME), ("CONTEXT_DOCUMENT_ROOT", HOME + "/crmauth")):
            r = cgi("GET", "/health", conf=None, env_extra={name: root})
            expect(r, 503, "SERVICE_UNAVAILABLE", f"configuration under {name}")
            check(f"the configuration {CONF} is inside the web root {root} ({name}): the web "
                  "server could serve it; move it out" in r.stderr, r.stderr)
        r = cgi("GET", "/health", env_extra={"DOCUMENT_ROOT": HOME + "/crmauth/db"})
        expect(r, 503, "SERVICE_UNAVAILABLE", "the store under DOCUMENT_ROOT")
        check(f"db_path {HOME}/crmauth/db is inside the web root" in r.stderr, r.stderr)
        expect(cgi("GET", "/health", conf=None,
                   env_extra={"DOCUMENT_ROOT": HOME + "/public_html",
                              "CONTEXT_DOCUMENT_ROOT": HOME + "/public_html"}),
               200, "OK", "web root beside ~/crmauth")
    finally:
        shutil.rmtree(host("/etc"))


def t_postgresql_refused():
    """store = postgresql in this build: one clear line, at start."""
    path = HOME + "/crmauth/pg.conf"
    with open(host(path), "w") as f:
        f.write("store = postgresql\npg_conninfo = host=/nowhere dbname=crmauth\n")
    try:
        want = (f"{path}: store = postgresql: this is the shared-hosting build, which keeps "
                "its store in LMDB (shared hosting is one machine)")
        r = ctl("user", "list", conf=path, check_rc=False)
        eq((r.returncode, r.stderr.decode()), (1, f"crmauthctl: {want}\n"), "crmauthctl")
        r = expect(cgi("GET", "/health", conf=path), 503, "SERVICE_UNAVAILABLE", "crmauth.cgi")
        eq(len(r.stderr.splitlines()), 1, f"one line: {r.stderr!r}")
        check(r.stderr.strip().endswith(want), r.stderr)
    finally:
        os.unlink(host(path))


def t_events():
    """Events in ~/crmauth/events.log, the user's, no secret in them;
    crmauthctl events rotate, and the next request writes a new file."""
    log = host(HOME + "/crmauth/events.log")
    st = os.stat(log)
    eq(st.st_uid, UID, "events.log is the user's")
    evs = events()
    kinds = {(e["event"], e.get("method") or e.get("command")) for e in evs}
    for want in (("token_issued", "authentication/token"),
                 ("token_issued", "authentication/web_api_key/token"),
                 ("token_issued", "authentication/consumer_application_key/token"),
                 ("token_released", "authentication/token/release"),
                 ("auth_failed", "authentication/token"),
                 ("admin", "init"), ("admin", "apikey add"), ("admin", "access-token add")):
        check(want in kinds, f"event {want} in {sorted(kinds)}")
    with open(log) as f:
        text = f.read()
    for secret in (hosting.PASSWORD, hosting.CODE, hosting.PASS_CODE, K["apikey"], K["ck"],
                   K["login"], K["secret"]):
        check(secret not in text, "a secret in the events")
    before = len(evs)
    r = ctl("events", "rotate")
    eq(r.stdout.decode(), f"{HOME}/crmauth/events.log is now {HOME}/crmauth/events.log.1; "
       "7 kept\n", "rotate says")
    with open(log + ".1") as f:
        eq(len(f.read().splitlines()), before, "every line kept in events.log.1")
    expect(cgi("POST", "/authentication/web_api_key/token", b"",
               headers={"Authorization": basic(K["apikey"])}), 200, "OK")
    evs = events()
    eq([(e["event"], e.get("command") or e.get("method")) for e in evs],
       [("admin", "events rotate"), ("token_issued", "authentication/web_api_key/token")],
       "the new events.log")
    ctl("events", "rotate")
    check(os.path.exists(log + ".2"), "events.log.1 became events.log.2")
    eq([e["command"] for e in events()], ["events rotate"], "a new events.log again")
    for _ in range(3):
        ctl("events", "rotate")
    eq(sorted(n for n in os.listdir(host(HOME + "/crmauth")) if n.startswith("events.log.")),
       ["events.log.1", "events.log.2", "events.log.3", "events.log.4", "events.log.5"],
       "five generations")
    ctl("events", "rotate", "--keep", "2")
    eq(sorted(n for n in os.listdir(host(HOME + "/crmauth")) if n.startswith("events.log.")),
       ["events.log.1", "events.log.2"], "--keep 2 keeps two, older ones gone")
    r = ctl("events", "rotate", "--keep", "0", check_rc=False)
    eq(r.returncode, 2, "--keep 0 is a usage error")


def main():
    runner = Runner("bundle")
    if os.geteuid() != 0:
        print("bundle: needs root (chroot, mknod)")
        return 77
    try:
        names = make_tree()
        build_oldkernel()
        runner.run("the bundle: its files, its size", t_contents, names)
        runner.run("both programs fully static: no interpreter, no library", t_static)
        runner.run("crmauthctl in the empty tree: every kind of record", t_admin)
        runner.run("crmauth.cgi in the empty tree: every method", t_methods)
        runner.run("traced: nothing opened but ours, nothing loaded", t_nothing_loaded)
        runner.run("under Linux 3.10's system calls", t_old_kernel)
        runner.run("no configuration: 503 and one line naming the places", t_no_configuration)
        runner.run("~/crmauth/crmauth.conf by /etc/passwd alone; never in the web root",
                   t_search_order)
        runner.run("store = postgresql refused in one line", t_postgresql_refused)
        runner.run("events in the home, rotated without root", t_events)
    finally:
        if ROOT:
            shutil.rmtree(ROOT, ignore_errors=True)
        if OLDKERNEL and os.path.exists(OLDKERNEL):
            os.unlink(OLDKERNEL)
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
