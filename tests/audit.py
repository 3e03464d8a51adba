"""Authentication events (README.md, "Authentication events") through a real lighttpd with
two responders: the exact line every event kind leaves in a file sink,
one event per answered request under concurrent load and across a
rotation, hostile names, a sink that cannot be written, the stderr sink,
and the syslog sink (a private /dev/log in a mount namespace)."""
import grp
import gzip
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crmtest  # noqa: E402
from crmtest import Runner, Lighttpd, basic, check, eq, jwt_parts, wait_for  # noqa: E402

S = None
K = {}
T = "authentication/token"
KT = "authentication/web_api_key/token"
CT = "authentication/consumer_application_key/token"
RL = "authentication/token/release"
TIME = re.compile(r'^\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",')
SECRETS = ["alice-pw", "carol-pw", "bob-pw", "CODE-9f3a", "pc-2718", "wrong-pw", "wrong-pc",
           "hunter2-password"]
# The responders (and crmauthctl) as www-data when we are root, as the
# README deploys them: the file sink in a directory of theirs.
USER = crmtest.RUN_USER or pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(pwd.getpwnam(USER).pw_gid).gr_name


def line(**members):
    """The line expected after "time", as audit.c writes it (ASCII
    values: the same text as Python's compact JSON)."""
    return json.dumps(members, separators=(",", ":"))[1:]


def count_lines(server):
    return server.audit_text().count("\n")


def settle(server):
    """A responder writes a request's event just after its answer has
    gone out: once the responders are idle, every event is written."""
    crmtest.wait_idle(server.responder_pids())


def new_lines(fn, want=1, http=True):
    """Run fn(); the audit lines it added, without their time: wait for
    want of them, then (a request: http) until the responders are idle,
    when any other event of the request would have been written too.
    crmauthctl (http=False) has written its event when it exits."""
    before = count_lines(S)
    result = fn()
    if want:
        wait_for(lambda: count_lines(S) >= before + want, 20, f"{want} new audit line(s)")
    if http:
        settle(S)
    lines = S.audit_text().split("\n")[before:-1]
    for ln in lines:
        check(TIME.match(ln), f"no RFC 3339 UTC time in milliseconds first: {ln[:80]!r}")
    return result, [TIME.sub("", ln) for ln in lines]


def one_line(fn, *want_status):
    r, lines = new_lines(fn)
    if want_status:
        check(r.status in want_status, f"status {r!r}")
    eq(len(lines), 1, f"one event for one request: {lines}")
    return r, lines[0]


def post(path, body=None, key=None, src="127.0.0.1"):
    headers = {"Authorization": basic(key)} if key is not None else None
    return lambda: S.post("/" + path, body, headers=headers, source=src)


def login(user, pw, org="ACME", unit=None, src="127.0.0.1"):
    body = {"username": user, "password": pw, "organisation": org}
    if unit:
        body["unit"] = unit
    return post(T, body, src=src)


def jti_of(r):
    return jwt_parts(r.data["token"])[1]["jti"]


def setup():
    global S
    # A body of 16 KiB: room for a 10 KiB name.
    S = Lighttpd("audit", procs=2, conf_extra="max_body = 16384\n", user=crmtest.RUN_USER,
                 lockout="lockout_threshold = 3\nlockout_account_threshold = 1000\n"
                 "lockout_window = 600\n").start()
    S.ctl("user", "add", "ACME", "alice", "--unit", "HQ", "--unit", "Branch", input="alice-pw\n")
    S.ctl("user", "add", "ACME", "bob", "--unit", "HQ", input="bob-pw\n")
    S.ctl("user", "add", "ACME", "carol", "--unit", "HQ", input="carol-pw\n")
    S.ctl("user", "disable", "ACME", "bob")
    K["apikey"] = S.ctl("apikey", "add", "ACME", "alice").stdout.strip()
    K["revoked"] = S.ctl("apikey", "add", "ACME", "alice").stdout.strip()
    S.ctl("apikey", "revoke", input=K["revoked"] + "\n")
    K["ck"] = S.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
    K["ck_revoked"] = S.ctl("consumer-key", "add", "ACME", "old", "--unit", "HQ").stdout.strip()
    S.ctl("consumer-key", "revoke", input=K["ck_revoked"] + "\n")
    S.add_code("ACME", "C-1", "CODE-9f3a")
    S.ctl("access-token", "add", "ACME", "--contact", "C-2", "--identifier", "card-7",
          input="pc-2718\n")
    for name, key in list(K.items()):
        K[name + "_id"] = hashlib_id(key)
        SECRETS.append(key)
    K["kid"] = S.ctl("key", "list").stdout.split("\t")[0]


