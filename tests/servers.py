"""The method suite through every deployment our users run, each built
from its sample in etc/: lighttpd (bin-path and external socket), nginx
with spawn-fcgi, nginx with the systemd units, Apache with mod_fcgid,
Apache with CGI, and the shared-hosting .htaccess.  The answers must
agree between servers, token values aside.  Then what process managers
do: SIGTERM in the middle of a request, a killed worker, mod_fcgid
idling a process out."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crmtest import (Runner, Lighttpd, LighttpdSocket, Nginx, Apache, RUN_USER,  # noqa: E402
                     basic, jwt_parts, sign, b64url_decode, stop_process, eq, check,
                     wait_for, wait_idle, children, cpu_ticks, parse_unit, sandboxed,
                     TOP_BUILDDIR)

DEPLOYMENTS = [
    ("lighttpd, bin-path", Lighttpd, {}),
    ("lighttpd, socket + crmauth-spawn-fcgi.service", LighttpdSocket, {}),
    ("nginx + spawn-fcgi", Nginx, {"backend": "spawn-fcgi"}),
    ("nginx + crmauth.socket/crmauth.service", Nginx, {"backend": "systemd"}),
    ("Apache + mod_fcgid", Apache, {"mode": "fcgid"}),
    ("Apache + CGI", Apache, {"mode": "cgi"}),
    ("Apache + cgi-bin/.htaccess", Apache, {"mode": "htaccess"}),
]

TOKEN_RE = re.compile(rb'eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+')
JTI_RE = re.compile(rb'"jti":"[0-9A-F]{32}"')
TIME_RE = re.compile(rb'"(iat|exp)":[0-9]+')


def normalise(body):
    """What may differ between servers: token values, ids and times."""
    body = TOKEN_RE.sub(b"TOKEN", body)
    body = JTI_RE.sub(b'"jti":"JTI"', body)
    return TIME_RE.sub(rb'"\1":TIME', body)


def provision(s):
    """The same accounts on every server (keys differ: they are random)."""
    k = {}
    s.ctl("user", "add", "ACME", "alice", "--unit", "HQ", "--unit", "EU", input="alice-pw\n")
    s.ctl("user", "add", "ACME", "bob", "--unit", "HQ", input="bob-pw\n")
    s.ctl("user", "disable", "ACME", "bob")
    k["apikey"] = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
    k["revoked"] = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
    s.ctl("apikey", "revoke", input=k["revoked"] + "\n")
    k["ck"] = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
    s.add_code("ACME", "C-1", "CODE-1", ari="AR-1")
    s.ctl("access-token", "add", "ACME", "--contact", "C-2", "--identifier", "card-2",
          input="4321\n")
    kid, secret = s.ctl("key", "export").stdout.split()
    k["kid"], k["secret"] = kid, b64url_decode(secret)
    return k


def method_suite(s, k):
    """Every method and error, through s.  Checks each answer and returns
    them normalised, for comparing servers."""
    J = "application/json"
    login = {"username": "alice", "password": "alice-pw", "organisation": "ACME"}
    ati = {"access_token_identifier": {"authentication_code": "CODE-1"}}
    forged_hdr = {"typ": "JWT", "alg": "HS512", "kid": k["kid"]}
    answers = []

    def ask(name, status, code, method, path, body=None, headers=None, raw=None,
            content_type=J):
        r = s.request(method, path, body, headers=headers, raw=raw, content_type=content_type)
        eq((r.status, r.code), (status, code), f"{s.kind}: {name} ({r!r})")
        eq(r.headers.get("content-type"), "application/json; charset=utf-8", f"{name} type")
        eq(r.headers.get("cache-control"), "no-store", f"{name} Cache-Control")
        answers.append((name, r.status,
                        r.headers.get("www-authenticate"), r.headers.get("allow"),
                        "retry-after" in r.headers, normalise(r.body)))
        return r

    ask("health", 200, "OK", "GET", "/health")
    ask("health, trailing slash", 200, "OK", "GET", "/health/")
    r = ask("password login", 200, "OK", "POST", "/authentication/token", login)
    token = r.data["token"]
    c = jwt_parts(token)[1]
    eq((c["usr"], c["org"], c["oun"], c["exp"] - c["iat"]), ("alice", "ACME", "HQ", 7200),
       "claims")
    r = ask("login with unit EU", 200, "OK", "POST", "/authentication/token",
            dict(login, unit="EU"))
    eq(jwt_parts(r.data["token"])[1]["oun"], "EU", "unit")
    ask("unit not allowed", 403, "INVALID_UNIT", "POST", "/authentication/token",
        dict(login, unit="XX"))
    ask("wrong password", 401, "INVALID_CREDENTIALS", "POST", "/authentication/token",
        dict(login, password="nope"))
    ask("unknown user", 401, "INVALID_CREDENTIALS", "POST", "/authentication/token",
        dict(login, username="nobody"))
    ask("disabled user", 401, "INVALID_CREDENTIALS", "POST", "/authentication/token",
        dict(login, username="bob", password="bob-pw"))
    ask("missing password", 400, "INVALID_REQUEST", "POST", "/authentication/token",
        {"username": "alice", "organisation": "ACME"})
    ask("not JSON", 400, "INVALID_REQUEST", "POST", "/authentication/token", raw=b"{nope")
    ask("text/plain", 415, "UNSUPPORTED_MEDIA_TYPE", "POST", "/authentication/token",
        json.dumps(login), content_type="text/plain")
    ask("body over max_body", 413, "PAYLOAD_TOO_LARGE", "POST", "/authentication/token",
        dict(login, password="x" * 5000))
    ask("GET on a POST method", 405, "METHOD_NOT_ALLOWED", "GET", "/authentication/token")
    ask("no such method", 404, "NOT_FOUND", "POST", "/authentication/nothing", {})

    r = ask("Web API key", 200, "OK", "POST", "/authentication/web_api_key/token",
            headers={"Authorization": basic(k["apikey"])})
    eq(jwt_parts(r.data["token"])[1]["usr"], "alice", "key's user")
    ask("Web API key, unit EU", 200, "OK", "POST", "/authentication/web_api_key/token",
        {"unit": "EU"}, headers={"Authorization": basic(k["apikey"])})
    ask("Web API key missing", 401, "INVALID_CREDENTIALS", "POST",
        "/authentication/web_api_key/token")
    ask("Web API key unknown", 401, "INVALID_CREDENTIALS", "POST",
        "/authentication/web_api_key/token", headers={"Authorization": basic("0" * 32)})
    ask("Web API key revoked", 401, "INVALID_CREDENTIALS", "POST",
        "/authentication/web_api_key/token", headers={"Authorization": basic(k["revoked"])})

    hdr = {"Authorization": basic(k["ck"])}
    r = ask("consumer + code", 200, "OK", "POST",
            "/authentication/consumer_application_key/token", ati, headers=hdr)
    c = jwt_parts(r.data["token"])[1]
    eq((c["usr"], c["cii"], c["ari"]), ("shop", "C-1", "AR-1"), "consumer claims")
    ask("consumer + identifier", 200, "OK", "POST",
        "/authentication/consumer_application_key/token",
        {"access_token_identifier": {"identifier": "card-2", "pass_code": "4321"}},
        headers=hdr)
    ask("consumer, wrong pass code", 401, "INVALID_CREDENTIALS", "POST",
        "/authentication/consumer_application_key/token",
        {"access_token_identifier": {"identifier": "card-2", "pass_code": "0000"}},
        headers=hdr)
    ask("consumer, no identifier", 400, "INVALID_REQUEST", "POST",
        "/authentication/consumer_application_key/token", {}, headers=hdr)

    r = ask("check", 200, "OK", "GET", "/authentication/token/check",
            headers={"Authorization": f"Bearer {token}"})
    eq(r.data, jwt_parts(token)[1], "check gives the claims")
    ask("check, no token", 401, "INVALID_TOKEN", "GET", "/authentication/token/check")
    ask("check, forged", 401, "INVALID_TOKEN", "GET", "/authentication/token/check",
        headers={"Authorization": "Bearer " + sign(forged_hdr, c, k["secret"], "sha512")})

    n = s.released_count()
    ask("release", 200, "OK", "POST", "/authentication/token/release", {"token": token})
    eq(s.released_count(), n + 1, "released count")
    v = s.verify(token)
    check(v.returncode == 1 and "released" in v.stderr, f"refused after release: {v.stderr}")
    ask("release again", 200, "OK", "POST", "/authentication/token/release", {"token": token})
    ask("check after release", 401, "TOKEN_RELEASED", "POST", "/authentication/token/check",
        {"token": token})
    ask("release forged (HS512)", 401, "INVALID_TOKEN", "POST", "/authentication/token/release",
        {"token": sign(forged_hdr, c, k["secret"], "sha512")})
    ask("release garbage", 401, "INVALID_TOKEN", "POST", "/authentication/token/release",
        {"token": "a.b.c"})
    return answers


RESULTS = {}


def run_deployment(name, cls, kw):
    s = cls("srv", user=RUN_USER, **kw).start()
    try:
        k = provision(s)
        RESULTS[name] = method_suite(s, k)
        log = s.error_log()
        for secret in ("alice-pw", "4321", "CODE-1", k["apikey"], k["ck"]):
            check(secret not in log, f"{secret!r} in the logs of {s.kind}")
    finally:
        s.cleanup()


def t_answers_agree():
    names = list(RESULTS)
    check(len(names) == len(DEPLOYMENTS), f"every deployment ran: {names}")
    ref = RESULTS[names[0]]
    for name in names[1:]:
        for a, b in zip(ref, RESULTS[name]):
            eq(b, a, f"{name} vs {names[0]}")
        eq(len(RESULTS[name]), len(ref), f"{name}: answers")


# ---- gates: other content protected by crmauth tokens -------------------------

def gate_suite(s):
    """A static file under /private/: served with a fresh token; refused
    with a released, expired, forged or missing one."""
    www = os.path.join(s.dir, "www", "private")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "report.txt"), "w") as f:
        f.write("the protected report\n")
    s.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="alice-pw\n")

    def fetch(tok, raw=None):
        h = {} if tok is None and raw is None else {"Authorization": raw or f"Bearer {tok}"}
        return s.get("/private/report.txt", prefix="", headers=h)

    fresh = s.login_token("alice", "alice-pw")
    r = fetch(fresh)
    eq((r.status, r.body), (200, b"the protected report\n"), f"{s.kind}: fresh token")
    released = s.login_token("alice", "alice-pw")
    eq(s.post("/authentication/token/release", {"token": released}).status, 200, "release")
    kid, secret = s.ctl("key", "export").stdout.split()
    c = dict(jwt_parts(fresh)[1], iat=1600000000, exp=1600007200)
    expired = sign({"typ": "JWT", "alg": "HS256", "kid": kid}, c, b64url_decode(secret))
    forged = sign({"typ": "JWT", "alg": "HS256", "kid": kid}, jwt_parts(fresh)[1], b"x" * 32)
    invalid = 'Bearer error="invalid_token"'
    for what, tok, raw, challenge in (("released", released, None, invalid),
                                      ("expired", expired, None, invalid),
                                      ("forged", forged, None, invalid),
                                      ("garbage", "a.b.c", None, invalid),
                                      ("Basic instead", None, basic("x"), "Bearer"),
                                      ("missing", None, None, "Bearer")):
        r = fetch(tok, raw)
        eq(r.status, 401, f"{s.kind}: {what} ({r!r})")
        check(b"the protected report" not in r.body, f"{s.kind}: {what} leaked the file")
        eq(r.headers.get("www-authenticate"), challenge, f"{s.kind}: {what} challenge")
    eq(fetch(fresh).status, 200, f"{s.kind}: the fresh token still works")
    return fresh


def t_gate_lighttpd():
    s = Lighttpd("gate", user=RUN_USER, gate=True).start()
    try:
        fresh = gate_suite(s)
        # The claims reach a CGI program behind the authorizer.
        cgi = os.path.join(s.dir, "www", "private", "whoami.cgi")
        with open(cgi, "w") as f:
            f.write("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s|%s|%s|%s|%s\\n' "
                    "\"$CRMAUTH_USR\" \"$CRMAUTH_ORG\" \"$CRMAUTH_JTI\" \"$CRMAUTH_CII\" "
                    "\"$CRMAUTH_ARI\"\n")
        os.chmod(cgi, 0o755)
        r = s.get("/private/whoami.cgi", prefix="", headers={"Authorization": f"Bearer {fresh}"})
        eq(r.status, 200, f"whoami {r!r}")
        eq(r.body.decode().strip(), f"alice|ACME|{jwt_parts(fresh)[1]['jti']}||",
           "Variable-CRMAUTH_* reached the program")
        # A consumer token: its contact and accounts receivable ids too.
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        s.add_code("ACME", "C-1", "CODE-1", ari="AR-1")
        r = s.post("/authentication/consumer_application_key/token",
                   {"access_token_identifier": {"authentication_code": "CODE-1"}},
                   headers={"Authorization": basic(ck)})
        eq(r.status, 200, f"consumer token {r!r}")
        tok = r.data["token"]
        r = s.get("/private/whoami.cgi", prefix="", headers={"Authorization": f"Bearer {tok}"})
        eq(r.body.decode().strip(), f"shop|ACME|{jwt_parts(tok)[1]['jti']}|C-1|AR-1",
           "CRMAUTH_CII and CRMAUTH_ARI reached the program")
    finally:
        s.cleanup()


def t_gate_apache():
    s = Apache("gate", mode="fcgid", user=RUN_USER, gate=True).start()
    try:
        gate_suite(s)
    finally:
        s.cleanup()


def t_gate_nginx():
    s = Nginx("gate", backend="systemd", user=RUN_USER, gate=True).start()
    try:
        gate_suite(s)
    finally:
        s.cleanup()


# ---- process managers -------------------------------------------------------

# Password checks slow enough to send a signal in the middle of one:
# the server's own cost (a login at another cost is rehashed at the
# server's).
SLOW = "argon2_memory_kib = 131072\nargon2_iterations = 10\n"


def slow_user(s):
    """A user whose password takes a while to check (s made with
    argon2=SLOW)."""
    s.ctl("user", "add", "ACME", "slow", "--unit", "HQ", input="slow-pw\n")


def login_in_background(s):
    box = {}

    def go():
        t0 = time.time()
        box["r"] = s.post("/authentication/token",
                          {"username": "slow", "password": "slow-pw", "organisation": "ACME"})
        box["t"] = time.time() - t0
    t = threading.Thread(target=go)
    t.start()
    return t, box


def sigterm_mid_request(s, target, what):
    """Send SIGTERM while a slow login is in hand: the answer is whole and
    the process exits 0."""
    t0 = time.time()
    r = s.post("/authentication/token",
               {"username": "slow", "password": "slow-pw", "organisation": "ACME"})
    took = time.time() - t0
    eq(r.status, 200, f"slow login ({r!r})")
    check(took > 0.2, f"the slow login is slow enough to interrupt ({took:.2f}s)")
    pids = s.responder_pids()
    for attempt in range(3):
        wait_idle(pids)
        before = cpu_ticks(pids)
        t, box = login_in_background(s)
        # In hand: a responder has spent 30 ms of CPU on it (idle ones
        # spend none; the slow hash takes far longer), unanswered yet.
        wait_for(lambda: cpu_ticks(pids) >= before + 3 or "r" in box, 30,
                 "a responder to start on the slow login", interval=0.01)
        if "r" not in box:
            break
        t.join(60)      # answered before we looked: try again
    else:
        raise AssertionError("the slow login was answered before it could be interrupted")
    target()
    t.join(60)
    r = box.get("r")
    check(r is not None, "an answer came")
    eq((r.status, r.code), (200, "OK"), f"{what}: the request in hand finished ({r!r})")
    check(r.data["token"].count(".") == 2, "a whole token")


def t_sigterm_responder():
    """spawn-fcgi -n: the responder alone receives SIGTERM."""
    s = Nginx("sigterm", backend="spawn-fcgi", workers=None, user=RUN_USER,
              argon2=SLOW).start()
    try:
        slow_user(s)
        p = s.backend
        sigterm_mid_request(s, lambda: p.send_signal(signal.SIGTERM), "spawn-fcgi -n")
        eq(p.wait(20), 0, "exit status after SIGTERM")
    finally:
        s.cleanup()


def t_sigterm_systemd():
    """systemd stops crmauth.service by sending SIGTERM to every process of
    the unit (supervisor and workers) at once."""
    s = Nginx("systemd", backend="systemd", user=RUN_USER, argon2=SLOW).start()
    try:
        slow_user(s)
        p = s.backend
        sigterm_mid_request(s, lambda: os.killpg(p.pid, signal.SIGTERM), "systemd stop")
        eq(p.wait(20), 0, "supervisor's exit status")
        left = subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True, text=True)
        eq(left.stdout.split(), [], "no worker left behind")
    finally:
        s.cleanup()


def t_worker_restarted():
    """-w: a worker killed outright is replaced, and says so in the log."""
    s = Nginx("restart", backend="systemd", user=RUN_USER).start()
    try:
        sup = s.backend

        def two_workers(without=None):
            w = children(sup.pid)
            return w if len(w) == 2 and without not in w else None
        # The port answers before the supervisor has forked them all.
        workers = wait_for(two_workers, 20, "the supervisor's two workers")
        os.kill(int(workers[0]), signal.SIGKILL)
        wait_for(lambda: two_workers(without=workers[0]), 20,
                 f"worker {workers[0]} to be replaced")
        for _ in range(6):
            eq(s.get("/health").status, 200, "still serving")
        wait_for(lambda: f"worker {workers[0]} killed by signal 9; restarting" in s.error_log(),
                 10, "the supervisor's log line")
        stop_process(sup)
        eq(sup.returncode, 0, "supervisor exit status")
    finally:
        s.cleanup()


def t_crash_safety():
    """50 rounds of SIGKILL to a worker at a random moment, under four
    clients logging in and releasing: every release answered 200 holds,
    the store opens cleanly, and no dead process keeps a reader slot."""
    import random
    s = Nginx("crash", backend="systemd", user=RUN_USER).start()
    try:
        k = provision(s)
        sup = s.backend
        stop = threading.Event()
        lock = threading.Lock()
        acked, attempted, answers = [], [], {}

        def client():
            while not stop.is_set():
                r = s.post("/authentication/web_api_key/token",
                           headers={"Authorization": basic(k["apikey"])})
                answers[r.status] = answers.get(r.status, 0) + 1
                if r.status != 200:
                    continue
                tok = r.data["token"]
                with lock:
                    attempted.append(tok)
                r = s.post("/authentication/token/release", {"token": tok})
                with lock:
                    answers[r.status] = answers.get(r.status, 0) + 1
                    if r.status == 200:
                        acked.append(tok)
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        kills = 0
        try:
            for _ in range(50):
                # A random moment: the point of the test, not a wait.
                time.sleep(random.uniform(0.01, 0.12))
                workers = children(sup.pid)
                if workers:
                    try:
                        os.kill(int(random.choice(workers)), signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass        # gone between pgrep and kill
            # Service goes on after the last kill.
            n = len(acked)
            wait_for(lambda: len(acked) >= n + 4, 60, "releases after the last kill")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        print(f"  {kills} kills; answers {answers}; {len(acked)} releases acknowledged")
        check(kills >= 45 and len(acked) > 50, "enough kills and releases to mean something")
        # A worker killed after its commit but before its answer leaves a
        # release in force that the client never saw confirmed: the safe
        # way round.  So: every acknowledged one, and none not attempted.
        n = s.released_count()
        check(len(set(acked)) <= n <= len(set(attempted)),
              f"released {n}, acknowledged {len(acked)}, attempted {len(attempted)}")
        misses = [t for t in acked if s.get("/authentication/token/check",
                  headers={"Authorization": f"Bearer {t}"}).code != "TOKEN_RELEASED"]
        eq(len(misses), 0, f"{len(misses)} acknowledged releases lost")
        # The reader table: only processes that are alive.
        # (mdb_stat -r exits 1 even when it prints the table.)
        out = subprocess.run(["mdb_stat", "-r", s.db], capture_output=True, text=True).stdout
        check("Reader Table Status" in out, f"mdb_stat -r: {out!r}")
        pids = [ln.split()[0] for ln in out.splitlines() if ln.split() and
                ln.split()[0].isdigit()]
        dead = [p for p in pids if not os.path.exists(f"/proc/{p}")]
        eq(dead, [], f"reader slots of dead processes: {out}")
        wait_for(lambda: "killed by signal 9; restarting" in s.error_log(), 10,
                 "the supervisor's log line")
        stop_process(sup)
        eq(sup.returncode, 0, "the supervisor stops cleanly after all that")
    finally:
        s.cleanup()


def t_fcgid_idle_out():
    """mod_fcgid stops an idle process with SIGTERM: it exits 0, the next
    request starts a new one, and nothing is lost."""
    s = Apache("idle", mode="fcgid", user=RUN_USER,
               extra="FcgidIdleTimeout 2\nFcgidIdleScanInterval 1\n"
               # below this count mod_fcgid keeps idle processes
               "FcgidMinProcessesPerClass 0\n").start()
    try:
        k = provision(s)
        kept = s.post("/authentication/web_api_key/token",
                      headers={"Authorization": basic(k["apikey"])}).data["token"]
        gone = s.post("/authentication/web_api_key/token",
                      headers={"Authorization": basic(k["apikey"])}).data["token"]
        eq(s.post("/authentication/token/release", {"token": gone}).status, 200, "release")
        before = s.responder_pids()
        eq(len(before), 1, "one responder process")
        pid = next(iter(before))
        # mod_fcgid sends SIGTERM, then logs the exit status when it reaps.
        want = re.compile(r"crmauth\.fcgi\(%s\) exit\(idle timeout\), terminated by "
                          r"calling exit\(\), return code: 0" % pid)
        wait_for(lambda: want.search(s.error_log()), 40, "mod_fcgid to log an exit 0",
                 interval=0.25)
        check(pid not in s.responder_pids(), "idled out")
        eq(s.get("/health").status, 200, "a new process serves")
        after = s.responder_pids()
        check(after and not (after & before), f"a new process: {before} -> {after}")
        eq(s.verify(kept).returncode, 0, "kept token still good")
        v = s.verify(gone)
        check(v.returncode == 1 and "released" in v.stderr, "released token still refused")
        r = s.post("/authentication/token/release", {"token": gone})
        eq(r.status, 200, "release through the new process")
        eq(s.released_count(), 1, "the released table")
    finally:
        s.cleanup()


def t_unit_sandbox():
    """This build's crmauth.service, as systemd would run it: under
    ProtectSystem=full, /usr is read-only, and the store of a build with
    the default prefix is /usr/local/var/lib/crmauth.  crmauth.fcgi -t
    opens the store as every request does.  In a mount namespace of the
    test's own, /usr/local is a scratch tmpfs holding the configuration
    and a store made by crmauthctl init; the machine's /usr/local is not
    touched.  Without the unit's ReadWritePaths= the same check says
    "Read-only file system", so the emulation does honour ProtectSystem."""
    unit_file = os.path.join(TOP_BUILDDIR, "etc", "crmauth.service")
    svc = parse_unit(unit_file)
    conf = dict(e.split("=", 1) for e in svc["Environment"])["CRMAUTH_CONF"]
    if not conf.startswith("/usr/local/"):
        print(f"  (this build's configuration is {conf}, not under /usr/local: "
              "the namespace's scratch /usr/local does not apply; checked in the default build)")
        return
    eq(svc.get("ProtectSystem"), "full", "the unit's ProtectSystem=")
    check(os.geteuid() == 0, "mount namespaces need root")
    fcgi = os.path.join(TOP_BUILDDIR, "crmauth.fcgi")
    ctl = os.path.join(TOP_BUILDDIR, "crmauthctl")
    prepare = (f'mount --make-rprivate / && mount -t tmpfs -o mode=0755 scratch /usr/local && '
               f'mkdir -p "$(dirname {conf})" && '
               f'cp {os.path.join(TOP_BUILDDIR, "etc", "crmauth.conf")} {conf} && '
               f'{ctl} init --group {RUN_USER} >/dev/null && exec "$@"')

    def check_as_unit(unit):
        cmd = sandboxed(unit, [fcgi, "-t"], RUN_USER)
        return subprocess.run(["unshare", "-m", "sh", "-c", prepare, "prepare", *cmd],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60, env={"PATH": os.environ["PATH"], "CRMAUTH_CONF": conf})
    r = check_as_unit(svc)
    eq(r.returncode, 0, f"crmauth.fcgi -t under the unit's sandbox: {r.stderr!r}")
    check("store /usr/local/var/lib/crmauth: ok" in r.stdout, f"-t says the store is ok: {r.stdout!r}")
    r = check_as_unit({**svc, "ReadWritePaths": []})
    check(r.returncode != 0 and "Read-only file system" in r.stderr,
          f"without ReadWritePaths=, /usr/local/var is read-only: {r.returncode} {r.stderr!r}")


def main():
    run = Runner("servers")
    run.run("crmauth.service's sandbox leaves a default build's store writable",
            t_unit_sandbox)
    for name, cls, kw in DEPLOYMENTS:
        run.run(f"method suite through {name}", run_deployment, name, cls, kw)
    run.run("the answers agree between servers", t_answers_agree)
    run.run("gate: lighttpd authorizer mode protects a file, passes claims", t_gate_lighttpd)
    run.run("gate: Apache FcgidAccessChecker protects a file", t_gate_apache)
    run.run("gate: nginx auth_request to the check method protects a file", t_gate_nginx)
    run.run("SIGTERM mid-request (spawn-fcgi -n): answered, exit 0", t_sigterm_responder)
    run.run("SIGTERM to the unit (systemd): answered, all exit 0", t_sigterm_systemd)
    run.run("-w replaces a killed worker", t_worker_restarted)
    run.run("50 SIGKILLs under load: no release lost, no stale reader", t_crash_safety)
    run.run("mod_fcgid idle-out: exit 0, respawn, nothing lost", t_fcgid_idle_out)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
