#!/usr/bin/env python3
"""PostgreSQL as the shared store of several web nodes (README.md, "Running on
several machines").

Two lighttpd instances on two loopback ports, each with its own
responders, one database, and an nginx balancing between them; a
throwaway PostgreSQL server of the suite's own (Unix socket only),
stopped, killed and started again under load; crmauthctl on PostgreSQL;
export and import between the backends.  Run by "make check" (pg.test).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crmtest  # noqa: E402
from crmtest import (Runner, Lighttpd, Postgres, RUN_USER, NGINX, basic, b64url_decode,  # noqa: E402
                     check, eq, free_port, parallel, statuses, stop_process, wait_for,
                     wait_port)

LOCKOUT = ("lockout_threshold = 5\nlockout_account_threshold = 50\n"
           "lockout_window = 60\n")
ARGON2 = "argon2_memory_kib = 4096\nargon2_iterations = 1\n"
# Short waits for a database that does not answer: 503 within seconds.
FAST = "connect_timeout=2"


def node(name, pg_db=None, wrap_from=None, procs=2, conninfo_extra="", init=None, **kw):
    """A web node on PostgreSQL: its own lighttpd and responders; with
    pg_db, another node's database, and wrap_from's wrap.key copied into
    its db_path (as the README says to do on every node)."""
    extra = kw.pop("conf_extra", "")
    n = Lighttpd(name, store="postgresql", pg_db=pg_db,
                 init=wrap_from is None if init is None else init,
                 user=RUN_USER, procs=procs, lockout=LOCKOUT, argon2=ARGON2,
                 conf_extra=extra, **kw)
    if conninfo_extra:
        text = open(n.conf).read()
        text = re.sub(r"(pg_conninfo = .*)", lambda m: m.group(1) + " " + conninfo_extra, text)
        open(n.conf, "w").write(text)
    if wrap_from is not None:
        os.makedirs(n.db, exist_ok=True)
        dst = os.path.join(n.db, "wrap.key")
        shutil.copy(os.path.join(wrap_from.db, "wrap.key"), dst)
        os.chmod(dst, 0o600)
        if n.user:
            shutil.chown(n.db, n.user, n.user)
            shutil.chown(dst, n.user, n.user)
    return n


class Balancer:
    """nginx in front of the nodes, round robin; X-Node says which one
    answered."""
    prefix = crmtest.PREFIX

    def __init__(self, nodes):
        self.nodes = nodes
        self.dir = tempfile.mkdtemp(prefix="crmauth-lb-")
        self.proc = None
        self.port = None

    def start(self):
        for attempt in range(5):
            self.port = free_port()
            conf = os.path.join(self.dir, "nginx.conf")
            servers = "".join(f"server 127.0.0.1:{n.port};\n" for n in self.nodes)
            with open(conf, "w") as f:
                f.write(f"""
daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    upstream nodes {{ {servers} }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://nodes;
            proxy_next_upstream off;
            add_header X-Node $upstream_addr always;
        }}
    }}
}}
""")
            self.proc = subprocess.Popen([NGINX, "-c", conf, "-p", self.dir],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
            if wait_port(self.port, self.proc):
                return self
            stop_process(self.proc)
        raise AssertionError("nginx did not start")

    request = crmtest.Server.request
    post = crmtest.Server.post
    get = crmtest.Server.get

    def cleanup(self):
        if self.proc is not None:
            stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def check_status(s, tok):
    r = s.get("/authentication/token/check", headers={"Authorization": f"Bearer {tok}"})
    return r.status, r.code


def login(s, pw, user="alice", src="127.0.0.1"):
    return s.post("/authentication/token",
                  {"username": user, "password": pw, "organisation": "ACME"}, source=src)


def setup_nodes():
    global A, B, LB
    A = node("node-a").start()
    B = node("node-b", pg_db=A.pg_db, wrap_from=A).start()
    LB = Balancer([A, B]).start()
    A.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="alice-pw\n")


def t_session_settings_pinned():
    """A database whose defaults are set against us (bytea as escape,
    read-only transactions, no synchronous commit, serializable): crmauth
    sets its own on every connection, so that every method and every
    crmauthctl change works, and a release is acknowledged only once
    durable."""
    n = node("pinned")
    try:
        pg = n.pg
        # What crmauth's own session has when it releases a token.
        pg.psql(n.pg_db, "CREATE TABLE seen (sc text, lt text, iso text, enc text, it text); "
                "CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "INSERT INTO seen VALUES (current_setting('synchronous_commit'), "
                "current_setting('lock_timeout'), current_setting('transaction_isolation'), "
                "current_setting('client_encoding'), "
                "current_setting('idle_in_transaction_session_timeout')); RETURN NEW; END $$; "
                "CREATE TRIGGER note AFTER INSERT ON released FOR EACH ROW EXECUTE FUNCTION note()")
        for setting in ("bytea_output = escape", "default_transaction_read_only = on",
                        "synchronous_commit = off", "default_transaction_isolation = serializable",
                        "client_encoding = 'LATIN1'", "lock_timeout = '1ms'",
                        "idle_in_transaction_session_timeout = '1ms'"):
            pg.psql("postgres", f"ALTER DATABASE {n.pg_db} SET {setting}")
        n.start()
        n.ctl("user", "add", "ACME", "pia", "--unit", "HQ", input="pia-pw\n")
        key = n.ctl("apikey", "add", "ACME", "pia").stdout.strip()
        tok = n.login_token("pia", "pia-pw")
        eq(check_status(n, tok), (200, "OK"), "check")
        eq(check_status(n, n.key_token(key)), (200, "OK"), "Web API key token")
        eq(n.post("/authentication/token/release", {"token": tok}).status, 200, "release")
        eq(check_status(n, tok), (401, "TOKEN_RELEASED"), "released")
        eq(n.ctl("key", "list").returncode, 0, "signing keys read (bytea)")
        eq(pg.psql(n.pg_db, "SELECT * FROM seen").strip().split("|"),
           ["on", "0", "read committed", "UTF8", "0"],
           "the releasing session's settings: crmauth's, not the database's")
        # What a session of the responders' role gets by default, for
        # the record: what crmauth had to undo.
        shown = pg.psql(n.pg_db, "SHOW synchronous_commit").strip()
        check("off" in shown, f"the database's default is off: {shown}")
    finally:
        n.cleanup()


def ctl_bg(n, *args, input=None):
    """crmauthctl in the background, as the node's user; input, if any,
    on its standard input."""
    p = subprocess.Popen([os.path.join(n.sbindir, "crmauthctl"), "-c", n.conf, *args],
                         stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         **crmtest.user_kw(n.user))
    if input is not None:
        p.stdin.write(input)
        p.stdin.close()
        p.stdin = None
    return p


class HeldRow:
    """A psql session that holds rows (SELECT ... FOR UPDATE in an open
    transaction) until release(): the slow transaction, or the other
    administrator, that a command can run into."""

    def __init__(self, n, table, where=None):
        """where: rows of table FOR UPDATE; None: the whole table."""
        self.n = n
        self.p = subprocess.Popen(["psql", "-X", "-q", n.pg.conninfo(n.pg_db)],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, text=True)
        lock = f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE" if where is None else \
            f"SELECT 1 FROM {table} WHERE {where} FOR UPDATE"
        self.p.stdin.write(f"BEGIN; {lock};\n")
        self.p.stdin.flush()
        wait_for(lambda: self.count("state = 'idle in transaction'") == 1, 20,
                 "the row held")

    def count(self, cond):
        return int(self.n.pg.psql(self.n.pg_db, "SELECT count(*) FROM pg_stat_activity "
                                  f"WHERE datname = current_database() AND {cond}"))

    def waiting(self):
        """Sessions waiting for a lock."""
        return self.count("wait_event_type = 'Lock'")

    def release(self):
        try:
            self.p.stdin.write("ROLLBACK;\n")
            self.p.stdin.close()
        except BrokenPipeError:
            pass            # its server went away
        self.p.wait(20)


def t_apikey_add_racing_user_del():
    """apikey add run while user del is waiting for the user's row: the
    del wins, the add says there is no user, and no key is left that
    would serve the next user of that name."""
    n = A
    n.ctl("user", "add", "ACME", "vic", "--unit", "HQ", input="vic-pw\n")
    held = HeldRow(n, "users", "org = 'ACME' AND name = 'vic'")
    procs = []
    try:
        procs.append(ctl_bg(n, "user", "del", "ACME", "vic"))
        wait_for(lambda: held.waiting() == 1, 20, "user del waiting for the row")
        procs.append(ctl_bg(n, "apikey", "add", "ACME", "vic"))
        # The add reads the user (there) and then writes its key: today it
        # waits for the row too; before, it wrote at once.
        wait_for(lambda: held.waiting() == 2 or procs[1].poll() is not None, 20,
                 "apikey add waiting, or done")
    finally:
        held.release()
    outs = [p.communicate(timeout=30) for p in procs]
    eq(procs[0].returncode, 0, f"user del: {outs[0][1]}")
    eq(procs[1].returncode, 1, f"apikey add refused: {outs[1]}")
    check("no user vic in organisation ACME" in outs[1][1], f"says why: {outs[1][1]}")
    eq(outs[1][0], "", "no key printed")
    listed = n.ctl("apikey", "list", "ACME").stdout
    check("\tvic\t" not in listed, f"no key of vic listed: {listed}")
    eq(n.pg.psql(n.pg_db, "SELECT count(*) FROM apikeys WHERE user_name = 'vic'").strip(),
       "0", "no key of vic in the database")
    # And the converse: the add first, then the del, removes the key.
    n.ctl("user", "add", "ACME", "vic", "--unit", "HQ", input="vic-pw\n")
    held = HeldRow(n, "users", "org = 'ACME' AND name = 'vic'")
    try:
        procs = [ctl_bg(n, "apikey", "add", "ACME", "vic")]
        wait_for(lambda: held.waiting() == 1, 20, "apikey add waiting for the row")
        procs.append(ctl_bg(n, "user", "del", "ACME", "vic"))
        wait_for(lambda: held.waiting() == 2, 20, "user del waiting behind it")
    finally:
        held.release()
    outs = [p.communicate(timeout=30) for p in procs]
    eq([p.returncode for p in procs], [0, 0], f"both done: {outs}")
    eq(n.pg.psql(n.pg_db, "SELECT count(*) FROM apikeys WHERE user_name = 'vic'").strip(),
       "0", "the key added first went with its user")
    key = outs[0][0].strip()
    n.ctl("user", "add", "ACME", "vic", "--unit", "HQ", input="other-pw\n")
    eq(n.post("/authentication/web_api_key/token",
              headers={"Authorization": basic(key)}).status, 401,
       "the old key serves no new vic")
    n.ctl("user", "del", "ACME", "vic")


def t_apikey_revoke_during_user_del():
    """apikey revoke while user del holds the user's row (the del then
    deletes the keys): no deadlock; the revoke finds the key gone with
    its user and says so."""
    n = A
    n.ctl("user", "add", "ACME", "dee", "--unit", "HQ", input="dee-pw\n")
    key = n.ctl("apikey", "add", "ACME", "dee").stdout.strip()
    # user del's two statements, by hand, the second held back.
    held = HeldRow(n, "users", "org = 'ACME' AND name = 'dee'")
    held.p.stdin.write("DELETE FROM users WHERE org = 'ACME' AND name = 'dee';\n")
    held.p.stdin.flush()
    try:
        p = ctl_bg(n, "apikey", "revoke", input=key + "\n")
        wait_for(lambda: held.waiting() == 1, 20, "the revoke waiting for the user")
        held.p.stdin.write("DELETE FROM apikeys WHERE org = 'ACME' AND user_name = 'dee';"
                           " COMMIT;\n")
        held.p.stdin.flush()
    finally:
        held.release()
    out, errs = p.communicate(timeout=30)
    check("deadlock" not in errs, f"no deadlock: {errs}")
    check("no such Web API key" in errs, f"the key went with its user: {p.returncode} {errs}")


def t_key_rotate_and_retire_at_once():
    """key rotate and key retire of the current (leaked) key, both
    waiting for a transaction that holds the current key: both done,
    the retired key verifies nothing, whichever ran first."""
    n = A
    tok = n.login_token("alice", "alice-pw")
    kid = crmtest.jwt_parts(tok)[0]["kid"]
    held = HeldRow(n, "signing_keys", "current")
    try:
        procs = [ctl_bg(n, "key", "rotate")]
        wait_for(lambda: held.waiting() == 1, 20, "key rotate waiting for the current key")
        procs.append(ctl_bg(n, "key", "retire", kid))
        wait_for(lambda: held.waiting() == 2, 20, "key retire waiting behind it")
    finally:
        held.release()
    outs = [p.communicate(timeout=30) for p in procs]
    eq([p.returncode for p in procs], [0, 0], f"both done: {outs}")
    check(f"{kid} is retired" in outs[1][0], f"retire says so: {outs[1]}")
    listed = n.ctl("key", "list").stdout
    check(kid not in listed, f"the retired key is gone: {listed}")
    for node in (A, B):
        eq(check_status(node, tok), (401, "INVALID_TOKEN"), f"its token, on {node.name}")
        eq(check_status(node, node.login_token("alice", "alice-pw")), (200, "OK"),
           f"a new token on {node.name}")


def t_lock_commands_use_an_index():
    """lock list and lock clear during a flood (200,000 counter rows):
    they read the table through its indexes, never a scan of it (make
    bench times them at 1,000,000 rows)."""
    n = A
    for _ in range(6):
        login(n, "wrong", "alice", "127.0.0.9")
    pg = n.pg
    pg.psql(n.pg_db, "INSERT INTO attempts SELECT 'N'::bytea || "
            "decode(lpad(to_hex(i), 16, '0'), 'hex'), 4102444800, 1, NULL "
            "FROM generate_series(1, 200000) i; ANALYZE attempts")

    def stat(what):
        return int(pg.psql(n.pg_db, f"SELECT {what}").strip() or 0)
    seq = stat("seq_scan FROM pg_stat_user_tables WHERE relname = 'attempts'")
    idx = stat("idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'attempts_locked'")
    listed = n.ctl("lock", "list").stdout
    check("alice" in listed, f"alice's lock listed: {listed}")
    n.ctl("lock", "clear", "user", "ACME", "alice")
    check("alice" not in n.ctl("lock", "list").stdout, "and cleared")
    wait_for(lambda: stat("idx_scan FROM pg_stat_user_indexes WHERE "
                          "indexrelname = 'attempts_locked'") > idx, 10,
             "lock list through its index")
    eq(stat("seq_scan FROM pg_stat_user_tables WHERE relname = 'attempts'"), seq,
       "no scan of the counters table")
    pg.psql(n.pg_db, "DELETE FROM attempts WHERE window_end = 4102444800")


def t_release_on_a_refused_on_b():
    """Release through one node, check through the other: refused at once,
    50 rounds each way."""
    for i in range(50):
        one, other = (A, B) if i % 2 == 0 else (B, A)
        tok = one.login_token("alice", "alice-pw")
        eq(check_status(other, tok), (200, "OK"), "good on the other node")
        eq(one.post("/authentication/token/release", {"token": tok}).status, 200, "release")
        eq(check_status(other, tok), (401, "TOKEN_RELEASED"), f"round {i}: refused at once")


def t_through_the_balancer():
    """Through nginx, each request on whichever node: a token, its check,
    its release and its refusal hold whatever the node."""
    seen = set()
    for i in range(20):
        r = LB.post("/authentication/token",
                    {"username": "alice", "password": "alice-pw", "organisation": "ACME"})
        eq(r.status, 200, "login through the balancer")
        seen.add(r.headers.get("x-node"))
        tok = r.data["token"]
        eq(check_status(LB, tok), (200, "OK"), "check")
        eq(LB.post("/authentication/token/release", {"token": tok}).status, 200, "release")
        for _ in range(2):
            eq(check_status(LB, tok), (401, "TOKEN_RELEASED"), "released, on either node")
    eq(len(seen), 2, f"both nodes answered: {seen}")


def t_apikey_revoke_on_both():
    key = A.ctl("apikey", "add", "ACME", "alice").stdout.strip()
    toks = [A.key_token(key), B.key_token(key)]
    A.ctl("apikey", "revoke", input=key + "\n")
    for n in (A, B):
        r = n.post("/authentication/web_api_key/token", headers={"Authorization": basic(key)})
        eq(r.status, 401, f"the key fails on {n.name}")
        for t in toks:
            eq(check_status(n, t), (401, "TOKEN_RELEASED"), f"its tokens, on {n.name}")


def t_user_disable_on_both():
    A.ctl("user", "add", "ACME", "dora", "--unit", "HQ", input="dora-pw\n")
    toks = [A.login_token("dora", "dora-pw"), B.login_token("dora", "dora-pw")]
    B.ctl("user", "disable", "ACME", "dora")
    for n in (A, B):
        eq(login(n, "dora-pw", "dora").status, 401, f"login refused on {n.name}")
        for t in toks:
            eq(check_status(n, t)[0], 401, f"tokens refused on {n.name}")
    A.ctl("user", "enable", "ACME", "dora")
    for n in (A, B):
        eq(login(n, "dora-pw", "dora").status, 200, f"enabled: login on {n.name}")
        for t in toks:
            eq(check_status(n, t)[0], 401, f"old tokens stay refused on {n.name}")


def t_key_rotate_on_both():
    old = [A.login_token("alice", "alice-pw"), B.login_token("alice", "alice-pw")]
    A.ctl("key", "rotate")
    new = [A.login_token("alice", "alice-pw"), B.login_token("alice", "alice-pw")]
    kid = crmtest.jwt_parts(new[0])[0]["kid"]
    eq(crmtest.jwt_parts(new[1])[0]["kid"], kid, "both nodes sign with the new key")
    check(crmtest.jwt_parts(old[0])[0]["kid"] != kid, "a new key")
    for n in (A, B):
        for t in old + new:
            eq(check_status(n, t), (200, "OK"), f"old and new tokens verify on {n.name}")


def t_revocations_hold_on_the_other_node():
    """user logout, key retire, consumer-key revoke through one node's
    crmauthctl: the other node refuses what they revoked."""
    A.ctl("user", "add", "ACME", "lou", "--unit", "HQ", input="lou-pw\n")
    t = B.login_token("lou", "lou-pw")
    A.ctl("user", "logout", "ACME", "lou")
    eq(check_status(B, t), (401, "TOKEN_RELEASED"), "logout holds on B")
    eq(login(B, "lou-pw", "lou").status, 200, "a login after it works")
    ck = A.ctl("consumer-key", "add", "ACME", "till", "--unit", "HQ").stdout.strip()
    A.add_code("ACME", "C-7", "CODE-7")
    r = B.post("/authentication/consumer_application_key/token",
               {"access_token_identifier": {"authentication_code": "CODE-7"}},
               headers={"Authorization": basic(ck)})
    eq(r.status, 200, "a consumer token on B")
    ct = r.data["token"]
    B.ctl("consumer-key", "revoke", input=ck + "\n")
    eq(check_status(A, ct), (401, "TOKEN_RELEASED"), "consumer-key revoke holds on A")
    t = A.login_token("alice", "alice-pw")
    kid = crmtest.jwt_parts(t)[0]["kid"]
    B.ctl("key", "retire", kid)
    for n in (A, B):
        eq(check_status(n, t), (401, "INVALID_TOKEN"), f"key retire holds on {n.name}")
    eq(check_status(A, A.login_token("alice", "alice-pw")), (200, "OK"), "new key serves")


def t_failures_split_across_nodes():
    """Wrong passwords from one address, alternating between the nodes,
    lock that (account, address) pair at the threshold on both."""
    A.ctl("user", "add", "ACME", "fay", "--unit", "HQ", input="fay-pw\n")
    for i in range(5):
        eq(login((A, B)[i % 2], f"wrong-{i}", "fay", "127.0.0.5").status, 401, f"failure {i}")
    for n in (A, B):
        eq(login(n, "fay-pw", "fay", "127.0.0.5").status, 429, f"locked on {n.name}")
    eq(login(B, "fay-pw", "fay", "127.0.0.6").status, 200, "another address is not held")
    locks = A.ctl("lock", "list").stdout
    check("fay\t127.0.0.5" in locks, f"lock list shows it: {locks}")
    B.ctl("user", "unlock", "ACME", "fay")
    eq(login(A, "fay-pw", "fay", "127.0.0.5").status, 200, "unlocked through B's crmauthctl")


def t_parallel_guesses_across_nodes():
    """40 wrong passwords at once from one address, half on each node:
    still counted before they are checked, so at most 5 are checked."""
    A.ctl("user", "add", "ACME", "gus", "--unit", "HQ", input="gus-pw\n")
    rs = parallel(40, lambda i: login((A, B)[i % 2], f"guess-{i}", "gus", "127.0.0.7"))
    c = statuses(rs)
    print(f"  40 parallel wrong passwords over two nodes: {c}")
    check(set(c) <= {401, 429} and 1 <= c.get(401, 0) <= 5, f"at most 5 checked: {c}")


def t_parallel_successes_across_nodes():
    """Good keys and passwords from one address, 16 clients at once on
    both nodes for 3 seconds: each counts its attempt and gives it back on
    the same counter rows, and none waits in a circle for another (a
    deadlock costs a second and a 503): every answer 200, no deadlock in
    the database's log."""
    key = A.ctl("apikey", "add", "ACME", "alice").stdout.strip()
    pg = Postgres.get()
    deadlocks = open(pg.log, errors="replace").read().count("deadlock detected")
    seen, lock = {}, threading.Lock()
    end = time.time() + 3

    def client(i):
        while time.time() < end:
            n = (A, B)[i % 2]
            r = n.post("/authentication/web_api_key/token",
                       headers={"Authorization": basic(key)}) if i % 4 < 2 \
                else login(n, "alice-pw")
            with lock:
                seen[r.status] = seen.get(r.status, 0) + 1
    ts = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    print(f"  16 clients for 3 s: {seen}")
    eq(set(seen), {200}, f"every answer 200: {seen}")
    eq(open(pg.log, errors="replace").read().count("deadlock detected"), deadlocks,
       "no deadlock")


