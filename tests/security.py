"""Security regressions, one named test each, as an attacker or an operator
would try them: through a real lighttpd on loopback, crmauthctl, and
libcrmauth.  Each failed against the code before the fix it guards
(README.md "Throttling failed attempts", "Revocation of tokens already
issued", §7).

Client addresses are 127.0.0.0/8: the server sees each as REMOTE_ADDR."""
import base64
import json
import os
import random
import re
import shutil
import signal
import stat
import string
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crmtest  # noqa: E402
from crmtest import (Runner, Lighttpd, RUN_USER, VERIFY, basic, b64url_decode, check,  # noqa: E402
                     eq, jwt_parts, parallel, sign, statuses, wait_for)

# Throttling as shipped (5 per address, 50 per account), a short window.
LOCKOUT = ("lockout_threshold = 5\nlockout_account_threshold = 50\n"
           "lockout_window = 60\n")
# Each check of a password costs a little, so that parallel guesses are
# really in flight together.
ARGON2 = "argon2_memory_kib = 4096\nargon2_iterations = 1\n"


def login(s, pw, src="127.0.0.1", user="alice", org="ACME", prefix=None):
    return s.post("/authentication/token",
                  {"username": user, "password": pw, "organisation": org},
                  source=src, prefix=prefix)


def consumer(s, key, ati, src="127.0.0.1"):
    return s.post("/authentication/consumer_application_key/token",
                  {"access_token_identifier": ati}, headers={"Authorization": basic(key)},
                  source=src)


def check_status(s, tok):
    r = s.get("/authentication/token/check", headers={"Authorization": f"Bearer {tok}"})
    return r.status, r.code


def server(name, procs=2, extra=""):
    s = Lighttpd(name, procs=procs, user=RUN_USER, lockout=LOCKOUT, argon2=ARGON2,
                 conf_extra=extra).start()
    s.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="alice-pw\n")
    return s


# ---- throttling ------------------------------------------------------------

def parallel_guesses(s, prefix=None):
    """40 wrong passwords at once from one address: at most 5 checked."""
    rs = parallel(40, lambda i: login(s, f"guess-{i}", "127.0.0.2", prefix=prefix))
    c = statuses(rs)
    print(f"  40 parallel wrong passwords: {c}")
    check(set(c) <= {401, 429}, f"only 401 and 429: {c}")
    check(1 <= c.get(401, 0) <= 5, f"at most lockout_threshold checked: {c}")
    # And the owner, elsewhere, is not held by it.
    eq(login(s, "alice-pw", "127.0.0.3", prefix=prefix).status, 200, "the owner elsewhere")


def sec_parallel_passwords_fastcgi():
    s = server("par-fcgi", procs=8)
    try:
        parallel_guesses(s)
    finally:
        s.cleanup()


def sec_parallel_passwords_cgi():
    """As CGI each request is its own process: no bound on how many
    check at once, but the count comes first all the same."""
    s = server("par-cgi")
    try:
        parallel_guesses(s, prefix="/cgi-bin/crmauth.cgi")
    finally:
        s.cleanup()


def sec_parallel_pass_codes():
    s = server("par-pc", procs=8)
    try:
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        s.ctl("access-token", "add", "ACME", "--contact", "C-1", "--identifier", "card",
              input="4321\n")
        rs = parallel(40, lambda i: consumer(s, ck, {"identifier": "card",
                                                     "pass_code": f"{i:04d}9"}, "127.0.0.2"))
        c = statuses(rs)
        print(f"  40 parallel wrong pass codes: {c}")
        check(set(c) <= {401, 429} and 1 <= c.get(401, 0) <= 5, f"at most 5 checked: {c}")
        eq(consumer(s, ck, {"identifier": "card", "pass_code": "4321"}, "127.0.0.3").status,
           200, "the right pass code elsewhere")
    finally:
        s.cleanup()


def sec_stranger_cannot_lock_owner():
    """Failures from 60 addresses lock the account for new addresses, never
    for the one its owner logs in from."""
    s = server("stranger")
    try:
        eq(login(s, "alice-pw", "127.0.0.2").status, 200, "the owner, as usual")
        rs = parallel(20, lambda i: [login(s, "wrong", f"127.0.1.{3 * i + j + 1}")
                                     for j in range(3)])
        c = statuses([r for batch in rs for r in batch])
        print(f"  60 addresses, one wrong password each: {c}")
        eq(c.get(401, 0), 50, "the account locks at lockout_account_threshold")
        eq(c.get(429, 0), 10, "then refuses the rest")
        eq(login(s, "alice-pw", "127.0.0.2").status, 200, "the owner's address is not locked")
        r = login(s, "alice-pw", "127.0.2.1")
        eq((r.status, r.code), (429, "TOO_MANY_ATTEMPTS"), "a new address is")
        check(0 < int(r.headers["retry-after"]) <= 60, "Retry-After")
    finally:
        s.cleanup()


def sec_app_key_cannot_block_codes():
    """A consumer key ships inside its app: hammering wrong codes with it
    from one address must not block a code from another."""
    s = server("codes")
    try:
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        s.add_code("ACME", "C-1", "CODE-1")
        seen = [consumer(s, ck, {"authentication_code": f"WRONG-{i}"}, "127.0.0.2").status
                for i in range(12)]
        eq(seen, [401] * 5 + [429] * 7, "the hammering address is locked")
        eq(consumer(s, ck, {"authentication_code": "CODE-1"}, "127.0.0.2").status, 429,
           "there, even the right code waits")
        eq(consumer(s, ck, {"authentication_code": "CODE-1"}, "127.0.0.3").status, 200,
           "another user of the app, elsewhere")
    finally:
        s.cleanup()


def sec_code_success_resets_nothing():
    """One valid authentication code of an app does not let its holder go
    on guessing other users' codes from the same address."""
    s = server("code-reset")
    try:
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        s.add_code("ACME", "C-1", "MINE")
        checked = 0
        for cycle in range(5):
            for i in range(4):
                r = consumer(s, ck, {"authentication_code": f"GUESS-{cycle}-{i}"}, "127.0.0.2")
                checked += r.status == 401
            consumer(s, ck, {"authentication_code": "MINE"}, "127.0.0.2")
        print(f"  wrong codes checked in 5 cycles of 4 guesses and one valid code: {checked}")
        check(checked <= 5, f"at most lockout_threshold checked, not {checked}")
    finally:
        s.cleanup()


def sec_pass_code_guesses_add_up():
    """Guesses at one identifier's pass code through two consumer keys of
    the organisation are one count."""
    s = server("pc-keys")
    try:
        k1 = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        k2 = s.ctl("consumer-key", "add", "ACME", "kiosk", "--unit", "HQ").stdout.strip()
        s.ctl("access-token", "add", "ACME", "--contact", "C-1", "--identifier", "card",
              input="4321\n")
        seen = [consumer(s, k, {"identifier": "card", "pass_code": f"{i}"}, "127.0.0.2").status
                for i, k in enumerate((k1, k2, k1, k2, k1, k2))]
        eq(seen, [401] * 5 + [429], "five guesses in all, whichever key")
        eq(consumer(s, k1, {"identifier": "card", "pass_code": "4321"}, "127.0.0.2").status,
           429, "the identifier is locked for that address")
    finally:
        s.cleanup()