def hashlib_id(key):
    import hashlib
    return hashlib.sha256(key.encode()).hexdigest()[:16].upper()


# -- every event kind -----------------------------------------------------------

def t_token_issued():
    r, ln = one_line(login("alice", "alice-pw", unit="Branch"), 200)
    eq(ln, line(event="token_issued", method=T, org="ACME", usr="alice", unit="Branch",
                jti=jti_of(r), kid=K["kid"], client="127.0.0.1"), "password login")
    r, ln = one_line(post(KT, key=K["apikey"], src="127.0.0.2"), 200)
    eq(ln, line(event="token_issued", method=KT, org="ACME", usr="alice", unit="HQ",
                jti=jti_of(r), kid=K["kid"], key_id=K["apikey_id"], client="127.0.0.2"),
       "Web API key")
    r, ln = one_line(post(CT, {"access_token_identifier": {"authentication_code": "CODE-9f3a"}},
                          key=K["ck"]), 200)
    eq(ln, line(event="token_issued", method=CT, org="ACME", usr="shop", unit="HQ",
                jti=jti_of(r), kid=K["kid"], key_id=K["ck_id"], client="127.0.0.1"),
       "consumer key and authentication code")
    r, ln = one_line(post(CT, {"access_token_identifier": {"identifier": "card-7",
                                                           "pass_code": "pc-2718"}},
                          key=K["ck"]), 200)
    eq(ln, line(event="token_issued", method=CT, org="ACME", usr="shop", unit="HQ",
                identifier="card-7", jti=jti_of(r), kid=K["kid"], key_id=K["ck_id"],
                client="127.0.0.1"), "consumer key and pass code")


def t_auth_failed_reasons():
    cases = [
        ("unknown user", login("nobody", "x"), 401,
         dict(method=T, org="ACME", usr="nobody", reason="unknown_user")),
        ("wrong password", login("alice", "wrong-pw"), 401,
         dict(method=T, org="ACME", usr="alice", reason="bad_password")),
        ("disabled user, right password", login("bob", "bob-pw"), 401,
         dict(method=T, org="ACME", usr="bob", reason="disabled")),
        ("a unit not allowed", login("alice", "alice-pw", unit="Mars"), 403,
         dict(method=T, org="ACME", usr="alice", unit="Mars", reason="unit_not_allowed")),
        ("unknown key (no id: it may be a password sent by mistake)",
         post(KT, key="hunter2-password"), 401, dict(method=KT, reason="unknown_key")),
        ("revoked key", post(KT, key=K["revoked"]), 401,
         dict(method=KT, org="ACME", usr="alice", key_id=K["revoked_id"],
              reason="revoked_key")),
        ("no key at all", post(KT), 401, dict(method=KT, reason="no_key")),
        ("unknown consumer key",
         post(CT, {"access_token_identifier": {"authentication_code": "CODE-9f3a"}},
              key="0" * 32), 401, dict(method=CT, reason="unknown_key")),
        ("revoked consumer key",
         post(CT, {"access_token_identifier": {"authentication_code": "CODE-9f3a"}},
              key=K["ck_revoked"]), 401,
         dict(method=CT, org="ACME", usr="old", key_id=K["ck_revoked_id"],
              reason="revoked_key")),
        ("unknown authentication code",
         post(CT, {"access_token_identifier": {"authentication_code": "wrong-pc"}},
              key=K["ck"]), 401,
         dict(method=CT, org="ACME", usr="shop", key_id=K["ck_id"],
              reason="unknown_access_token")),
        ("unknown identifier",
         post(CT, {"access_token_identifier": {"identifier": "card-0", "pass_code": "x"}},
              key=K["ck"]), 401,
         dict(method=CT, org="ACME", usr="shop", identifier="card-0", key_id=K["ck_id"],
              reason="unknown_access_token")),
        ("wrong pass code",
         post(CT, {"access_token_identifier": {"identifier": "card-7", "pass_code": "wrong-pc"}},
              key=K["ck"]), 401,
         dict(method=CT, org="ACME", usr="shop", identifier="card-7", key_id=K["ck_id"],
              reason="bad_pass_code")),
        ("a malformed body, names as claimed",
         post(T, {"username": "alice", "organisation": "ACME"}), 400,
         dict(method=T, org="ACME", usr="alice", reason="invalid_request")),
    ]
    for what, fn, status, m in cases:
        r, ln = one_line(fn, status)
        # The members in audit.c's order, whatever order they were given in.
        order = ["method", "org", "usr", "unit", "identifier", "key_id", "reason"]
        want = {"event": "auth_failed"}
        for k in order:
            if k == "reason":
                want["client"] = "127.0.0.1"
            if k in m:
                want[k] = m[k]
        eq(ln, line(**want), what)