def t_lock_list_both_nodes():
    """Locks set through either node are listed by either crmauthctl."""
    A.ctl("user", "add", "ACME", "lia", "--unit", "HQ", input="lia-pw\n")
    A.ctl("user", "add", "ACME", "lee", "--unit", "HQ", input="lee-pw\n")
    for i in range(5):
        login(A, "x", "lia", "127.0.0.8")
        login(B, "x", "lee", "127.0.0.9")
    for n in (A, B):
        out = n.ctl("lock", "list").stdout
        check("lia\t127.0.0.8" in out and "lee\t127.0.0.9" in out, f"{n.name}: {out}")


# ---- faults ----------------------------------------------------------------

def t_database_stopped():
    """PostgreSQL stopped while the nodes serve: 503 with Retry-After,
    health 503, within the timeouts; started again: 200, the responders
    untouched."""
    pids = A.responder_pids() | B.responder_pids()
    pg = Postgres.get()
    pg.stop()
    try:
        for n in (A, B):
            t0 = time.time()
            r = login(n, "alice-pw")
            eq(r.status, 503, f"{n.name}: login while the database is down")
            eq(r.code, "SERVICE_UNAVAILABLE", "the code")
            check("retry-after" in r.headers, "Retry-After")
            check(time.time() - t0 < 15, "within the timeouts")
            eq(n.get("/health").status, 503, "health")
    finally:
        pg.start()
    for n in (A, B):
        wait_for(lambda: n.get("/health").status == 200, 20, f"{n.name} healthy again")
        eq(login(n, "alice-pw").status, 200, f"{n.name} serves again")
    eq(A.responder_pids() | B.responder_pids(), pids, "the same responders")
    for n in (A, B):
        log = n.error_log()
        check("postgresql database" in log, f"the log names the store: {log[-600:]}")