def counters_now(s):
    """The failed-attempt counters as stored, to the byte: LMDB's
    counters file, or every row of PostgreSQL's attempts table with its
    row version (xmin: an update makes a new one)."""
    if s.pg is None:
        files = sorted(f for f in os.listdir(s.db)
                       if f.startswith("attempts") and f.endswith(".mdb"))
        check(len(files) == 1, f"one counters file: {files}")
        with open(os.path.join(s.db, files[0]), "rb") as f:
            return f.read()
    return s.pg.psql(s.pg_db, "SELECT key, xmin, window_end, count, subject"
                     " FROM attempts ORDER BY key")


def key_token(s, key, src):
    return s.post("/authentication/web_api_key/token",
                  headers={"Authorization": basic(key)}, source=src)


def sec_valid_keys_and_codes_write_nothing():
    """A counter written on every success is a write per request for a
    flood of valid keys to queue on: a Web API key's or an authentication
    code's token writes nothing to the counters (after the first success
    from an address, which trusts it), while wrong keys and codes are
    still counted and held at the limit, and 40 wrong codes at once with
    the right one among them still check at most lockout_threshold."""
    s = server("writes-nothing", procs=8)
    try:
        key = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        s.add_code("ACME", "C-1", "CODE-1")
        code = {"authentication_code": "CODE-1"}
        eq(key_token(s, key, "127.0.0.2").status, 200, "the key's first token")
        eq(consumer(s, ck, code, "127.0.0.2").status, 200, "the code's first token")
        before = counters_now(s)
        seen = statuses(parallel(40, lambda i: key_token(s, key, "127.0.0.2") if i % 2
                                 else consumer(s, ck, code, "127.0.0.2")))
        eq(seen, {200: 40}, "valid keys and codes")
        check(counters_now(s) == before, "the counters as they were, to the byte")
        # A wrong key is counted after its lookup, and held at the limit;
        # wrong keys of all kinds from one address, at the address's.
        seen = [key_token(s, "0" * 32, "127.0.0.3").status for i in range(7)]
        eq(seen, [401] * 5 + [429] * 2, "one wrong key again and again")
        check(counters_now(s) != before, "wrong keys counted")
        seen = [key_token(s, f"{i:032x}", "127.0.0.4").status for i in range(52)]
        eq(seen, [401] * 50 + [429] * 2, "52 wrong keys from one address")
        eq(key_token(s, key, "127.0.0.4").status, 429, "there, the right key waits too")
        eq(key_token(s, key, "127.0.0.2").status, 200, "the key where it is trusted")
        # Codes are decided in turn: the right one sent with 39 wrong
        # ones from one address gets no more tries than the limit.
        rs = parallel(40, lambda i: consumer(
            s, ck, code if i == 20 else {"authentication_code": f"WRONG-{i}"}, "127.0.0.5"))
        c = statuses(rs)
        print(f"  39 wrong codes and the right one at once: {c}")
        check(set(c) <= {200, 401, 429} and 1 <= c.get(401, 0) <= 5,
              f"at most lockout_threshold wrong codes checked: {c}")
    finally:
        s.cleanup()


def sec_code_lock_per_address():
    """On PostgreSQL a code is decided holding a lock (so that guesses are
    answered in turn): the client address's, not the application key's,
    which every user of the app shares and anyone can send.  A session
    holding the key's lock and one address's (a responder stuck mid-decision
    there, or an attacker's flood from it) delays code logins from that
    address only."""
    import hashlib
    s = server("code-lock")
    p = None
    try:
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        s.add_code("ACME", "C-1", "CODE-1")
        code = {"authentication_code": "CODE-1"}

        def lock_number(tag, name):
            d = hashlib.sha256(tag + b"\0" + name.encode()).digest()
            return int.from_bytes(d[:8], "big", signed=True)
        key_id = hashlib.sha256(ck.encode()).hexdigest().upper()[:16]
        p = subprocess.Popen(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1",
                              s.pg.conninfo(s.pg_db)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        p.stdin.write(f"BEGIN; SELECT pg_advisory_xact_lock({lock_number(b'O', key_id)});"
                      f" SELECT pg_advisory_xact_lock({lock_number(b'N', '127.0.0.5')});"
                      " SELECT 'locked';\n")
        p.stdin.flush()
        deadline = time.time() + 10
        line = ""
        while "locked" not in line and time.time() < deadline:
            line = p.stdout.readline()
        check("locked" in line, "the locks taken")
        eq(consumer(s, ck, code, "127.0.0.6").status, 200, "another address, the same key")
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", consumer(s, ck, code,
                                                                         "127.0.0.5")))
        t.start()
        t.join(1.0)
        check(t.is_alive(), "the held address waits for its lock")
        p.stdin.write("COMMIT;\n")
        p.stdin.close()
        p.wait(10)
        t.join(10)
        eq(out["r"].status, 200, "then is answered")
    finally:
        if p is not None and p.poll() is None:
            p.kill()
        s.cleanup()


def sec_every_lock_listed_and_cleared():
    """Every kind of lock shows in lock list and lock clear ends it: users,
    Web API keys, consumer keys (and their codes), access tokens, addresses."""
    s = server("locks")
    try:
        import hashlib
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        s.ctl("access-token", "add", "ACME", "--contact", "C-1", "--identifier", "card",
              input="4321\n")
        s.add_code("ACME", "C-1", "CODE-1")
        badkey = "F" * 32
        kid = hashlib.sha256(badkey.encode()).hexdigest().upper()[:16]
        ckid = hashlib.sha256(ck.encode()).hexdigest().upper()[:16]
        attempts = {
            "user": lambda: login(s, "wrong", "127.0.0.2"),
            "apikey": lambda: s.post("/authentication/web_api_key/token",
                                     headers={"Authorization": basic(badkey)}, source="127.0.0.3"),
            "consumer-key": lambda: consumer(s, ck, {"authentication_code": "WRONG"}, "127.0.0.4"),
            "access-token": lambda: consumer(s, ck, {"identifier": "card", "pass_code": "0"},
                                             "127.0.0.5"),
        }
        clear = {"user": ["user", "ACME", "alice"], "apikey": ["apikey", kid.lower()],
                 "consumer-key": ["consumer-key", ckid], "access-token": ["access-token", "ACME",
                                                                         "card"]}
        rows = {"user": ["user", "ACME", "alice", "127.0.0.2"],
                "apikey": ["apikey", "-", kid, "127.0.0.3"],
                "consumer-key": ["code", "-", ckid, "127.0.0.4"],
                "access-token": ["access-token", "ACME", "card", "127.0.0.5"]}
        for kind, attempt in attempts.items():
            seen = [attempt().status for _ in range(6)]
            eq(seen, [401] * 5 + [429], f"{kind}: locked after 5")
            locks = [ln.split("\t")[:4] for ln in s.ctl("lock", "list").stdout.splitlines()]
            check(rows[kind] in locks, f"{kind}: lock list shows {rows[kind]}: {locks}")
            out = s.ctl("lock", "clear", *clear[kind]).stdout
            check(out.startswith("cleared ") and out.split()[1] != "0", out)
            eq(attempt().status, 401, f"{kind}: checked again after lock clear")
        # An address's own lock: 50 accounts' failures from one address.
        for i in range(50):
            eq(login(s, "x", "127.0.0.9", user=f"u{i}").status, 401, "a failure")
        eq(login(s, "alice-pw", "127.0.0.9").status, 429, "the address is locked")
        check(["address", "-", "-", "127.0.0.9"] in
              [ln.split("\t")[:4] for ln in s.ctl("lock", "list").stdout.splitlines()],
              "lock list shows the address")
        s.ctl("lock", "clear", "address", "127.0.0.9")
        eq(login(s, "alice-pw", "127.0.0.9").status, 200, "after lock clear address")
        eq(s.ctl("lock", "list").stdout, "", "no lock left")
        # A name chosen to forge lock list lines or drive the terminal.
        evil = "evil\x1b[31m\nuser\tACME\tbob\t*\t50"
        for _ in range(5):
            login(s, "x", "127.0.0.10", user=evil)
        out = s.ctl("lock", "list").stdout
        eq(len(out.splitlines()), 1, f"one lock, one line: {out!r}")
        eq(len(out.split("\t")), 6, f"six columns: {out!r}")
        check("\x1b" not in out, "no escape sequence reaches the terminal")
    finally:
        s.cleanup()