def t_auth_throttled():
    for i in range(3):
        one_line(login("carol", "wrong-pw", src="127.0.0.5"), 401)
    r, ln = one_line(login("carol", "carol-pw", src="127.0.0.5"), 429)
    eq(ln, line(event="auth_throttled", method=T, org="ACME", usr="carol",
                client="127.0.0.5"), "the held-back attempt")
    S.ctl("user", "unlock", "ACME", "carol")


def t_token_released_and_checks():
    # Its token_issued is written just after the answer: wait for it.
    tok, _ = new_lines(lambda: S.login_token("alice", "alice-pw"))
    jti = jwt_parts(tok)[1]["jti"]
    r, ln = one_line(post(RL, {"token": tok}, src="127.0.0.3"), 200)
    eq(ln, line(event="token_released", method=RL, org="ACME", usr="alice", unit="HQ",
                jti=jti, client="127.0.0.3"), "release")
    # A check, refused or not, is no event (the web server's access log
    # has it); nor is a release of a token that is not ours.
    for fn in (lambda: S.post("/authentication/token/check", {"token": tok}),
               lambda: S.get("/authentication/token/check",
                             headers={"Authorization": "Bearer " + tok}),
               lambda: S.post("/" + RL, {"token": "x.y.z"}),
               lambda: S.get("/health")):
        r, lines = new_lines(fn, 0)
        eq(lines, [], f"no event for {r!r}")