def t_database_hangs():
    """A server that does not answer (every PostgreSQL process stopped):
    503 within connect_timeout plus the round trip's deadline, never a
    hung worker; answered again when it is back."""
    N = node("hang", conninfo_extra=FAST, procs=1).start()
    pg = Postgres.get()
    procs = []
    try:
        eq(N.get("/health").status, 200, "healthy first")
        procs = pg.cluster_pids()     # N's backend among them
        for p in procs:
            os.kill(p, signal.SIGSTOP)
        t0 = time.time()
        r = N.get("/health")
        took = time.time() - t0
        print(f"  a database that does not answer: {r.status} after {took:.1f}s")
        eq(r.status, 503, "503")
        check(took < 12, f"within the timeouts: {took:.1f}s")
    finally:
        for p in procs:
            os.kill(p, signal.SIGCONT)
    try:
        wait_for(lambda: N.get("/health").status == 200, 30, "healthy again")
    finally:
        N.cleanup()


def t_sigkill_during_releases():
    """SIGKILL to the PostgreSQL server while both nodes release, then a
    restart: every release answered 200 stays released (20 rounds)."""
    pg = Postgres.get()
    lost = 0
    answered = 0
    for rnd in range(20):
        toks = [A.login_token("alice", "alice-pw") for _ in range(16)]
        ok = []
        lock = threading.Lock()
        go = threading.Event()

        def release(i):
            go.wait()
            n = (A, B)[i % 2]
            r = n.post("/authentication/token/release", {"token": toks[i]})
            if r.status == 200:
                with lock:
                    ok.append(toks[i])
            else:
                check(r.status == 503, f"a release is 200 or 503: {r!r}")
        ts = [threading.Thread(target=release, args=(i,)) for i in range(len(toks))]
        for t in ts:
            t.start()
        go.set()
        time.sleep(0.002 * (rnd % 10))      # the kill lands at different points
        pg.kill()
        for t in ts:
            t.join(60)
        pg.start()
        answered += len(ok)
        for tok in ok:
            if check_status((A, B)[rnd % 2], tok) != (401, "TOKEN_RELEASED"):
                lost += 1
    print(f"  20 rounds: {answered} releases answered 200, {lost} lost after SIGKILL")
    eq(lost, 0, "no release answered 200 is lost")


def t_failover_past_a_silent_host():
    """pg_conninfo lists a first host that takes the connection and never
    answers (a primary gone without a word) before the real one: each
    connection tries the next host after connect_timeout, so the node
    serves, in about that time, instead of answering 503 forever."""
    import socket
    pg = Postgres.get()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held = []
    stop = threading.Event()

    def hold():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])     # and say nothing
            except OSError:
                pass
    t = threading.Thread(target=hold)
    t.start()
    port = silent.getsockname()[1]
    N = node("failover", pg_db=A.pg_db, wrap_from=A, procs=1,
             conninfo_extra=f"host=127.0.0.1,{pg.dir} port={port},5432 connect_timeout=2")
    try:
        N.start()
        t0 = time.time()
        r = login(N, "alice-pw")
        took = time.time() - t0
        print(f"  past a silent first host: {r.status} after {took:.1f}s")
        eq(r.status, 200, "served by the second host")
        check(2 <= took < 10, f"after the first host's connect_timeout: {took:.1f}s")
        check(len(held) >= 1, "the first host was tried")
        eq(login(N, "alice-pw").status, 200, "and the connection is kept")
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        silent.close()
        N.cleanup()


def t_started_while_down():
    """A responder started while the database is down answers 503 until it
    is up, then 200, without a restart."""
    pg = Postgres.get()
    pg.stop()
    try:
        N = node("late", pg_db=A.pg_db, wrap_from=A, procs=1)
        N.start()
        r = N.get("/health")
        eq((r.status, r.code), (503, "SERVICE_UNAVAILABLE"), "503 while down")
        check("retry-after" in r.headers, "Retry-After")
    finally:
        pg.start()
    try:
        wait_for(lambda: N.get("/health").status == 200, 20, "healthy once the database is up")
        eq(login(N, "alice-pw").status, 200, "and serving")
    finally:
        N.cleanup()