# The README's bound on what failed attempts keep: per client address and
# window, at most 2 * lockout_account_threshold + 1 counters, each at most
# this many bytes of the counters file (record, index entry, page slack).
BYTES_PER_COUNTER = 256


def flood(s, total, addresses, threads=8):
    """total failed logins with random user names, spread over addresses;
    returns the statuses seen."""
    seen = {}
    lock = threading.Lock()

    def worker(w):
        rnd = random.Random(w)
        for i in range(w, total, threads):
            name = "".join(rnd.choice(string.ascii_lowercase) for _ in range(12))
            r = login(s, "x", f"127.0.{10 + i % addresses // 250}.{1 + i % addresses % 250}",
                      user=name)
            with lock:
                seen[r.status] = seen.get(r.status, 0) + 1
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(600)
    return seen


def sec_failures_cost_bounded():
    """Random user names from many addresses: the counters file stays
    within the README's bound, the store itself is not written, and
    releases work throughout."""
    total, addresses = 10000, 100
    s = server("flood", procs=4)
    try:
        key = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        data = s.dump(s.DATA_DBS)
        seen = flood(s, total, addresses)
        print(f"  {total} failures with random names from {addresses} addresses: {seen}")
        eq(sum(seen.values()), total, "every request answered")
        check(set(seen) <= {401, 429}, f"only 401 and 429: {seen}")
        if s.pg is not None:
            # A row per counter: at most 50 failures per address, each
            # naming at most two accounts, and the address's own.
            rows = int(s.pg.psql(s.pg_db, "SELECT count(*) FROM attempts"))
            bound = addresses * (2 * 50 + 1)
            print(f"  attempts table: {rows} rows; the bound: {bound}")
            check(rows <= bound, f"{rows} rows > {bound}")
        else:
            r = subprocess.run(["mdb_stat", "-n", "-e", s.counters_file()], capture_output=True,
                               text=True)
            m = re.search(r"Number of pages used: (\d+)", r.stdout)
            check(m, f"mdb_stat: {r.stdout}")
            used = int(m.group(1)) * 4096
            bound = addresses * (2 * 50 + 1) * BYTES_PER_COUNTER
            print(f"  counters file: {used} bytes in use; the README's bound: {bound}")
            check(used <= bound, f"{used} bytes > {bound}")
        check(s.dump(s.DATA_DBS) == data, "failed attempts wrote to the store")
        tok = s.key_token(key)
        eq(s.post("/authentication/token/release", {"token": tok}).status, 200, "release")
        eq(check_status(s, tok), (401, "TOKEN_RELEASED"), "released")
    finally:
        s.cleanup()


# ---- revocation of issued tokens -----------------------------------------

def sec_disable_refuses_issued_tokens():
    s = server("rev-disable")
    try:
        key = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        toks = [s.login_token("alice", "alice-pw"), s.key_token(key)]
        s.ctl("user", "disable", "ACME", "alice")
        for t in toks:
            eq(check_status(s, t), (401, "TOKEN_RELEASED"), "refused once disabled")
        s.ctl("user", "enable", "ACME", "alice")
        for t in toks:
            eq(check_status(s, t), (401, "TOKEN_RELEASED"), "and after enable too")
        eq(check_status(s, s.login_token("alice", "alice-pw")), (200, "OK"), "a new one works")
        v = s.verify(toks[0])
        check(v.returncode == 1 and "revoked" in v.stderr, f"crmauthctl agrees: {v.stderr}")
    finally:
        s.cleanup()


def sec_delete_refuses_issued_tokens():
    s = server("rev-del")
    try:
        tok = s.login_token("alice", "alice-pw")
        s.ctl("user", "del", "ACME", "alice")
        eq(check_status(s, tok), (401, "TOKEN_RELEASED"), "refused once deleted")
        # Someone else under the same name later is not the old alice.
        time.sleep(max(0, jwt_parts(tok)[1]["iat"] + 1 - time.time()))
        s.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="new-pw\n")
        eq(check_status(s, tok), (401, "TOKEN_RELEASED"), "a new alice does not revive it")
        eq(check_status(s, s.login_token("alice", "new-pw")), (200, "OK"), "the new alice's")
    finally:
        s.cleanup()


def sec_logout_refuses_issued_tokens():
    s = server("rev-logout")
    try:
        s.ctl("user", "add", "ACME", "bob", "--unit", "HQ", input="bob-pw\n")
        mine = [s.login_token("alice", "alice-pw") for _ in range(3)]
        bobs = s.login_token("bob", "bob-pw")
        s.ctl("user", "logout", "ACME", "alice")
        for t in mine:
            eq(check_status(s, t), (401, "TOKEN_RELEASED"), "every session ended")
        eq(check_status(s, bobs), (200, "OK"), "another user's untouched")
        # At once, in the same second: the new token is good, not dead on
        # arrival.
        fresh = s.login_token("alice", "alice-pw")
        eq(check_status(s, fresh), (200, "OK"), "a login right after works")
    finally:
        s.cleanup()


def sec_apikey_revoke_refuses_user_tokens():
    s = server("rev-apikey")
    try:
        s.ctl("user", "add", "ACME", "bob", "--unit", "HQ", input="bob-pw\n")
        key = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        other = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        bobkey = s.ctl("apikey", "add", "ACME", "bob").stdout.strip()
        toks = [s.key_token(key), s.key_token(other), s.login_token("alice", "alice-pw")]
        bobs = s.key_token(bobkey)
        ids = [ln.split("\t")[2] for ln in s.ctl("apikey", "list").stdout.splitlines()]
        import hashlib
        kid = hashlib.sha256(key.encode()).hexdigest().upper()[:16]
        check(kid in ids, "apikey list prints the id")
        s.ctl("apikey", "revoke", kid)
        for t in toks:
            eq(check_status(s, t), (401, "TOKEN_RELEASED"),
               "every token of the user: a token does not say which key made it")
        eq(check_status(s, bobs), (200, "OK"), "another user's untouched")
        eq(s.post("/authentication/web_api_key/token",
                  headers={"Authorization": basic(key)}).status, 401, "the key is dead")
        eq(check_status(s, s.key_token(other)), (200, "OK"), "the user's other key works")
    finally:
        s.cleanup()