def t_admin_events():
    u = {"unix_user": USER}

    def ctl(*args, input=None):
        r, lines = new_lines(lambda: S.ctl(*args, input=input), http=False)
        eq(len(lines), 1, f"one event for crmauthctl {' '.join(args)}: {lines}")
        return r, lines[0]

    def admin(**m):
        sudo = m.pop("sudo_user", None)     # the last member
        return line(event="admin", **m, **u, **({"sudo_user": sudo} if sudo else {}))

    _, ln = ctl("user", "add", "ACME", "dave", "--unit", "HQ", "--unit", "X", input="dave-pw\n")
    SECRETS.append("dave-pw")
    eq(ln, admin(command="user add", org="ACME", usr="dave", unit="HQ"), "user add")
    for verb in ("disable", "enable", "unlock", "logout"):
        _, ln = ctl("user", verb, "ACME", "dave")
        eq(ln, admin(command="user " + verb, org="ACME", usr="dave"), verb)
    _, ln = ctl("user", "passwd", "ACME", "dave", input="dave-pw2\n")
    SECRETS.append("dave-pw2")
    eq(ln, admin(command="user passwd", org="ACME", usr="dave"), "passwd")
    r, ln = ctl("apikey", "add", "ACME", "dave")
    key = r.stdout.strip()
    SECRETS.append(key)
    eq(ln, admin(command="apikey add", org="ACME", usr="dave", key_id=hashlib_id(key)),
       "apikey add: the new key's id, never the key")
    _, ln = ctl("apikey", "revoke", input=key + "\n")
    eq(ln, admin(command="apikey revoke", key_id=hashlib_id(key)), "apikey revoke (key on stdin)")
    r, ln = ctl("consumer-key", "add", "ACME", "app2", "--unit", "HQ")
    ck = r.stdout.strip()
    SECRETS.append(ck)
    eq(ln, admin(command="consumer-key add", org="ACME", usr="app2", unit="HQ",
                 key_id=hashlib_id(ck)), "consumer-key add")
    _, ln = ctl("consumer-key", "revoke", hashlib_id(ck))
    eq(ln, admin(command="consumer-key revoke", key_id=hashlib_id(ck)), "revoke by id")
    _, ln = ctl("access-token", "add", "ACME", "--contact", "C-3", "--identifier", "card-8",
                input="pc-31415\n")
    SECRETS.append("pc-31415")
    eq(ln, admin(command="access-token add", org="ACME", identifier="card-8"), "access-token")
    _, ln = ctl("access-token", "add", "ACME", "--contact", "C-4", "--authentication-code",
                input="CODE-aa77\n")
    SECRETS.append("CODE-aa77")
    eq(ln, admin(command="access-token add", org="ACME"), "code: no code in the event")
    r, ln = ctl("key", "rotate")
    new = r.stdout.split()[0]
    eq(ln, admin(command="key rotate", kid=new), "rotate")
    r, ln = ctl("key", "export")
    eq(ln, admin(command="key export", kid=new), "export of the signing key is recorded")
    SECRETS.append(r.stdout.split()[1])
    _, ln = ctl("key", "retire", K["kid"])
    eq(ln, admin(command="key retire", kid=K["kid"]), "retire")
    K["kid"] = new
    _, ln = ctl("lock", "clear", "user", "ACME", "dave", "127.0.0.9")
    eq(ln, admin(command="lock clear", org="ACME", usr="dave", address="127.0.0.9"), "lock user")
    _, ln = ctl("lock", "clear", "apikey", K["apikey_id"].lower())
    eq(ln, admin(command="lock clear", key_id=K["apikey_id"]), "lock apikey")
    _, ln = ctl("lock", "clear", "access-token", "ACME", "card-7")
    eq(ln, admin(command="lock clear", org="ACME", identifier="card-7"), "lock access-token")
    _, ln = ctl("lock", "clear", "address", "127.0.0.5")
    eq(ln, admin(command="lock clear", address="127.0.0.5"), "lock address")
    _, ln = ctl("released", "prune")
    eq(ln, admin(command="released prune"), "prune")
    exp = os.path.join(S.logdir, "export.jsonl")     # a directory of USER's
    _, ln = ctl("export", exp)
    eq(ln, admin(command="export", file=exp), "export")
    if not S.pg:
        bak = os.path.join(S.logdir, "backup.mdb")
        _, ln = ctl("backup", bak)
        eq(ln, admin(command="backup", file=bak), "backup")
    _, ln = ctl("lock", "clear", "consumer-key", K["ck_id"], "127.0.0.6")
    eq(ln, admin(command="lock clear", key_id=K["ck_id"], address="127.0.0.6"),
       "lock consumer-key")
    _, ln = ctl("user", "del", "ACME", "dave")
    eq(ln, admin(command="user del", org="ACME", usr="dave"), "user del")
    _, ln = ctl("init")
    eq(ln, admin(command="init"), "init")
    # A second store beside it (its own db_path, the same sink): init
    # --group, import, and (LMDB) restore, which need a store no
    # responder has open.
    other = os.path.join(S.dir, "other.conf")
    with open(S.conf) as f:
        text = f.read().replace(f"db_path = {S.db}", f"db_path = {S.logdir}/other-db")
    with open(other, "w") as f:
        f.write(text)
    r, lines = new_lines(lambda: S.ctl("init", "--group", GROUP, conf=other), http=False)
    eq(lines, [admin(command="init")], "init --group")
    r, lines = new_lines(lambda: S.ctl("import", exp, conf=other), http=False)
    eq(lines, [admin(command="import", file=exp)], "import")
    if not S.pg:
        r, lines = new_lines(lambda: S.ctl("restore", bak, conf=other), http=False)
        eq(lines, [admin(command="restore", file=bak)], "restore")
    # Who ran it: sudo's SUDO_USER as it was set.
    r, lines = new_lines(lambda: subprocess.run(
        [os.path.join(S.sbindir, "crmauthctl"), "-c", S.conf, "user", "unlock", "ACME", "alice"],
        env=dict(os.environ, SUDO_USER="ann"), check=True, capture_output=True,
        **crmtest.user_kw(S.user)), http=False)
    eq(lines, [admin(command="user unlock", org="ACME", usr="alice", sudo_user="ann")],
       "sudo_user")
    # Reading is no event; nor is a change that failed.
    for args in (("user", "list"), ("apikey", "list"), ("consumer-key", "list"),
                 ("key", "list"), ("released", "count"), ("lock", "list"),
                 ("stats",), ("stats", "--json")):
        _, lines = new_lines(lambda: S.ctl(*args), 0, http=False)
        eq(lines, [], f"{args}: no event")
    _, lines = new_lines(lambda: S.ctl("user", "disable", "ACME", "nobody", check=False), 0,
                         http=False)
    eq(lines, [], "a failed change: no event")
    _, lines = new_lines(lambda: S.ctl("apikey", "revoke", "F" * 32, check=False), 0,
                         http=False)
    eq(lines, [], "a key on the command line is refused, and is no event")