def t_node_without_wrap_key():
    """A node whose db_path lacks wrap.key: 503 to the client, and a line
    in its log saying what to copy from where; once the file is copied,
    200 without a restart."""
    N = node("nowrap", pg_db=A.pg_db, procs=1, init=False)
    try:
        os.makedirs(N.db, exist_ok=True)
        if N.user:
            shutil.chown(N.db, N.user, N.user)
        N.start()
        r = login(N, "alice-pw")
        eq((r.status, r.code), (503, "SERVICE_UNAVAILABLE"), "no wrap.key: 503")
        check("wrap.key" not in r.body.decode(), "nothing of it in the answer")
        log = N.error_log()
        check("no wrap.key in db_path: copy it from the node where crmauthctl init first ran"
              in log, log[-800:])
        v = N.ctl("key", "list", check=False)
        eq(v.returncode, 1, "crmauthctl fails too")
        dst = os.path.join(N.db, "wrap.key")
        shutil.copy(os.path.join(A.db, "wrap.key"), dst)
        os.chmod(dst, 0o600)
        if N.user:
            shutil.chown(dst, N.user, N.user)
        eq(login(N, "alice-pw").status, 200, "with wrap.key copied")
    finally:
        N.cleanup()


def put_wrap(n, data):
    """Write n's wrap.key (data: bytes), as an operator copies it."""
    dst = os.path.join(n.db, "wrap.key")
    tmp = dst + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    if n.user:
        shutil.chown(tmp, n.user, n.user)
    os.rename(tmp, dst)


def check_config(n):
    """crmauth.fcgi -t on n's configuration, as its user: n's own copy
    (the build tree may not be reachable by that user)."""
    return subprocess.run([os.path.join(n.sbindir, "crmauth.fcgi"), "-t", "-c", n.conf],
                          capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, **crmtest.user_kw(n.user))


def t_wrap_key_replaced_while_serving():
    """Operator: another deployment's wrap.key makes health 503 (with
    Retry-After, so that a balancer leaves the node out) and -t fail;
    the right file copied in, or a new one made by the README's
    "Losing or leaking wrap.key" steps, is taken up by the running
    responders, no restart."""
    X = node("wrapx", procs=2)
    Y = None
    try:
        X.start()
        X.ctl("user", "add", "ACME", "wanda", "--unit", "HQ", input="wanda-pw\n")
        old = X.login_token("wanda", "wanda-pw")
        Y = node("wrapy", pg_db=X.pg_db, wrap_from=X, procs=2)
        put_wrap(Y, os.urandom(32))             # another deployment's
        # init there keys no code with the wrong file (a code kept
        # plain, as an earlier version did, stays as it was).
        X.pg.psql(X.pg_db, "INSERT INTO access_tokens VALUES ('ACME', 'C', "
                  f"'{'AB' * 32}', 'C-9', '', '', 1700000000)")
        r = Y.ctl("init", check=False)
        eq(r.returncode, 1, f"init with another's wrap.key: {r.stdout} {r.stderr}")
        check("cannot be unsealed with this node's wrap.key" in r.stderr, r.stderr)
        eq(X.pg.psql(X.pg_db, "SELECT lookup FROM access_tokens WHERE contact = 'C-9'"
                     ).strip(), "AB" * 32, "the plain code untouched")
        X.ctl("init")
        check(X.pg.psql(X.pg_db, "SELECT lookup FROM access_tokens WHERE contact = 'C-9'"
                        ).startswith("k1:"), "keyed by init with the right one")
        Y.start()
        r = Y.get("/health")
        eq((r.status, r.code), (503, "SERVICE_UNAVAILABLE"), "health with another's wrap.key")
        check(r.headers.get("retry-after"), "Retry-After")
        eq(login(Y, "wanda-pw", user="wanda").status, 503, "login there: 503, not 500")
        check("cannot be unsealed with this node's wrap.key" in Y.error_log(),
              Y.error_log()[-600:])
        t = check_config(Y)
        eq(t.returncode, 1, f"-t with another's wrap.key: {t.stdout}")
        check("wrap.key" in t.stderr, t.stderr)
        put_wrap(Y, open(os.path.join(X.db, "wrap.key"), "rb").read())
        eq(Y.get("/health").status, 200, "the right wrap.key copied in: no restart")
        eq(check_status(Y, old), (200, "OK"), "and it verifies")
        eq(check_config(Y).returncode, 0, "-t then")
        # The README's steps after a leak, on X, while both serve.
        X.pg.psql(X.pg_db, "DELETE FROM signing_keys")
        os.unlink(os.path.join(X.db, "wrap.key"))
        t = check_config(X)
        eq(t.returncode, 1, f"-t without wrap.key: {t.stdout}")
        X.ctl("init")
        for _ in range(4):      # every responder of X
            eq(login(X, "wanda-pw", user="wanda").status, 200, "a new wrap.key: no restart")
        eq(check_status(X, old), (401, "INVALID_TOKEN"), "tokens from before are refused")
        eq(Y.get("/health").status, 503, "Y has the old wrap.key: 503")
        put_wrap(Y, open(os.path.join(X.db, "wrap.key"), "rb").read())
        for _ in range(4):
            eq(login(Y, "wanda-pw", user="wanda").status, 200, "Y with the new file")
    finally:
        X.cleanup()
        if Y is not None:
            Y.cleanup()


def t_backend_killed():
    """Faults: every backend of the responders SIGKILLed (PostgreSQL then
    restarts them all): once the server is back, the responders, still
    holding their dead connections, reconnect and retry the (idempotent)
    read: every answer a 200, no responder restarted."""
    n = node("bkill", procs=2)
    try:
        n.start()
        n.ctl("user", "add", "ACME", "kim", "--unit", "HQ", input="kim-pw\n")
        key = n.ctl("apikey", "add", "ACME", "kim").stdout.strip()
        tok = n.key_token(key)
        for _ in range(4):
            eq(check_status(n, tok), (200, "OK"), "before")
        responders = sorted(n.responder_pids())
        pids = [int(p) for p in n.pg.psql(
            "postgres", "SELECT pid FROM pg_stat_activity WHERE application_name = 'crmauth' "
            f"AND datname = '{n.pg_db}'").split()]
        check(pids, "the responders' connections")
        for p in pids:
            os.kill(p, signal.SIGKILL)
        # The server back (it restarted every backend), the responders
        # still holding their dead connections: each notices, reconnects
        # and retries the read, so every answer is a 200.
        wait_for(lambda: n.pg.psql("postgres", "SELECT 1", check=False).strip() == "1", 60,
                 "PostgreSQL back after the crash of a backend")
        seen = [check_status(n, tok)[0] for _ in range(8)]
        eq(seen, [200] * 8, "a lost connection: reconnected, the read retried")
        eq(sorted(n.responder_pids()), responders, "the same responders")
    finally:
        n.cleanup()