def sec_consumer_key_revoke_refuses_app_tokens():
    s = server("rev-consumer")
    try:
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        ck2 = s.ctl("consumer-key", "add", "ACME", "kiosk", "--unit", "HQ").stdout.strip()
        s.add_code("ACME", "C-1", "CODE-1")
        tok = consumer(s, ck, {"authentication_code": "CODE-1"}).data["token"]
        kiosk = consumer(s, ck2, {"authentication_code": "CODE-1"}).data["token"]
        # A user named like the application is someone else.
        s.ctl("user", "add", "ACME", "shop", "--unit", "HQ", input="shop-pw\n")
        user_shop = s.login_token("shop", "shop-pw")
        s.ctl("consumer-key", "revoke", input=ck + "\n")
        eq(check_status(s, tok), (401, "TOKEN_RELEASED"), "the application's tokens")
        eq(check_status(s, kiosk), (200, "OK"), "another application's untouched")
        eq(check_status(s, user_shop), (200, "OK"), "a user of the same name untouched")
    finally:
        s.cleanup()


# A check of a secret that takes seconds (argon2id over 256 MiB, 16
# passes): a revocation can commit while a request that read the
# credential before it is still checking the secret.
SLOW_ARGON2 = "argon2_memory_kib = 262144\nargon2_iterations = 16\n"


def slow_conf(s):
    """The server's configuration at SLOW_ARGON2: crmauthctl -c it makes
    hashes whose verify takes seconds (the server keeps its own cost)."""
    path = os.path.join(s.dir, "slow.conf")
    with open(s.conf) as f:
        text = f.read()
    check(ARGON2 in text, "the test's argon2 lines are in the configuration")
    with open(path, "w") as f:
        f.write(text.replace(ARGON2, SLOW_ARGON2))
    os.chmod(path, 0o644)
    return path


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def revoked_in_flight(s, ask, revoke, then=None):
    """ask() in a thread; once a responder is checking the secret (its
    memory past 64 MiB: argon2 after the credential was read), revoke();
    then then() (e.g. enable again).  The token the request got, if any,
    must be refused: it was asked for before the revocation."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", ask()))
    t.start()
    try:
        wait_for(lambda: any(rss_kib(p) > 65536 for p in s.responder_pids()), 30,
                 "a responder in the slow secret check")
        revoke()
    finally:
        t.join(60)
    r = out["r"]
    print(f"  answered {r.status} {r.code}")
    if then is not None:
        then()
    if r.status == 200:
        tok = r.data["token"]
        eq(check_status(s, tok), (401, "TOKEN_RELEASED"),
           "a token asked for before the revocation is refused after it")
    else:
        check(r.status in (401, 503), f"refused or try again: {r.status} {r.body!r}")
    return r


def sec_revoked_during_login():
    """user logout, user disable (then enable), and a revocation of the
    user's Web API key, each committed while a login of the user is
    checking the password: no token from that login works afterwards."""
    s = server("rev-inflight")
    try:
        slow = slow_conf(s)
        cases = (
            ("logout", lambda: s.ctl("user", "logout", "ACME", "u1"), None),
            ("disable", lambda: s.ctl("user", "disable", "ACME", "u2"),
             lambda: s.ctl("user", "enable", "ACME", "u2")),
            ("apikey revoke", lambda: s.ctl("apikey", "revoke", input=keys["u3"] + "\n"),
             None),
            # In the second the user was added, a login waits for the
            # next second and reads the user again: the logout between
            # the two reads still ends it.
            ("logout, login in the second of user add",
             lambda: s.ctl("user", "logout", "ACME", "u4"), None))
        keys = {}
        for i, (what, revoke, then) in enumerate(cases, 1):
            u = f"u{i}"
            s.ctl("user", "add", "ACME", u, "--unit", "HQ", input=f"{u}-pw\n", conf=slow)
            added = int(time.time())
            keys[u] = s.ctl("apikey", "add", "ACME", u).stdout.strip()
            if i < 4:
                wait_for(lambda: time.time() >= added + 1, 5, "the next second")
            print(f"  {what}:")
            revoked_in_flight(s, lambda: login(s, f"{u}-pw", user=u), revoke, then)
            # And the user's next token, asked for afterwards, works
            # (the password was hashed again at the server's cost).
            if what != "disable":
                eq(check_status(s, s.login_token(u, f"{u}-pw")), (200, "OK"),
                   f"after {what}, a new login works")
        s.ctl("user", "enable", "ACME", "u2")
        eq(check_status(s, s.login_token("u2", "u2-pw")), (200, "OK"), "enabled again: works")
    finally:
        s.cleanup()


def sec_consumer_revoked_during_pass_code():
    """consumer-key revoke committed while a pass code is being checked:
    the application's token from that request is refused."""
    s = server("rev-inflight-pc")
    try:
        slow = slow_conf(s)
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        s.ctl("access-token", "add", "ACME", "--contact", "C-1", "--identifier", "card",
              input="4321\n", conf=slow)
        r = revoked_in_flight(
            s, lambda: consumer(s, ck, {"identifier": "card", "pass_code": "4321"}),
            lambda: s.ctl("consumer-key", "revoke", input=ck + "\n"))
        eq(r.status, 200, "the pass code was right when it was read")
        eq(consumer(s, ck, {"identifier": "card", "pass_code": "4321"}).status, 401,
           "the key is dead afterwards")
    finally:
        s.cleanup()


def sec_key_retire():
    s = server("rev-retire")
    try:
        tok = s.login_token("alice", "alice-pw")
        kid = jwt_parts(tok)[0]["kid"]
        out = s.ctl("key", "retire", kid).stdout
        check(f"{kid} is retired" in out, out)
        eq(check_status(s, tok), (401, "INVALID_TOKEN"), "the key verifies nothing")
        new = s.login_token("alice", "alice-pw")
        check(jwt_parts(new)[0]["kid"] != kid, "a new current key signs")
        eq(check_status(s, new), (200, "OK"), "its tokens work")
        eq(s.post("/authentication/token/release", {"token": tok}).code, "INVALID_TOKEN",
           "release refuses it too")
    finally:
        s.cleanup()


def sec_key_rotate_and_retire_at_once():
    """Two administrators at once, ten rounds: key rotate and key retire
    of the current key both succeed, and the retired key verifies
    nothing, whichever ran first."""
    s = server("rotate-retire")
    try:
        ctl = [os.path.join(s.sbindir, "crmauthctl"), "-c", s.conf]
        for i in range(10):
            tok = s.login_token("alice", "alice-pw")
            kid = jwt_parts(tok)[0]["kid"]
            procs = [subprocess.Popen(ctl + args, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      **crmtest.user_kw(s.user))
                     for args in (["key", "rotate"], ["key", "retire", kid])]
            outs = [p.communicate(timeout=60) for p in procs]
            eq([p.returncode for p in procs], [0, 0], f"round {i}: both done: {outs}")
            check(kid not in s.ctl("key", "list").stdout, f"round {i}: {kid} gone")
            eq(check_status(s, tok), (401, "INVALID_TOKEN"), f"round {i}: its token")
        eq(check_status(s, s.login_token("alice", "alice-pw")), (200, "OK"), "a new token")
    finally:
        s.cleanup()