def t_hostile_names():
    """Each hostile name leaves one line that parses, with the name (cut
    to 256 bytes) as one member and nothing else added."""
    names = ['a"b', 'x","event":"admin', "line\nbreak", "cr\rlf\n{\"event\":\"token_issued\"}",
             "\x00nul", "\x01\x1b[31mred\x7f", "\u0085\u009b", "\u2028sep", "é€🔑",
             "n" * 10240]
    for name in names:
        r, lines = new_lines(login(name, "wrong-pw", src="127.0.0.7"))
        eq(len(lines), 1, f"one line for {name[:20]!r}")
        ev = json.loads('{"time":"",' + lines[0])
        eq(sorted(ev), sorted(["time", "event", "method", "org", "usr", "client", "reason"]),
           f"members for {name[:20]!r}")
        want = name.split("\x00")[0].encode()[:256].decode("utf-8", "ignore")
        eq(ev["usr"], want, "the name as given, cut to 256 bytes")
        eq(ev["event"], "auth_failed", "event")
        check(ev["reason"] in ("unknown_user", "invalid_request"), ev["reason"])
        check(all(c >= " " and c != "\x7f" and not "\x80" <= c <= "\x9f" for c in lines[0]),
              "no control character in the line itself")
    # Bytes that are not UTF-8 never reach a name: the body is refused
    # (400) and the event says so, without the name.
    r, lines = new_lines(lambda: S.post("/" + T, raw=b'{"username":"a\xff\xc0","password":"x",'
                                        b'"organisation":"ACME"}', source="127.0.0.7"))
    eq(r.status, 400, "invalid UTF-8")
    eq(lines, [line(event="auth_failed", method=T, client="127.0.0.7",
                    reason="invalid_request")], "one line, no name")
    S.ctl("lock", "clear", "address", "127.0.0.7")