def t_connection_lost_mid_statement():
    """Faults: a responder's backend SIGKILLed while its read waits for a
    lock: the connection ends without a word from the server (no
    SQLSTATE).  That is a lost connection like any other: 503 with
    Retry-After (or a 200 when the retried read found the server back),
    never a 500; and then service, from the same responders.  (libpq's
    own errors without SQLSTATE: tests/test_store.c.)"""
    n = node("midkill", procs=1)
    try:
        n.start()
        n.ctl("user", "add", "ACME", "kim", "--unit", "HQ", input="kim-pw\n")
        key = n.ctl("apikey", "add", "ACME", "kim").stdout.strip()
        n.key_token(key)
        responders = sorted(n.responder_pids())
        held = HeldRow(n, "users")
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", n.post("/authentication/web_api_key/token",
                        headers={"Authorization": basic(key)})))
        try:
            t.start()
            wait_for(lambda: held.waiting() == 1, 20, "the key token's read waiting")
            pid = int(n.pg.psql(n.pg_db, "SELECT pid FROM pg_stat_activity WHERE "
                                "datname = current_database() AND "
                                "wait_event_type = 'Lock'").split()[0])
            os.kill(pid, signal.SIGKILL)
            t.join(60)
        finally:
            held.release()
        r = out["r"]
        print(f"  answered {r.status} {r.code}")
        check(r.status in (200, 503), f"a lost connection is no 500: {r.status} {r.body!r}")
        if r.status == 503:
            check(r.headers.get("retry-after"), f"with Retry-After: {r.headers}")
        wait_for(lambda: n.pg.psql("postgres", "SELECT 1", check=False).strip() == "1", 60,
                 "PostgreSQL back after the crash of a backend")
        wait_for(lambda: n.post("/authentication/web_api_key/token",
                                headers={"Authorization": basic(key)}).status == 200, 30,
                 "service again")
        eq(sorted(n.responder_pids()), responders, "the same responders")
        check("INTERNAL_ERROR" not in n.error_log(), "nothing logged as an internal error")
    finally:
        n.cleanup()


def t_bad_conninfo_logs():
    """A missing database, a wrong password: one clear line in the log,
    never the password; 503 to the client."""
    pg = Postgres.get()
    pg.psql("postgres", "DROP ROLE IF EXISTS pwuser")
    pg.psql("postgres", "CREATE ROLE pwuser LOGIN PASSWORD 'right-Pw-71'")
    pg.require_password("pwuser")
    conf = ("db_path = {db}\nstore = postgresql\n"
            f"pg_conninfo = host={pg.dir} dbname=nosuchdb user=crmauth password=Pg-Secret-93\n")
    M = Lighttpd("nodb", conf_text="", init=False, procs=1)
    try:
        open(M.conf, "w").write(conf.format(db=M.db))
        M.start()
        r = M.get("/health")
        eq(r.status, 503, "a missing database: 503")
        check("nosuchdb" not in r.body.decode(), "nothing of it in the answer")
        v = M.ctl("user", "list", check=False)
        eq(v.returncode, 1, "crmauthctl fails")
        check('database "nosuchdb" does not exist' in v.stderr, v.stderr)
        eq(v.stderr.count("\n"), 1, "one line")
        open(M.conf, "w").write(conf.format(db=M.db).replace("dbname=nosuchdb user=crmauth",
                                                              "dbname=postgres user=pwuser"))
        v = M.ctl("user", "list", check=False)
        check("password authentication failed" in v.stderr, v.stderr)
        M.stop()
        M.start()
        r = M.get("/health")
        eq(r.status, 503, "a wrong password: 503")
        log = M.error_log()
        check("password authentication failed" in log, log[-800:])
        for text in (log, v.stderr, r.body.decode()):
            check("Pg-Secret-93" not in text, "the password is nowhere")
    finally:
        M.cleanup()


# ---- crmauthctl, export and import -------------------------------------------

def populate(s):
    """Every kind of record, and tokens issued from them: what a move from
    one store to another must keep working."""
    fx = {}
    ctl = s.ctl
    ctl("user", "add", "ACME", "mover", "--unit", "HQ", "--unit", "EU", input="mover-pw\n")
    ctl("user", "add", "ACME", "gone", "--unit", "HQ", input="gone-pw\n")
    ctl("user", "disable", "ACME", "gone")
    fx["apikey"] = ctl("apikey", "add", "ACME", "mover").stdout.strip()
    fx["apikey_revoked"] = ctl("apikey", "add", "ACME", "gone").stdout.strip()
    ctl("apikey", "revoke", input=fx["apikey_revoked"] + "\n")
    fx["ck"] = ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
    fx["ck_revoked"] = ctl("consumer-key", "add", "ACME", "old", "--unit", "HQ").stdout.strip()
    s.add_code("ACME", "C-9", "CODE-9", ari="AR-9")
    ctl("access-token", "add", "ACME", "--contact", "C-8", "--identifier", "card-8",
        input="pc-8\n")
    fx["tok_old_app"] = consumer_token(s, fx["ck_revoked"], {"authentication_code": "CODE-9"})
    ctl("consumer-key", "revoke", input=fx["ck_revoked"] + "\n")
    fx["tok_login"] = s.login_token("mover", "mover-pw")
    fx["tok_key"] = s.key_token(fx["apikey"])
    fx["tok_consumer"] = consumer_token(s, fx["ck"], {"identifier": "card-8",
                                                      "pass_code": "pc-8"})
    fx["tok_released"] = s.login_token("mover", "mover-pw")
    eq(s.post("/authentication/token/release", {"token": fx["tok_released"]}).status, 200,
       "release")
    ctl("key", "rotate")
    fx["tok_new_key"] = s.login_token("mover", "mover-pw")
    return fx


def consumer_token(s, key, ati):
    r = s.post("/authentication/consumer_application_key/token",
               {"access_token_identifier": ati}, headers={"Authorization": basic(key)})
    eq(r.status, 200, f"consumer token {r!r}")
    return r.data["token"]


def check_moved(s, fx):
    """What populate() made works on s as it did where it was made."""
    eq(login(s, "mover-pw", "mover").status, 200, "the password")
    eq(login(s, "gone-pw", "gone").status, 401, "a disabled user stays disabled")
    eq(s.key_token(fx["apikey"]) is not None, True, "the Web API key")
    r = s.post("/authentication/web_api_key/token",
               headers={"Authorization": basic(fx["apikey_revoked"])})
    eq(r.status, 401, "a revoked key stays revoked")
    consumer_token(s, fx["ck"], {"authentication_code": "CODE-9"})
    consumer_token(s, fx["ck"], {"identifier": "card-8", "pass_code": "pc-8"})
    r = s.post("/authentication/consumer_application_key/token",
               {"access_token_identifier": {"authentication_code": "CODE-9"}},
               headers={"Authorization": basic(fx["ck_revoked"])})
    eq(r.status, 401, "a revoked consumer key stays revoked")
    for k in ("tok_login", "tok_key", "tok_consumer", "tok_new_key"):
        eq(check_status(s, fx[k]), (200, "OK"), f"{k} issued before still verifies")
    eq(check_status(s, fx["tok_released"]), (401, "TOKEN_RELEASED"), "released stays released")
    eq(check_status(s, fx["tok_old_app"]), (401, "TOKEN_RELEASED"),
       "a revoked application's token stays refused")