def sec_codes_not_guessable_from_a_dump():
    """An attacker with a dump of the store (pg_dump, a standby, an LMDB
    backup) and a list of short codes: a code is kept keyed with
    wrap.key, which is not in the store, so hashing candidates finds
    nothing; the code still works.  Codes kept by their plain SHA-256
    before (an earlier version; on LMDB, before a wrap.key was there) keep
    working, a keyed record wins over a plain one of the same code, and
    crmauthctl init keys them all.  On LMDB the keyed codes survive an
    export and an import into a store given the same wrap.key."""
    import hashlib
    s = Lighttpd("codes-at-rest", user=RUN_USER, lockout=LOCKOUT, argon2=ARGON2)
    s2 = None
    try:
        s.start()
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()

        def legacy(code, contact):
            """A code kept by its plain SHA-256, as before."""
            if s.pg is None:
                s.add_code("ACME", contact, code)
                return
            plain = hashlib.sha256(code.encode()).hexdigest().upper()
            s.pg.psql(s.pg_db, "INSERT INTO access_tokens VALUES "
                      f"('ACME', 'C', '{plain}', '{contact}', '', '', 1700000000)")
        legacy("5678", "C-2")
        legacy("9999", "C-3")
        if s.pg is None:
            # LMDB keys codes once its db_path has a wrap.key (a store
            # moved from PostgreSQL brings one; an operator may make
            # one): the running responders take it up.
            wrap = os.path.join(s.db, "wrap.key")
            with open(wrap, "wb") as f:
                f.write(os.urandom(32))
            os.chmod(wrap, 0o600)
            shutil.chown(wrap, RUN_USER, RUN_USER)
        s.add_code("ACME", "C-1", "1234")

        def guessable(code):
            """Would hashing the candidate code find it in the dump?"""
            d = hashlib.sha256(code.encode()).digest()
            lmdb_id = hashlib.sha256(b"C" + b"ACME\0" + d).hexdigest()
            dump = s.raw_dump()
            return any(f.encode() in dump for f in (d.hex(), d.hex().upper(), lmdb_id))

        def contact(code, srv=s):
            r = consumer(srv, ck, {"authentication_code": code})
            eq(r.status, 200, f"code {code}")
            return jwt_parts(r.data["token"])[1]["cii"]
        check(not guessable("1234"), "a code added now is not in the dump by its SHA-256")
        eq(contact("1234"), "C-1", "and it works")
        eq(consumer(s, ck, {"authentication_code": "1235"}).status, 401, "another does not")
        check(guessable("5678") and guessable("9999"), "the old ones are there as before")
        eq(contact("5678"), "C-2", "an old code keeps working")
        if s.pg is not None:
            check(not guessable("5678"), "keyed once used: no longer in the dump")
            # The same code both ways (a plain row left beside a keyed
            # one): the keyed record is the one used.
            legacy("1234", "OLD")
            eq(contact("1234"), "C-1", "the keyed record wins")
            # Exported so, both ways, and imported where the same
            # wrap.key is: the keyed record wins there too.
            out = os.path.join(s.db, "both.jsonl")
            s.ctl("export", out)
            s2 = Lighttpd("codes-both", user=RUN_USER, lockout=LOCKOUT, argon2=ARGON2,
                          store="postgresql", init=False)
            os.makedirs(s2.db, exist_ok=True)
            shutil.copy(os.path.join(s.db, "wrap.key"), os.path.join(s2.db, "wrap.key"))
            for f in (s2.db, os.path.join(s2.db, "wrap.key")):
                shutil.chown(f, RUN_USER, RUN_USER)
            s2.ctl("init")
            s2.ctl("import", out)
            s2.start()
            eq(contact("1234", s2), "C-1", "imported both ways: the keyed record")
            eq(s2.pg.psql(s2.pg_db, "SELECT count(*) FROM access_tokens WHERE lookup NOT "
                          "LIKE 'k1:%' AND kind = 'C'").strip(), "0", "every code keyed")
        s.ctl("init")
        for code in ("1234", "5678", "9999"):
            check(not guessable(code), f"after init, {code} is keyed")
        eq([contact(c) for c in ("1234", "5678", "9999")], ["C-1", "C-2", "C-3"],
           "every code works keyed, with its own contact")
        if s.pg is None:
            # A wrap.key there that cannot be read (a copy cut short):
            # no code is added plain, no export leaves the key unnamed;
            # the responders log it and go on.
            good = open(wrap, "rb").read()
            with open(wrap, "wb") as f:
                f.write(good[:31])
            r = s.ctl("access-token", "add", "ACME", "--contact", "C-4",
                      "--authentication-code", input="4444\n", check=False)
            check(r.returncode == 1 and "not a key of 32 bytes" in r.stderr,
                  f"no code added beside a bad wrap.key: {r.stderr}")
            r = s.ctl("export", os.path.join(s.db, "bad.jsonl"), check=False)
            check(r.returncode == 1 and "not a key of 32 bytes" in r.stderr,
                  f"no export: {r.stderr}")
            # From a new address each time: the 401s are counted.
            srcs = (f"127.0.1.{i}" for i in range(1, 250))
            wait_for(lambda: consumer(s, ck, {"authentication_code": "1234"},
                                      next(srcs)).status == 401, 10,
                     "keyed codes not found meanwhile (the file looked at each second)",
                     interval=0.2)
            wait_for(lambda: "not a key of 32 bytes" in s.error_log(), 10, "it is logged")
            with open(wrap, "wb") as f:
                f.write(good)
            wait_for(lambda: consumer(s, ck, {"authentication_code": "1234"},
                                      next(srcs)).status == 200, 10,
                     "the file whole again: taken up", interval=0.2)
            out = os.path.join(s.db, "codes.jsonl")
            s.ctl("export", out)
            eq(open(out).read().count('"code_keyed"'), 3, "exported keyed")
            s2 = Lighttpd("codes-moved", user=RUN_USER, lockout=LOCKOUT, argon2=ARGON2)
            shutil.copy(wrap, os.path.join(s2.db, "wrap.key"))
            shutil.chown(os.path.join(s2.db, "wrap.key"), RUN_USER, RUN_USER)
            inp = os.path.join(s2.db, "in.jsonl")
            shutil.copy(out, inp)
            shutil.chown(inp, RUN_USER, RUN_USER)
            s2.ctl("import", inp)
            s2.start()
            eq([contact(c, s2) for c in ("1234", "5678", "9999")], ["C-1", "C-2", "C-3"],
               "exported and imported with the same wrap.key, every code works")
    finally:
        s.cleanup()
        if s2 is not None:
            s2.cleanup()