def t_request_id():
    """The web server's id of the request (here X-Request-ID, as nginx
    passes $request_id) in the request's event; an id that is not one
    (quotes, control characters, 10 KiB, empty) is left out, and the
    line is whole."""
    def with_id(rid, src="127.0.0.1"):
        body = {"username": "carol", "password": "carol-pw", "organisation": "ACME"}
        return lambda: S.post("/" + T, body, headers={"X-Request-ID": rid}, source=src)
    r, ln = one_line(with_id("Zx9-4fQ@AAAAAB1cT7EAAAAK"), 200)
    eq(ln, line(event="token_issued", method=T, org="ACME", usr="carol", unit="HQ",
                jti=jti_of(r), kid=K["kid"], client="127.0.0.1",
                request_id="Zx9-4fQ@AAAAAB1cT7EAAAAK"), "the id in the event")
    r, ln = one_line(lambda: S.post("/" + T, {"username": "carol", "password": "bad",
                                              "organisation": "ACME"},
                                    headers={"X-Request-ID": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"},
                                    source="127.0.0.1"), 401)
    check('"request_id":"0f1e2d3c4b5a69788796a5b4c3d2e1f0"' in ln, ln)
    for bad in ('a"b', 'x","event":"admin', "tab\there", "\u00e9t\u00e9", "n" * 10240,
                "m" * 129, ""):
        r, lines = new_lines(with_id(bad.encode("utf-8").decode("latin-1")), want=0)
        if r.status != 200:
            # lighttpd refuses a 10 KiB header itself (431): no request.
            check(r.status == 431 and len(bad) > 8192 and lines == [],
                  f"{bad[:20]!r}: {r.status} {lines}")
            continue
        eq(len(lines), 1, f"one event for {bad[:20]!r}")
        ev = json.loads('{"time":"",' + lines[0])
        check("request_id" not in ev, f"no request_id for {bad[:20]!r}: {lines[0][:200]}")
        eq(ev["event"], "token_issued", "the event itself")


def t_server_ids():
    """The id each server makes wins over the one a client sends: Apache's
    UNIQUE_ID (mod_unique_id), as its access log writes it; nginx's
    $request_id, which the sample passes as X-Request-ID."""
    forged = {"X-Request-ID": "chosen-by-the-client"}
    a = crmtest.Apache("audit-unique-id", user=crmtest.RUN_USER, extra=f"""
LoadModule unique_id_module {crmtest.APACHE_MODULES}/mod_unique_id.so
LogFormat "%{{UNIQUE_ID}}e %>s" ids
""")
    try:
        a.extra += f"CustomLog {a.logdir}/access.log ids\n"
        a.start()
        r = a.get("/health", headers=forged)
        eq(r.status, 200, "health through Apache")
        r = a.post("/" + T, {"username": "nobody", "password": "x", "organisation": "ACME"},
                   headers=forged)
        eq(r.status, 401, "a failed login through Apache")
        ev = wait_for(lambda: [e for e in a.events() if e["event"] == "auth_failed"], 20,
                      "the event")[-1]
        wait_for(lambda: os.path.exists(os.path.join(a.logdir, "access.log")) and
                 open(os.path.join(a.logdir, "access.log")).read().count("\n") == 2, 10,
                 "Apache's access log")
        with open(os.path.join(a.logdir, "access.log")) as f:
            uid, status = f.read().splitlines()[-1].split()
        eq((ev["event"], status), ("auth_failed", "401"), "the event and the log line")
        eq(ev.get("request_id"), uid, "the event's id is Apache's UNIQUE_ID")
    finally:
        a.cleanup()
    n = crmtest.Nginx("audit-nginx-id", user=crmtest.RUN_USER)
    try:
        n.start()
        r = n.post("/" + T, {"username": "nobody", "password": "x", "organisation": "ACME"},
                   headers=forged)
        eq(r.status, 401, "a failed login through nginx")
        ev = wait_for(lambda: [e for e in n.events() if e["event"] == "auth_failed"], 20,
                      "the event")[-1]
        check(re.fullmatch(r"[0-9a-f]{32}", ev.get("request_id", "")),
              f"nginx's $request_id replaced the client's: {ev}")
    finally:
        n.cleanup()


def load(n_threads, per_thread):
    """Requests from n_threads at once: Web API key tokens, wrong
    passwords and malformed bodies; every answered request is counted."""
    answered = [0] * n_threads
    errors = []

    def run(t):
        for i in range(per_thread):
            kind = (t + i) % 3
            try:
                if kind == 0:
                    r = post(KT, key=K["apikey"])()
                elif kind == 1:
                    r = login(f"ghost{t}-{i}", "wrong-pw", src=f"127.0.1.{t + 1}")()
                else:
                    r = S.post("/" + T, raw=b"{", source="127.0.0.8")
                if r.status not in (200, 401, 400):
                    errors.append(r)
                answered[t] += 1
            except Exception as e:              # noqa: BLE001
                errors.append(e)
    threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    eq(errors[:3], [], f"every request answered ({len(errors)} not)")
    return sum(answered)


def t_concurrent_lines():
    before = len(S.events())
    n = load(8, 60)
    wait_for(lambda: count_lines(S) >= before + n, 30, f"{n} lines")
    settle(S)
    events = S.events()     # fails on any line that is not one object
    eq(len(events) - before, n, "one line per answered request, none torn")
    kinds = {}
    for ev in events[before:]:
        kinds[ev.get("reason") or ev["event"]] = kinds.get(ev.get("reason") or ev["event"], 0) + 1
    eq(kinds, {"token_issued": 160, "unknown_user": 160, "invalid_request": 160}, "what was done")


def t_rotation_under_load():
    """logrotate with the shipped sample (etc/crmauth.logrotate), forced
    twice while two responders answer: every line is in audit.log,
    audit.log.1 or the compressed audit.log.2.gz.  The responders look
    the path up at most once a second, so the second rotation (which
    compresses the first's file) comes more than a second later, as
    rotations (hours apart) do."""
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    sample = open(S.sample("crmauth.logrotate")).read()
    check(f"{S.dir}/log/crmauth/audit.log {{" in sample, "the sample names the audit log")
    conf = os.path.join(S.dir, "logrotate.conf")
    with open(conf, "w") as f:
        # This server's file, and its user (www-data when we are root).
        f.write(sample.replace(f"{S.dir}/log/crmauth/audit.log", S.audit_path)
                .replace("su www-data adm", f"su {USER} {GROUP}" if USER != "www-data"
                         else "su www-data adm"))
    state = os.path.join(S.dir, "logrotate.state")
    for old in os.listdir(S.logdir):            # start from one file
        if old.startswith("audit.log."):
            os.unlink(os.path.join(S.logdir, old))
    before = len(S.events())
    answered, errors, stop = [0] * 6, [], threading.Event()

    def run(t):
        while not stop.is_set():
            try:
                r = post(KT, key=K["apikey"])() if t % 2 else \
                    login(f"rot{t}-{answered[t]}", "wrong-pw", src=f"127.0.2.{t + 1}")()
            except Exception as e:              # noqa: BLE001
                errors.append(e)
                continue
            if r.status not in (200, 401):
                errors.append(r)
            answered[t] += 1
    threads = [threading.Thread(target=run, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    rotated = []
    try:
        for _ in range(2):
            n0, t0 = sum(answered), time.monotonic()
            # Under load, and past the responders' once-a-second look.
            wait_for(lambda: sum(answered) >= n0 + 100 and time.monotonic() >= t0 + 1.2,
                     60, "100 more answers and 1.2 s")
            r = subprocess.run([logrotate, "-f", "-s", state, conf], capture_output=True,
                               text=True, timeout=60)
            rotated.append((r.returncode, r.stderr))
        n0, t0 = sum(answered), time.monotonic()
        wait_for(lambda: sum(answered) >= n0 + 100 and time.monotonic() >= t0 + 1.2,
                 60, "100 more answers and 1.2 s")
    finally:
        stop.set()
        for th in threads:
            th.join(60)
    eq(errors[:3], [], "every request answered")
    eq(rotated, [(0, ""), (0, "")], "logrotate ran twice, without a complaint")
    n = sum(answered)
    with open(S.audit_path + ".1", encoding="utf-8") as f:
        one = f.read().split("\n")[:-1]
    two = gzip.open(S.audit_path + ".2.gz", "rt", encoding="utf-8").read().split("\n")[:-1]
    # The last lines go to audit.log (each after its answer).
    wait_for(lambda: count_lines(S) + len(one) + len(two) - before >= n, 30, f"{n} lines")
    settle(S)
    total = len(S.events())
    for ln in one + two:
        json.loads(ln)
    check(one and two and total, f"each file holds lines ({len(two)}, {len(one)}, {total})")
    eq(total + len(one) + len(two) - before, n, "no line lost across two rotations")


def t_unwritable_sink():
    missing = tempfile.mkdtemp(prefix="crmauth-audit-")
    shutil.rmtree(missing)
    path = os.path.join(missing, "audit.log")
    U = Lighttpd("audit-unwritable", procs=2, conf_extra=f"audit_log = {path}\n").start()
    try:
        U.ctl("user", "add", "ACME", "u", "--unit", "HQ", input="u-pw\n")
        key = U.ctl("apikey", "add", "ACME", "u").stdout.strip()
        for i in range(40):
            r = U.post("/authentication/web_api_key/token", headers={"Authorization": basic(key)})
            eq(r.status, 200, "the answer is the same")
        wait_for(lambda: "audit_log:" in U.error_log(), 20, "the line in the error log")
        settle(U)
        lines = [ln for ln in U.error_log().splitlines() if "audit_log:" in ln]
        check(1 <= len(lines) <= 2, f"one line per responder, not one per request: {lines}")
        check("No such file or directory" in lines[0] and path in lines[0], lines[0])
        os.makedirs(missing)

        def count():
            return open(path).read().count("\n") if os.path.exists(path) else 0

        def batch_whole():
            """Ten requests, each event written?  A failing sink is
            tried again once a second at most, per responder: the
            events of that second are lost."""
            before = count()
            for i in range(10):
                U.post("/authentication/web_api_key/token",
                       headers={"Authorization": basic(key)})
            settle(U)
            return count() - before == 10
        wait_for(batch_whole, 20, "events written again, every responder", interval=0.1)
        before = count()
        for i in range(20):
            U.post("/authentication/web_api_key/token", headers={"Authorization": basic(key)})
        settle(U)
        eq(count() - before, 20, "written again once it can be, every event")
        # As CGI a process serves one request: the line is said once a
        # minute (a marker in db_path), not once per request.
        shutil.rmtree(missing)
        before = U.error_log().count("audit_log:")
        for i in range(10):
            r = U.post("/authentication/web_api_key/token", headers={"Authorization": basic(key)},
                       prefix="/cgi-bin/crmauth.cgi")
            eq(r.status, 200, "CGI: the answer is the same")
        eq(U.error_log().count("audit_log:") - before, 1, "CGI: one line for ten requests")
    finally:
        U.cleanup()
        shutil.rmtree(missing, ignore_errors=True)


def t_stderr_sink():
    E = Lighttpd("audit-stderr", procs=1, conf_extra="audit_log = stderr\n").start()
    try:
        E.ctl("user", "add", "ACME", "e", "--unit", "HQ", input="e-pw\n")
        tok = E.login_token("e", "e-pw")
        jti = jwt_parts(tok)[1]["jti"]
        wait_for(lambda: jti in E.error_log(), 20, "the event in the error log")
        settle(E)
        found = [ln for ln in E.error_log().splitlines() if jti in ln]
        eq(len(found), 1, "the event in the web server's error log")
        ev = json.loads(found[0][found[0].index("{"):])
        eq((ev["event"], ev["usr"], ev["jti"]), ("token_issued", "e", jti), "the event")
    finally:
        E.cleanup()


def t_syslog_sink():
    """The default sink: one datagram per event to /dev/log, facility
    authpriv, ident crmauth (<86> = authpriv.info).  /dev/log is a socket
    of the test's own, mounted in a private mount namespace."""
    if shutil.which("unshare") is None:
        raise AssertionError("unshare (util-linux) is missing")
    d = tempfile.mkdtemp(prefix="crmauth-syslog-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(d, "log"))
    sock.settimeout(10)
    os.makedirs(os.path.join(d, "olddev"))
    conf = os.path.join(d, "crmauth.conf")
    with open(conf, "w") as f:
        f.write(f"db_path = {os.path.join(d, 'db')}\nargon2_memory_kib = 8192\n"
                "argon2_iterations = 1\n")       # audit_log: the default
    fcgi = os.path.join(S.sbindir, "crmauth.fcgi")
    ctl = os.path.join(S.sbindir, "crmauthctl")
    body = '{"username":"s","password":"s-pw","organisation":"ACME"}'
    sh = f"""set -e
mount --make-rprivate /
mount --bind /dev {d}/olddev
mount -t tmpfs -o size=1m tmpfs /dev
for f in null zero urandom random; do touch /dev/$f; mount --bind {d}/olddev/$f /dev/$f; done
touch /dev/log; mount --bind {d}/log /dev/log
{ctl} -c {conf} init >/dev/null
echo s-pw | {ctl} -c {conf} user add ACME s --unit HQ
printf '%s' '{body}' | env GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
  PATH_INFO=/authentication/token CONTENT_TYPE=application/json \
  CONTENT_LENGTH={len(body)} REMOTE_ADDR=127.0.0.4 CRMAUTH_CONF={conf} {fcgi}
"""
    try:
        r = subprocess.run(["unshare", "-m", "sh", "-c", sh], capture_output=True, text=True,
                           timeout=60)
        eq(r.returncode, 0, f"the namespace: {r.stderr}")
        check('"code":"OK"' in r.stdout, f"the login through CGI: {r.stdout[-300:]}")
        got = [sock.recv(65536).decode() for _ in range(3)]
        for g in got:
            check(re.match(r"<86>\w{3} [ \d]\d \d\d:\d\d:\d\d crmauth\[\d+\]: \{", g),
                  f"authpriv.info (<86>), ident crmauth with its pid: {g[:80]!r}")
        evs = [json.loads(g[g.index("{"):]) for g in got]
        eq([e["event"] for e in evs], ["admin", "admin", "token_issued"], "the three events")
        eq((evs[2]["usr"], evs[2]["client"]), ("s", "127.0.0.4"), "the login's event")
    finally:
        sock.close()
        shutil.rmtree(d, ignore_errors=True)


def t_no_secret_in_events():
    S.stop()
    text = ""
    for name in os.listdir(S.logdir):       # audit.log and the rotated ones
        if name.startswith("audit.log"):
            path = os.path.join(S.logdir, name)
            with (gzip.open if name.endswith(".gz") else open)(path, "rt",
                                                              encoding="utf-8") as f:
                text += f.read()
    check(text.count("\n") > 800, "there are events to read")
    for secret in SECRETS:
        check(secret not in text, f"{secret!r} is in the audit log")
        check(secret.lower() not in text.lower(), f"{secret!r} (any case) is in the audit log")
    check(not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", text), "a token is in the audit log")


def main():
    run = Runner("audit")
    setup()
    try:
        for name, fn in (
                ("token_issued: every method, exact line", t_token_issued),
                ("auth_failed: every reason, exact line", t_auth_failed_reasons),
                ("auth_throttled: exact line", t_auth_throttled),
                ("token_released; checks are no event", t_token_released_and_checks),
                ("admin: every crmauthctl change, exact line; reads none", t_admin_events),
                ("security: hostile names leave one valid line each", t_hostile_names),
                ("request_id: the web server's id in the event; a hostile one left out",
                 t_request_id),
                ("request_id: Apache's UNIQUE_ID and nginx's $request_id win over a "
                 "client's", t_server_ids),
                ("two responders under load: one whole line per request",
                 t_concurrent_lines),
                ("rotation under load: no line lost", t_rotation_under_load),
                ("a sink that cannot be written: answers unchanged, one log line",
                 t_unwritable_sink),
                ("audit_log = stderr: the web server's error log", t_stderr_sink),
                ("audit_log = syslog: authpriv, ident crmauth", t_syslog_sink),
                ("security: no password, key, code or token in any event",
                 t_no_secret_in_events)):
            run.run(name, fn)
    finally:
        S.cleanup()
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