def files_dir(s):
    """A directory for export files that crmauthctl, as s's user, can
    write."""
    d = os.path.join(s.dir, "files")
    os.makedirs(d, exist_ok=True)
    if s.user:
        shutil.chown(d, s.user, s.user)
    return d


def copy_wrap(src, dst):
    """src's wrap.key into dst's db_path, as the README says to."""
    path = os.path.join(dst.db, "wrap.key")
    shutil.copy(os.path.join(src.db, "wrap.key"), path)
    os.chmod(path, 0o600)
    if dst.user:
        shutil.chown(path, dst.user, dst.user)


def move(src, dst_store, name, access=2, keyed=0):
    """export from src, import into a fresh store of dst_store.  From
    PostgreSQL to LMDB with keyed codes: refused until wrap.key is
    copied over, then imported."""
    out = os.path.join(files_dir(src), "export.jsonl")
    r = src.ctl("export", out)
    check(r.stdout.startswith(f"exported to {out}: 2 users"), r.stdout)
    st = os.stat(out)
    eq(oct(st.st_mode & 0o777), "0o600", "the export is 0600")
    eq(open(out).read().count('"code_keyed"'), keyed, "codes exported keyed")
    dst = Lighttpd(name, store=dst_store, user=RUN_USER, argon2=ARGON2)
    inp = os.path.join(files_dir(dst), "in.jsonl")
    shutil.copy(out, inp)
    if dst.user:
        shutil.chown(inp, dst.user, dst.user)
    if keyed:
        # Keyed codes are found only with the wrap.key they were keyed
        # with: LMDB has none, a new PostgreSQL database its own.
        r = dst.ctl("import", inp, check=False)
        eq(r.returncode, 1, "keyed codes need the wrap.key they were keyed with")
        check(re.search(r"in\.jsonl:\d+: an authentication code kept keyed with wrap\.key "
                        r"[0-9A-F]{16}, and this store has (none|wrap\.key [0-9A-F]{16}): "
                        r"copy that wrap\.key into its db_path first", r.stderr), r.stderr)
        eq(dst.ctl("user", "list").stdout, "", "nothing imported")
        copy_wrap(src, dst)
    r = dst.ctl("import", inp)
    check(f"2 users, 2 Web API keys, 2 consumer keys, {access} access tokens, 2 signing keys, "
          "1 released tokens, 1 cutoffs" in r.stdout, r.stdout)
    return dst.start()


def t_lmdb_to_pg_and_back():
    """LMDB -> export -> import -> PostgreSQL: every password, key,
    consumer key and access token works, tokens issued before verify,
    released tokens stay released; and back again into LMDB."""
    L = Lighttpd("from-lmdb", store="lmdb", user=RUN_USER, argon2=ARGON2).start()
    P = L2 = P2 = None
    try:
        fx = populate(L)
        P = move(L, "postgresql", "to-pg")
        # LMDB's code came by its SHA-256: found, and keyed at that use.
        check_moved(P, fx)
        eq(P.pg.psql(P.pg_db, "SELECT count(*) FROM access_tokens WHERE kind = 'C' "
                     "AND lookup LIKE 'k1:%'").strip(), "1", "the moved code keyed once used")
        P.add_code("ACME", "C-7", "CODE-7")
        L2 = move(P, "lmdb", "back-to-lmdb", access=3, keyed=2)
        check_moved(L2, fx)
        consumer_token(L2, fx["ck"], {"authentication_code": "CODE-7"})
        # And to another PostgreSQL database, whose init made its own
        # wrap.key: refused, then given the first's, moved.
        P2 = move(P, "postgresql", "to-pg-again", access=3, keyed=2)
        check_moved(P2, fx)
        consumer_token(P2, fx["ck"], {"authentication_code": "CODE-7"})
        # What PostgreSQL exported is what LMDB did: every record, as it
        # was, but the codes (keyed there, and one more).
        body = [[ln for ln in open(os.path.join(s.dir, "files", "export.jsonl")).read()
                 .splitlines()[1:] if '"code_' not in ln and '"end"' not in ln]
                for s in (L, P)]
        eq(sorted(body[0]), sorted(body[1]), "the same records from both stores")
    finally:
        for s in (L, P, L2, P2):
            if s is not None:
                s.cleanup()


def t_import_refusals():
    """A damaged or foreign file is refused with its line number and
    nothing is imported; a store that is not empty is refused."""
    P = Lighttpd("refusals", store="postgresql", user=RUN_USER, argon2=ARGON2)
    try:
        P.ctl("user", "add", "ACME", "x", "--unit", "HQ", input="x-pw\n")
        good = os.path.join(files_dir(P), "good.jsonl")
        P.ctl("export", good)
        lines = open(good).read().splitlines()
        v = P.ctl("import", good, check=False)
        eq((v.returncode, v.stderr.strip()), (1, "crmauthctl: import: the store is not empty "
                                                 "(import loads an empty store only)"),
           "a store that is not empty")
        E = Lighttpd("refusals-empty", store="postgresql", user=RUN_USER, argon2=ARGON2)
        try:
            before = E.dump()
            cases = [
                (lines[:-1], f"{len(lines) - 1}: the file is cut short (no end line)"),
                (['{"hello":1}'] + lines[1:], "1: not a crmauth export"),
                (lines[:2] + ["{not json"] + lines[2:], "3: not a JSON object"),
                (lines[:1] + [lines[1].replace('"org":"ACME"', '"org":"AC\\u0007ME"')] +
                 lines[2:], '2: "org": must not contain control characters'),
                (lines[:1] + [lines[1].replace('$argon2id$', '$plain$')] + lines[2:],
                 '2: "pwhash" is not an argon2id hash'),
                (lines[:2] + lines[1:-1] + [re.sub(r'"records":(\d+)', lambda m:
                                                    f'"records":{int(m.group(1)) + 1}',
                                                    lines[-1])],
                 "3: a record that is there already (the same record twice)"),
            ]
            for i, (text, why) in enumerate(cases):
                path = os.path.join(files_dir(E), f"bad{i}.jsonl")
                with open(path, "w") as f:
                    f.write("\n".join(text) + "\n")
                if E.user:
                    shutil.chown(path, E.user, E.user)
                v = E.ctl("import", path, check=False)
                eq(v.returncode, 1, f"case {i} refused")
                check(v.stderr.startswith(f"crmauthctl: {path}:{why}"), f"case {i}: {v.stderr}")
                eq(E.dump(), before, f"case {i}: nothing imported")
        finally:
            E.cleanup()
    finally:
        P.cleanup()