def sec_forged_long_lived_token():
    """With a leaked key, a token forged to live ten years is refused."""
    s = server("rev-long")
    try:
        tok = s.login_token("alice", "alice-pw")
        kid, secret = s.ctl("key", "export").stdout.split()
        now = int(time.time())
        claims = dict(jwt_parts(tok)[1], iat=now, exp=now + 10 * 365 * 86400)
        forged = sign({"typ": "JWT", "alg": "HS256", "kid": kid}, claims, b64url_decode(secret))
        eq(check_status(s, forged), (401, "INVALID_TOKEN"), "exp - iat > token_ttl")
        # Issued "in the future", to outlive a logout: refused too.
        later = now + 10 * 365 * 86400
        claims = dict(claims, iat=later, exp=later + 7200)
        future = sign({"typ": "JWT", "alg": "HS256", "kid": kid}, claims, b64url_decode(secret))
        eq(check_status(s, future), (401, "INVALID_TOKEN"), "iat in the future")
        claims = dict(claims, iat=now, exp=now + 7200)
        fine = sign({"typ": "JWT", "alg": "HS256", "kid": kid}, claims, b64url_decode(secret))
        eq(check_status(s, fine), (200, "OK"), "while one of the usual length passes")
    finally:
        s.cleanup()


def sec_expired_key_verifies_nothing():
    """A rotated key past its verifies-until time verifies nothing at once,
    with no write to prune it: a leaked old key cannot sign new tokens."""
    s = server("rev-oldkey", extra="token_ttl = 3\n")
    try:
        kid, secret = s.ctl("key", "export").stdout.split()
        s.ctl("key", "rotate")
        until = time.time() + 3
        time.sleep(max(0, until - time.time()) + 1.1)
        eq(len(s.ctl("key", "list").stdout.splitlines()), 2, "not yet deleted by a write")
        now = int(time.time())
        claims = {"exp": now + 3, "iat": now, "jti": "0" * 32, "org": "ACME", "oun": "HQ",
                  "usr": "alice"}
        forged = sign({"typ": "JWT", "alg": "HS256", "kid": kid}, claims, b64url_decode(secret))
        eq(check_status(s, forged), (401, "INVALID_TOKEN"), "signed by an expired key")
    finally:
        s.cleanup()


# ---- the admin tool ----------------------------------------------------------

def waiting_on_stdin(pid):
    """The process is blocked reading its standard input (read(0, ...))."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
        return fields[:2] == ["0", "0x0"]
    except (FileNotFoundError, PermissionError):
        return False


def sec_passwd_disable_interleaving():
    """user passwd waiting at its prompt, user disable meanwhile, then the
    password typed: the user stays disabled."""
    s = server("interleave")
    try:
        cmd = [os.path.join(s.sbindir, "crmauthctl"), "-c", s.conf, "user", "passwd", "ACME",
               "alice"]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, **crmtest.user_kw(s.user))
        wait_for(lambda: waiting_on_stdin(p.pid), 20, "user passwd at its prompt")
        s.ctl("user", "disable", "ACME", "alice")
        out, err = p.communicate("new-pw\n", timeout=60)
        eq(p.returncode, 0, f"passwd: {err}")
        line = [ln for ln in s.ctl("user", "list").stdout.splitlines()
                if ln.startswith("ACME\talice\t")]
        eq(line[0].split("\t")[3], "disabled", "still disabled")
        eq(login(s, "new-pw").status, 401, "no login")
        s.ctl("user", "enable", "ACME", "alice")
        eq(login(s, "new-pw").status, 200, "the new password took")
    finally:
        s.cleanup()


def sec_restore_refused_while_open():
    """restore is refused under one live responder, and under a program
    using libcrmauth; with everything stopped it works."""
    s = server("restore-open", procs=1)
    try:
        backup = os.path.join(s.run, "backup.mdb")      # the web user may write there
        s.ctl("backup", backup)
        eq(s.get("/health").status, 200, "the responder has the store open")
        r = s.ctl("restore", backup, check=False)
        check(r.returncode == 1 and "is in use" in r.stderr, f"under a responder: {r.stderr}")
        s.stop()
        # As the caller: the build tree may be closed to the web user.
        lib = subprocess.Popen([VERIFY, "-c", s.conf, "-"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        try:
            lib.stdin.write("x.y.z\n")
            lib.stdin.flush()
            check(lib.stdout.readline().startswith("refused"), "libcrmauth has it open")
            r = s.ctl("restore", backup, check=False)
            check(r.returncode == 1 and "is in use" in r.stderr,
                  f"under libcrmauth: {r.stderr}")
        finally:
            lib.stdin.close()
            lib.wait(20)
        r = s.ctl("restore", backup, check=False)
        eq(r.returncode, 0, f"with nothing open: {r.stderr}")
    finally:
        s.cleanup()


def lock_holders(path):
    """(pid, kind, waiting) of the POSIX locks on path's inode
    (/proc/locks; waiting: blocked on a lock someone else holds)."""
    st = os.stat(path)
    ino = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    out = []
    with open("/proc/locks") as f:
        for line in f:
            w = line.split()
            waiting = w[1] == "->"
            if waiting:
                w = w[1:]
            if w[1] == "POSIX" and w[5] == ino:
                out.append((int(w[4]), w[3], waiting))
    return out


def sec_restore_cannot_race_swap():
    """A process that opens the store while restore swaps it waits, then
    sees the restored store, whole."""
    s = server("restore-race", procs=1)
    try:
        s.stop()
        s.ctl("user", "add", "ACME", "from-backup", "--unit", "HQ", input="pw\n")
        backup = os.path.join(s.run, "backup.mdb")      # the web user may write there
        s.ctl("backup", backup)
        s.ctl("user", "del", "ACME", "from-backup")
        # Many releases in the store being replaced, so that carrying them
        # into the restored copy keeps the lock a while.
        n, exp = 300000, int(time.time()) + 3600
        lines = ["VERSION=3", "format=bytevalue", "type=btree", "mapsize=1073741824",
                 "HEADER=END"]
        for i in range(n):
            lines += [f" {i:032x}", f" {exp:016x}"]
        subprocess.run(["mdb_load", "-s", "released", s.db], check=True, text=True,
                       input="\n".join(lines + ["DATA=END"]) + "\n")
        lock = os.path.join(s.db, "lock.mdb")
        cmd = [os.path.join(s.sbindir, "crmauthctl"), "-c", s.conf]
        restore = subprocess.Popen(cmd + ["restore", backup], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, **crmtest.user_kw(s.user))
        wait_for(lambda: (restore.pid, "WRITE", False) in lock_holders(lock), 30,
                 "restore to hold the store's lock")
        reader = subprocess.Popen(cmd + ["user", "list"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, **crmtest.user_kw(s.user))
        wait_for(lambda: any(p == reader.pid and waiting for p, _, waiting in lock_holders(lock))
                 or reader.poll() is not None, 30, "the reader to wait for the lock")
        check(restore.poll() is None, "restore still holds the lock (the test needs it to)")
        check(reader.poll() is None, "the reader opened the store during the swap")
        out, err = restore.communicate(timeout=120)
        eq(restore.returncode, 0, f"restore: {err}")
        out, err = reader.communicate(timeout=60)
        eq(reader.returncode, 0, f"the reader: {err}")
        check("ACME\tfrom-backup\t" in out, f"the reader saw the restored store: {out}")
        eq(s.released_count(), n, "the releases were carried over")
        s.start()
        eq(s.login_token("alice", "alice-pw").count("."), 2, "serving afterwards")
    finally:
        s.cleanup()


def sec_restore_keeps_revocations():
    """Restoring an older backup brings back no logout, revoked key,
    retired signing key or deleted user's token, and breaks no token
    issued since."""
    s = server("restore-keep")
    try:
        s.ctl("user", "add", "ACME", "mallory", "--unit", "HQ", input="m-pw\n")
        key = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        logged_out = s.login_token("alice", "alice-pw")
        old_kid = jwt_parts(logged_out)[0]["kid"]
        backup = os.path.join(s.run, "backup.mdb")
        s.ctl("backup", backup)
        # Since the backup: a logout, a key revoked, a signing key retired
        # after a leak, a user deleted.
        s.ctl("user", "logout", "ACME", "alice")
        s.ctl("apikey", "revoke", input=key + "\n")
        s.ctl("key", "retire", old_kid)
        mallorys = s.login_token("mallory", "m-pw")
        s.ctl("user", "del", "ACME", "mallory")
        since = s.login_token("alice", "alice-pw")
        s.stop()
        r = s.ctl("restore", backup, check=False)
        eq(r.returncode, 0, f"restore: {r.stderr}")
        s.start()
        eq(check_status(s, logged_out)[0], 401, "the logout holds")
        eq(s.post("/authentication/web_api_key/token",
                  headers={"Authorization": basic(key)}).status, 401, "the revoked key stays so")
        check(old_kid not in s.ctl("key", "list").stdout, "the retired key stays retired")
        eq(check_status(s, mallorys), (401, "TOKEN_RELEASED"),
           "mallory is back, but not mallory's old token")
        eq(check_status(s, since), (200, "OK"), "a token issued since still verifies")
        eq(login(s, "m-pw", user="mallory").status, 200, "mallory, from the backup, logs in")
    finally:
        s.cleanup()


def sec_backup_over_planted_files():
    """A 0644 temp file or a symlink planted where the backup goes: the
    backup is 0600 all the same, and no symlink is followed."""
    s = server("backup-plant")
    try:
        out = os.path.join(s.dir, "out")
        os.makedirs(out)
        if s.user:
            import shutil
            shutil.chown(out, s.user, s.user)
        victim = os.path.join(s.dir, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.chmod(victim, 0o666)
        target = os.path.join(out, "backup.mdb")
        with open(target + ".tmp", "w") as f:
            f.write("planted")
        os.chmod(target + ".tmp", 0o644)
        os.symlink(victim, target)
        s.ctl("backup", target)
        st = os.lstat(target)
        check(stat.S_ISREG(st.st_mode), "a regular file, not the symlink")
        eq(oct(st.st_mode & 0o777), "0o600", "mode")
        eq(open(victim).read(), "precious\n", "the symlink's target is untouched")
        # Over a planted 0644 regular file too.
        os.unlink(target)
        with open(target, "w") as f:
            f.write("old")
        os.chmod(target, 0o644)
        s.ctl("backup", target)
        eq(oct(os.stat(target).st_mode & 0o777), "0o600", "mode over a 0644 file")
        eq([n for n in os.listdir(out) if n.startswith("backup.mdb.")], ["backup.mdb.tmp"],
           "no temporary file left (the planted one is not ours)")
    finally:
        s.cleanup()


def sec_no_secret_on_command_line():
    """Every command that takes a secret refuses it as an argument."""
    s = server("argv")
    try:
        key = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        tok = s.key_token(key)
        data = s.dump(s.DATA_DBS)
        for args in (("access-token", "add", "ACME", "--contact", "C", "--authentication-code",
                      "CODE-9"),
                     ("token", "verify", tok),
                     ("apikey", "revoke", key),
                     ("consumer-key", "revoke", ck),
                     ("user", "add", "ACME", "eve", "pw", "--unit", "HQ")):
            r = s.ctl(*args, input="", check=False)
            eq(r.returncode, 2, f"{args[:2]} with a secret argument: {r.stderr}")
            check(not any(x in r.stderr for x in (key, ck, tok, "CODE-9")),
                  f"the secret is not repeated: {r.stderr}")
        check(s.dump(s.DATA_DBS) == data, "nothing was changed")
        eq(s.key_token(key).count("."), 2, "the key still works")
        # From standard input they are taken.
        eq(json.loads(s.verify(tok).stdout)["usr"], "alice", "token verify from stdin")
        s.add_code("ACME", "C", "CODE-9")
        eq(consumer(s, ck, {"authentication_code": "CODE-9"}).status, 200, "code from stdin")
        s.ctl("apikey", "revoke", input=key + "\n")
        eq(s.post("/authentication/web_api_key/token",
                  headers={"Authorization": basic(key)}).status, 401, "revoked from stdin")
    finally:
        s.cleanup()


# ---- argon2 costs ------------------------------------------------------------

def hash_params(s, org, name):
    """The m and t of the user's stored argon2id hash."""
    out = s.records("users")
    return re.findall(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=1\$", out)


def sec_rehash_on_login():
    """Users hashed at another cost than the configured one are hashed
    again, at the configured cost, when they next log in; so are pass
    codes."""
    s = server("rehash")
    try:
        old_conf = s.conf + ".old"
        with open(s.conf) as f, open(old_conf, "w") as g:
            g.write(re.sub(r"argon2_\w+ = \d+\n", "", f.read()) +
                    "argon2_memory_kib = 8192\nargon2_iterations = 2\n")
        os.chmod(old_conf, 0o644)
        s.ctl("user", "del", "ACME", "alice")
        s.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="alice-pw\n", conf=old_conf)
        eq(hash_params(s, "ACME", "alice"), [("8192", "2")], "made at the old cost")
        eq(login(s, "wrong").status, 401, "a wrong password changes nothing")
        eq(hash_params(s, "ACME", "alice"), [("8192", "2")], "still the old cost")
        eq(login(s, "alice-pw").status, 200, "login")
        eq(hash_params(s, "ACME", "alice"), [("4096", "1")], "now the configured cost")
        eq(login(s, "alice-pw").status, 200, "and the password still works")
        ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
        s.ctl("access-token", "add", "ACME", "--contact", "C-1", "--identifier", "card",
              input="4321\n", conf=old_conf)
        eq(consumer(s, ck, {"identifier": "card", "pass_code": "4321"}).status, 200, "pass code")
        out = s.records("access_tokens")
        eq(re.findall(r"m=(\d+),t=(\d+),p=1", out), [("4096", "1")], "pass code rehashed")
    finally:
        s.cleanup()