def t_every_ctl_command():
    """Every crmauthctl command on PostgreSQL: exit 0 and what it says;
    backup and restore say what to use instead."""
    s = Lighttpd("ctl", store="postgresql", user=RUN_USER, argon2=ARGON2, lockout=LOCKOUT)
    try:
        ctl = s.ctl
        out = {}
        out["init"] = ctl("init").stdout
        ctl("user", "add", "ACME", "u1", "--unit", "HQ", input="pw1\n")
        ctl("user", "passwd", "ACME", "u1", input="pw2\n")
        ctl("user", "disable", "ACME", "u1")
        ctl("user", "enable", "ACME", "u1")
        ctl("user", "unlock", "ACME", "u1")
        ctl("user", "logout", "ACME", "u1")
        out["user list"] = ctl("user", "list").stdout
        key = ctl("apikey", "add", "ACME", "u1").stdout.strip()
        out["apikey list"] = ctl("apikey", "list").stdout
        ctl("apikey", "revoke", input=key + "\n")
        ck = ctl("consumer-key", "add", "ACME", "app", "--unit", "HQ").stdout.strip()
        out["consumer-key list"] = ctl("consumer-key", "list", "ACME").stdout
        ctl("consumer-key", "revoke", out["consumer-key list"].split("\t")[2])
        ctl("access-token", "add", "ACME", "--contact", "C", "--authentication-code",
            input="code-1\n")
        ctl("access-token", "add", "ACME", "--contact", "C", "--accounts-receivable", "AR",
            "--identifier", "id-1", input="pc-1\n")
        out["key rotate"] = ctl("key", "rotate").stdout
        out["key list"] = ctl("key", "list").stdout
        kid, secret = ctl("key", "export").stdout.split()
        eq(len(b64url_decode(secret)), 32, "key export")
        ctl("key", "retire", out["key list"].split("\t")[0])
        out["released count"] = ctl("released", "count").stdout
        out["released prune"] = ctl("released", "prune").stdout
        out["lock list"] = ctl("lock", "list").stdout
        ctl("lock", "clear", "user", "ACME", "u1")
        # Three cutoffs of u1 within a second or so (disable, logout,
        # apikey revoke) put its cutoff seconds ahead: a login waits, or
        # answers 503 with the Retry-After to wait.
        s.start()
        r = {}
        wait_for(lambda: r.update(x=login(s, "pw2", "u1")) or r["x"].status == 200, 15,
                 "a login of u1 once its cutoff has passed")
        v = ctl("token", "verify", input=r["x"].data["token"] + "\n")
        check('"usr":"u1"' in v.stdout.replace(" ", ""), v.stdout)
        ctl("export", os.path.join(files_dir(s), "e.jsonl"))
        b = os.path.join(files_dir(s), "b")
        for cmd in (("backup", b), ("restore", b)):
            v = ctl(*cmd, check=False)
            eq(v.returncode, 1, f"{cmd[0]} refused")
            check("pg_dump" in v.stderr or "crmauthctl import" in v.stderr, v.stderr)
        check(out["init"].startswith(f"store postgresql database {s.pg_db} is ready"), out["init"])
        check("wrap.key" in out["init"], out["init"])
        check(out["user list"].startswith("ACME\tu1\tHQ"), out["user list"])
        eq(out["released count"], "0\n", "released count")
        check(out["released prune"].startswith("pruned "), out["released prune"])
        eq(len(out["key list"].splitlines()), 2, "two keys after a rotation")
    finally:
        s.cleanup()


def t_no_secret_in_pg_dump():
    """pg_dump of a store in use holds no password, pass code, key, code or
    signing secret in clear text; nor does any node's log."""
    s = Lighttpd("dump", store="postgresql", user=RUN_USER, argon2=ARGON2)
    try:
        fx = populate(s.start())
        kid, secret = s.ctl("key", "export").stdout.split()
        dump = s.raw_dump()
        raw = b64url_decode(secret)
        for word in ("mover-pw", "gone-pw", "CODE-9", "pc-8", fx["apikey"], fx["ck"],
                     fx["apikey_revoked"], fx["ck_revoked"], secret):
            for form in (word.encode(), word.lower().encode(), word.encode().hex().encode()):
                check(form not in dump, f"{word!r} is in pg_dump")
        for form in (raw.hex().encode(), raw.hex().upper().encode()):
            check(form not in dump, "the signing secret is in pg_dump")
        check(b"$argon2id$" in dump, "passwords are there as argon2id hashes")
        for n in (s, A, B):
            log = n.error_log()
            for word in ("mover-pw", "alice-pw", secret, fx["apikey"]):
                check(word not in log, f"{word!r} in {n.name}'s log")
    finally:
        s.cleanup()


def main():
    run = Runner("pg")
    setup_nodes()
    try:
        tests = [
            ("two nodes: release on one, refused on the other at once", t_release_on_a_refused_on_b),
            ("two nodes: through nginx, whichever node answers", t_through_the_balancer),
            ("security: session settings pinned against the database's defaults",
             t_session_settings_pinned),
            ("operator: wrap.key replaced while serving; another's gives 503 and -t fails",
             t_wrap_key_replaced_while_serving),
            ("faults: the responders' backends killed: reconnected, reads retried",
             t_backend_killed),
            ("races: apikey add while user del waits: no key left for a deleted user",
             t_apikey_add_racing_user_del),
            ("races: apikey revoke during user del: no deadlock",
             t_apikey_revoke_during_user_del),
            ("races: key rotate and key retire at once: the key retired",
             t_key_rotate_and_retire_at_once),
            ("two nodes: apikey revoke fails the key on both", t_apikey_revoke_on_both),
            ("two nodes: user disable refuses on both", t_user_disable_on_both),
            ("two nodes: key rotate, old and new tokens verify on both", t_key_rotate_on_both),
            ("two nodes: logout, key retire, consumer-key revoke hold on the other",
             t_revocations_hold_on_the_other_node),
            ("two nodes: failures split across nodes lock the pair", t_failures_split_across_nodes),
            ("two nodes: parallel guesses over both, at most 5 checked",
             t_parallel_guesses_across_nodes),
            ("two nodes: successes at once from one address, all 200, no deadlock",
             t_parallel_successes_across_nodes),
            ("two nodes: lock list shows locks set through either", t_lock_list_both_nodes),
            ("lock list and lock clear read through indexes during a flood",
             t_lock_commands_use_an_index),
            ("faults: database stopped: 503, health 503; back: 200", t_database_stopped),
            ("faults: a database that hangs: 503 within the timeouts", t_database_hangs),
            ("faults: SIGKILL during releases, 20 rounds, none lost", t_sigkill_during_releases),
            ("faults: a first host that never answers: the next one serves",
             t_failover_past_a_silent_host),
            ("faults: a responder started while the database is down", t_started_while_down),
            ("faults: a node without wrap.key: 503, and the log says what to copy",
             t_node_without_wrap_key),
            ("faults: a connection lost mid-statement, no SQLSTATE: 503, not 500",
             t_connection_lost_mid_statement),
            ("faults: missing database, wrong password: one line, no password",
             t_bad_conninfo_logs),
            ("crmauthctl: every command on PostgreSQL", t_every_ctl_command),
            ("export/import: LMDB to PostgreSQL and back, everything works",
             t_lmdb_to_pg_and_back),
            ("import: damaged, foreign, twice, not empty: refused, nothing imported",
             t_import_refusals),
            ("no secret in pg_dump or in any log", t_no_secret_in_pg_dump),
        ]
        only = os.environ.get("PG_ONLY")
        for name, fn in tests:
            if not only or only in name:
                run.run(name, fn)
    finally:
        for s in (LB, B, A):
            if s is not None:
                s.cleanup()
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