def sec_user_del_forgets_counters_and_trust():
    """Security: user del takes the user's failed-attempt counters and
    trusted addresses with it: a new user added later under the same name
    inherits neither the old one's near-lock nor the old one's trust."""
    s = Lighttpd("forget", procs=2, user=RUN_USER, argon2=ARGON2,
                 lockout="lockout_threshold = 5\nlockout_account_threshold = 8\n"
                         "lockout_window = 60\n").start()
    try:
        s.ctl("user", "add", "ACME", "mo", "--unit", "HQ", input="old-mo-pw\n")
        eq(login(s, "old-mo-pw", "127.0.0.20", user="mo").status, 200, "old mo, trusted here")
        for _ in range(4):
            eq(login(s, "wrong", "127.0.0.30", user="mo").status, 401, "old mo's failures")
        s.ctl("user", "del", "ACME", "mo")
        s.ctl("user", "add", "ACME", "mo", "--unit", "HQ", input="new-mo-pw\n")
        # The new mo has five tries from that address, not one.
        for i in range(4):
            eq(login(s, "wrong", "127.0.0.30", user="mo").status, 401,
               f"the new mo's failure {i + 1}: no inherited counter")
        for src in ("127.0.0.31", "127.0.0.32", "127.0.0.33", "127.0.0.34"):
            eq(login(s, "wrong", src, user="mo").status, 401, "strangers")
        # The account is held now (8); the old mo's address is not
        # trusted for the new mo.
        eq(login(s, "new-mo-pw", "127.0.0.20", user="mo").status, 429,
           "no inherited trust: the account's lock holds there too")
    finally:
        s.cleanup()


def sec_special_files_refused():
    """Security: a FIFO (which opens only when a writer comes) or a device
    named as a file to read is refused at once, never waited on:
    crmauthctl import, -c, restore (LMDB), and a wrap.key replaced by one
    (PostgreSQL); crmauthctl may be run as root."""
    s = server("special")
    fifo = os.path.join(s.run, "fifo")
    os.mkfifo(fifo, 0o666)
    try:
        cases = [(("import", fifo), fifo), (("import", "/dev/zero"), "/dev/zero")]
        if crmtest.STORE == "lmdb":
            cases.append((("restore", fifo), fifo))
        for args, path in cases:
            t0 = time.monotonic()
            r = s.ctl(*args, check=False)
            eq(r.returncode, 1, f"crmauthctl {' '.join(args)}: {r.stderr}")
            check(f"{path}: not a regular file" in r.stderr, r.stderr)
            check(time.monotonic() - t0 < 30, f"{args} answered at once")
        r = s.ctl("user", "list", conf=fifo, check=False)
        eq((r.returncode, r.stderr.strip()), (1, f"crmauthctl: {fifo}: not a regular file"),
           "-c FIFO")
        if crmtest.STORE == "postgresql":
            wrap = os.path.join(s.db, "wrap.key")
            owner = os.stat(wrap)
            os.rename(wrap, wrap + ".real")
            os.mkfifo(wrap, 0o600)
            os.chown(wrap, owner.st_uid, owner.st_gid)
            try:
                r = s.ctl("key", "list", check=False)
                eq(r.returncode, 1, f"key list over a FIFO wrap.key: {r.stderr}")
                check(f"{wrap}: not a regular file" in r.stderr, r.stderr)
            finally:
                os.unlink(wrap)
                os.rename(wrap + ".real", wrap)
        eq(s.get("/health").status, 200, "serving all along")
    finally:
        s.cleanup()


TESTS = [
    ("sec: 40 parallel wrong passwords, 8 FastCGI workers: at most 5 checked",
     sec_parallel_passwords_fastcgi),
    ("sec: 40 parallel wrong passwords as CGI: at most 5 checked", sec_parallel_passwords_cgi),
    ("sec: 40 parallel wrong pass codes: at most 5 checked", sec_parallel_pass_codes),
    ("sec: failures from 60 addresses never lock the owner's trusted address",
     sec_stranger_cannot_lock_owner),
    ("sec: an app's consumer key cannot block codes from other addresses",
     sec_app_key_cannot_block_codes),
    ("sec: a valid code does not reset the guessing of others' codes",
     sec_code_success_resets_nothing),
    ("sec: pass-code guesses through two consumer keys are one count",
     sec_pass_code_guesses_add_up),
    ("sec: valid keys and codes write nothing; wrong ones are counted and held",
     sec_valid_keys_and_codes_write_nothing),
    ("sec: a code waits for its client address's lock only, not its application key's",
     sec_code_lock_per_address),
    ("sec: every kind of lock is listed, and cleared by lock clear",
     sec_every_lock_listed_and_cleared),
    ("sec: 10,000 random-name failures: counters bounded, store untouched",
     sec_failures_cost_bounded),
    ("sec: user disable refuses tokens issued before, even after enable",
     sec_disable_refuses_issued_tokens),
    ("sec: user del refuses tokens issued before, even to a new namesake",
     sec_delete_refuses_issued_tokens),
    ("sec: user logout ends every session, not a login right after",
     sec_logout_refuses_issued_tokens),
    ("sec: apikey revoke refuses the user's tokens", sec_apikey_revoke_refuses_user_tokens),
    ("sec: consumer-key revoke refuses the application's tokens",
     sec_consumer_key_revoke_refuses_app_tokens),
    ("sec: logout, disable, apikey revoke during a login's password check: its token refused",
     sec_revoked_during_login),
    ("sec: consumer-key revoke during a pass-code check: its token refused",
     sec_consumer_revoked_during_pass_code),
    ("sec: authentication codes cannot be guessed from a dump; old ones keep working",
     sec_codes_not_guessable_from_a_dump),
    ("sec: key retire: the key verifies nothing at once", sec_key_retire),
    ("sec: key rotate and key retire at once: both done, the key retired",
     sec_key_rotate_and_retire_at_once),
    ("sec: a leaked key cannot mint a ten-year or a future token",
     sec_forged_long_lived_token),
    ("sec: an expired signing key verifies nothing, before any write",
     sec_expired_key_verifies_nothing),
    ("sec: user passwd at its prompt does not undo a user disable",
     sec_passwd_disable_interleaving),
    ("sec: restore is refused while a responder or libcrmauth has the store",
     sec_restore_refused_while_open),
    ("sec: a process opening the store during a restore waits, then sees it whole",
     sec_restore_cannot_race_swap),
    ("sec: a restore brings back no revoked token, key or signing key",
     sec_restore_keeps_revocations),
    ("sec: backup is 0600 over a planted temp file or a symlink", sec_backup_over_planted_files),
    ("sec: no secret is accepted on the command line", sec_no_secret_on_command_line),
    ("sec: a FIFO or device to read is refused, never waited on", sec_special_files_refused),
    ("sec: user del forgets the user's counters and trusted addresses",
     sec_user_del_forgets_counters_and_trust),
    ("sec: a login at another argon2 cost is rehashed at the configured one",
     sec_rehash_on_login),
]

# backup and restore are LMDB's (a PostgreSQL store: pg_dump, export/import).
LMDB_ONLY = (sec_restore_refused_while_open, sec_restore_cannot_race_swap,
             sec_restore_keeps_revocations, sec_backup_over_planted_files)
# LMDB decides a code in the counters file's one write transaction.
PG_ONLY = (sec_code_lock_per_address,)


def main():
    run = Runner("security")
    only = os.environ.get("SECURITY_ONLY")
    for name, fn in TESTS:
        if only and only not in name:
            continue
        if crmtest.STORE == "postgresql" and fn in LMDB_ONLY:
            print(f"-    {name}: LMDB only (a PostgreSQL store is backed up with pg_dump)")
            continue
        if crmtest.STORE != "postgresql" and fn in PG_ONLY:
            print(f"-    {name}: PostgreSQL only (LMDB has no lock to share)")
            continue
        run.run(name, fn)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
