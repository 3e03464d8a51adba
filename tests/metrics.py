"""GET metrics: the node's figures in the Prometheus text format, through
a real lighttpd with two responders.  A known mix of requests gives
exactly those counts, whichever responder answered each; promtool finds
nothing to say; an address outside metrics_allow gets the same 404 as an
unknown method; metrics = off counts nothing; a store outage shows; and
responders killed with SIGKILL lose nothing they counted."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crmtest import (Runner, Lighttpd, RUN_USER, basic, eq, check, expect,  # noqa: E402
                     wait_for)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')


def scrape(s, source="127.0.0.1"):
    r = s.get("/metrics", source=source)
    eq(r.status, 200, f"metrics from {source}: {r.body[:300]!r}")
    eq(r.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8",
       "Content-Type")
    return r.body.decode()


def parse(text):
    """{(name, labels text): value} of every sample."""
    out = {}
    for ln in text.splitlines():
        if ln.startswith("#") or not ln:
            continue
        m = SAMPLE.match(ln)
        check(m, f"a sample line: {ln!r}")
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def from_json(text):
    """crmauthctl stats --json as parse() gives a scrape."""
    out = {}
    for name, fam in json.loads(text).items():
        check(fam["type"] in ("counter", "gauge", "histogram") and fam["help"],
              f"{name}: type and help")
        for smp in fam["samples"]:
            labels = ",".join(f'{k}="{v}"' for k, v in smp["labels"].items())
            out[(smp["name"], labels)] = float(smp["value"])
    return out


def req(method, code, status):
    return ("crmauth_requests_total", f'method="{method}",code="{code}",status="{status}"')


TOKEN = "authentication/token"
KEY = "authentication/web_api_key/token"
CHECK = "authentication/token/check"
RELEASE = "authentication/token/release"


def login(s, pw, user="alice", source="127.0.0.1"):
    return s.post("/authentication/token",
                  {"username": user, "password": pw, "organisation": "ACME"}, source=source)


def t_counts():
    """A known mix, spread over two responders: exactly those counts."""
    s = Lighttpd("metrics", procs=2, conf_extra="metrics_allow = 127.0.0.1/32\n",
                 lockout="lockout_threshold = 3\n").start()
    try:
        s.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="pw\n")
        key = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        tokens = [expect(login(s, "pw"), 200, "OK").data["token"] for _ in range(3)]
        expect(login(s, "bad"), 401, "INVALID_CREDENTIALS")
        expect(login(s, "pw", "nobody"), 401, "INVALID_CREDENTIALS")
        for _ in range(2):
            s.key_token(key)
        expect(s.post("/authentication/web_api_key/token",
                      headers={"Authorization": basic("F" * 32)}), 401, "INVALID_CREDENTIALS")
        expect(s.post("/authentication/web_api_key/token"), 401, "INVALID_CREDENTIALS")
        expect(s.post("/authentication/token/release", {"token": tokens[0]}), 200, "OK")
        for t, want in ((tokens[1], "OK"), (tokens[0], "TOKEN_RELEASED"), ("x.y.z", "INVALID_TOKEN")):
            r = s.get("/authentication/token/check", headers={"Authorization": "Bearer " + t})
            eq(r.code, want, "check")
        eq(s.get("/no/such/method").status, 404, "unknown")
        eq(s.get("/health").status, 200, "health")
        # Held: three failures from one address, then the fourth and fifth.
        for i in range(5):
            login(s, f"guess{i}", source="127.0.0.9")
        text = scrape(s)
        got = parse(text)
        want = {
            req(TOKEN, 200, "OK"): 3,
            req(TOKEN, 401, "INVALID_CREDENTIALS"): 2 + 3,
            req(TOKEN, 429, "TOO_MANY_ATTEMPTS"): 2,
            req(KEY, 200, "OK"): 2,
            req(KEY, 401, "INVALID_CREDENTIALS"): 2,
            req(RELEASE, 200, "OK"): 1,
            req(CHECK, 200, "OK"): 1,
            req(CHECK, 401, "TOKEN_RELEASED"): 1,
            req(CHECK, 401, "INVALID_TOKEN"): 1,
            req("other", 404, "NOT_FOUND"): 1,
            req("health", 200, "OK"): 1,
            ("crmauth_tokens_issued_total", f'method="{TOKEN}"'): 3,
            ("crmauth_tokens_issued_total", f'method="{KEY}"'): 2,
            ("crmauth_auth_failures_total", f'method="{TOKEN}",reason="bad_password"'): 1 + 3,
            ("crmauth_auth_failures_total", f'method="{TOKEN}",reason="unknown_user"'): 1,
            ("crmauth_auth_failures_total", f'method="{KEY}",reason="unknown_key"'): 1,
            ("crmauth_auth_failures_total", f'method="{KEY}",reason="no_key"'): 1,
            ("crmauth_auth_holds_total", f'method="{TOKEN}"'): 2,
            ("crmauth_token_releases_total", ""): 1,
            ("crmauth_token_checks_total", 'result="OK"'): 1,
            ("crmauth_token_checks_total", 'result="TOKEN_RELEASED"'): 1,
            ("crmauth_token_checks_total", 'result="INVALID_TOKEN"'): 1,
            ("crmauth_store_up", ""): 1,
            ("crmauth_released_tokens", ""): 1,
            ("crmauth_build_info", f'version="{os.environ.get("PACKAGE_VERSION", "0.1.0")}",'
             'store="lmdb"'): 1,
        }
        for k, v in want.items():
            eq(got.get(k), v, f"{k[0]}{{{k[1]}}}")
        # Every other request and failure series is 0: nothing counted twice.
        for (name, labels), v in got.items():
            if name in ("crmauth_requests_total", "crmauth_auth_failures_total",
                        "crmauth_tokens_issued_total", "crmauth_auth_holds_total",
                        "crmauth_store_errors_total") and (name, labels) not in want:
                eq(v, 0, f"{name}{{{labels}}}")
        # The histogram: as many observations as requests, per method.
        eq(got[("crmauth_request_duration_seconds_count", f'method="{TOKEN}"')], 3 + 6 + 1,
           "password logins observed")
        eq(got[("crmauth_request_duration_seconds_bucket", f'method="{CHECK}",le="+Inf"')], 3,
           "checks observed")
        check(got[("crmauth_request_duration_seconds_sum", f'method="{TOKEN}"')] > 0, "sum")
        # Two responders ran; which answered what is lighttpd's choice.
        # (The sum over processes: tests/prometheus.py's CGI node, where
        # every request and scrape is a process of its own.)
        check(len(s.responder_pids()) == 2, "two responders")
        # promtool, Prometheus's own checker, finds nothing to say.
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        eq((r.returncode, r.stdout + r.stderr), (0, ""), "promtool check metrics")
        # The file is the size the README gives, with the store's modes.
        st = os.stat(os.path.join(s.db, "metrics"))
        eq((st.st_size, oct(st.st_mode & 0o777)), (8192, "0o600"), "the metrics file")
        # And a second scrape counts the first.
        got2 = parse(scrape(s))
        eq(got2[req("metrics", 200, "OK")], 1, "the first scrape, counted")
        stats_agree(s)
    finally:
        s.cleanup()


def stats_agree(s):
    """crmauthctl stats --json gives what a scrape gives, series for
    series (a scrape is counted after its answer: none in between); the
    terminal view shows the same counts."""
    js = from_json(s.ctl("stats", "--json").stdout)
    got = parse(scrape(s))
    age = ("crmauth_signing_key_age_seconds", "")
    check(abs(js.pop(age) - got.pop(age)) <= 2, "the key's age")
    eq(sorted(js), sorted(got), "the same series")
    for k, v in got.items():
        eq(js[k], v, f"stats --json {k[0]}{{{k[1]}}}")
    term = s.ctl("stats").stdout
    rows = re.findall(r"^  (\S+) +(\d{3}) +([A-Z_]+) +(\d+)$", term, re.M)
    # The terminal's requests table: every series that is not 0, and no
    # other (a scrape is counted after its answer: it shows the same).
    got = parse(scrape(s))
    want = sorted((m, c, st, str(int(v))) for (n, ls), v in got.items()
                  if n == "crmauth_requests_total" and v
                  for m, c, st in re.findall(r'method="(.*)",code="(.*)",status="(.*)"', ls))
    eq(sorted(rows), want, "the requests table")
    for line in ("crmauth_store_up                     1",
                 "crmauth_released_tokens              1",
                 "crmauth_store_errors_total: Requests the store failed, by kind of failure.\n"
                 "  (none)"):
        check(line in term, f"{line!r} in\n{term}")
    # The latency line of the password logins, from the same buckets:
    # count, mean in ms, and the first bounds half and 99% fell within.
    m = re.search(r"^  authentication/token +(\d+) +([0-9.]+) +(\S+) +(\S+)$", term, re.M)
    check(m, f"latency of the password logins in\n{term}")
    count = got[("crmauth_request_duration_seconds_count", f'method="{TOKEN}"')]
    mean = got[("crmauth_request_duration_seconds_sum", f'method="{TOKEN}"')] / count * 1000
    buckets = [(le, got[(n, ls)]) for (n, ls) in got if n.endswith("_bucket")
               and ls.startswith(f'method="{TOKEN}",')
               for le in re.findall(r'le="(.*)"', ls)]

    def within(pct):
        le = next(le for le, v in buckets if v * 100 >= count * pct)
        return le if le == "+Inf" else "%g" % (float(le) * 1000)
    eq((int(m.group(1)), m.group(3), m.group(4)), (int(count), within(50), within(99)),
       "the latency line: count and bounds")
    check(abs(float(m.group(2)) - mean) < 0.0011, f"mean {m.group(2)} ms, {mean} from the scrape")


def t_stats_edges():
    """crmauthctl stats says why it cannot show figures (metrics = off, no
    file yet, a FIFO, a truncated file, another layout) in one line and
    exit 1, never hangs or dies of SIGBUS; with the store down it shows
    the counts and crmauth_store_up 0."""
    s = Lighttpd("metrics-stats", procs=1).start()
    try:
        path = os.path.join(s.db, "metrics")
        r = s.ctl("stats", check=False)
        eq(r.returncode, 1, f"no file yet: {r.stderr}")
        check("nothing counted yet" in r.stderr, r.stderr)
        r = s.ctl("stats", "--yaml", check=False)
        eq(r.returncode, 2, f"unknown option: {r.stderr}")
        expect(s.get("/health"), 200, "OK")
        eq(from_json(s.ctl("stats", "--json").stdout)[req("health", 200, "OK")], 1, "counted")
        s.stop()
        # The store down (its data file gone): counts shown, store_up 0.
        data = os.path.join(s.db, "data.mdb")
        os.rename(data, data + ".away")
        r = s.ctl("stats", check=False)
        eq(r.returncode, 0, f"store down: {r.stderr}")
        check("crmauth_store_up                     0" in r.stdout, r.stdout)
        check("crmauth_released_tokens" not in r.stdout, "no store gauges while down")
        check(r.stderr.count("\n") == 1 and s.where() in r.stderr,
              f"one line naming the store: {r.stderr!r}")
        js = from_json(s.ctl("stats", "--json").stdout)
        eq((js[("crmauth_store_up", "")], js[req("health", 200, "OK")]), (0, 1), "json, down")
        os.rename(data + ".away", data)
        # Not a file of ours: one line, exit 1, at once.
        saved = path + ".saved"
        os.rename(path, saved)
        for what, make in (("a FIFO", lambda: os.mkfifo(path)),
                           ("a truncated file", lambda: (shutil.copy(saved, path),
                                                         os.truncate(path, 100))),
                           ("another layout", lambda: (shutil.copy(saved, path),
                                                       open(path, "r+b").write(b"NOTMETRC")))):
            make()
            r = s.ctl("stats", check=False)         # ctl's timeout: a hang fails
            eq(r.returncode, 1, f"{what}: {r.returncode} {r.stderr}")
            check(r.stderr.startswith(f"crmauthctl: {path}: ") and r.stderr.count("\n") == 1,
                  f"{what}: {r.stderr!r}")
            os.unlink(path)
        os.rename(saved, path)
        eq(from_json(s.ctl("stats", "--json").stdout)[req("health", 200, "OK")], 1,
           "the file back")
    finally:
        s.cleanup()
    s = Lighttpd("metrics-stats-off", procs=1, conf_extra="metrics = off\n").start()
    try:
        r = s.ctl("stats", check=False)
        eq(r.returncode, 1, "metrics = off")
        eq(r.stderr, "crmauthctl: metrics = off: responders count nothing\n", "said")
    finally:
        s.cleanup()


def t_not_allowed():
    """From outside metrics_allow, GET and POST metrics are the 404 of an
    unknown method, to the byte; nothing about the figures leaks."""
    s = Lighttpd("metrics-deny", procs=1, conf_extra="metrics_allow = 127.0.0.1/32\n").start()
    try:
        for method in ("GET", "POST"):
            r = s.request(method, "/metrics", source="127.0.0.2")
            u = s.request(method, "/no_such_method", source="127.0.0.2")
            eq((r.status, r.body), (u.status, u.body), f"{method} metrics from 127.0.0.2")
            eq({k: v for k, v in r.headers.items() if k != "date"},
               {k: v for k, v in u.headers.items() if k != "date"}, "the same headers")
            check(b"crmauth_" not in r.body, "no figure in the body")
        scrape(s, "127.0.0.1")
    finally:
        s.cleanup()
    # The default: loopback only, so 127.0.0.2 may scrape; "none": nobody.
    s = Lighttpd("metrics-none", procs=1, conf_extra="metrics_allow = none\n").start()
    try:
        eq(s.get("/metrics").status, 404, "metrics_allow = none")
    finally:
        s.cleanup()


def t_proxied():
    """A request a proxy passed on (X-Forwarded-For, Forwarded, Via) is
    not the proxy's own, whatever REMOTE_ADDR says: the 404 of an unknown
    method, as to any address outside metrics_allow."""
    s = Lighttpd("metrics-proxy", procs=1).start()
    try:
        for h in ({"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7"},
                  {"Via": "1.1 proxy"}, {"X-Real-IP": "203.0.113.7"},
                  {"X-Forwarded-Host": "api.example"}, {"X-Forwarded-Proto": "https"},
                  {"X-Client-IP": "203.0.113.7"}, {"X-Cluster-Client-IP": "203.0.113.7"},
                  {"CF-Connecting-IP": "203.0.113.7"}, {"True-Client-IP": "203.0.113.7"}):
            r = s.get("/metrics", headers=h)
            u = s.get("/no_such_method", headers=h)
            eq((r.status, r.body), (u.status, u.body), f"metrics with {h}")
        scrape(s)
    finally:
        s.cleanup()


def t_file_replaced():
    """The file removed: the next scrape maps a new one and counts from 0.
    A file of another layout: 503 to the scrape, a line in the log, never
    figures that are not the node's."""
    s = Lighttpd("metrics-file", procs=1).start()
    try:
        path = os.path.join(s.db, "metrics")
        expect(s.get("/health"), 200, "OK")
        eq(parse(scrape(s))[req("health", 200, "OK")], 1, "counted")
        os.unlink(path)
        got = parse(scrape(s))
        eq(got[req("health", 200, "OK")], 0, "a new file counts from 0")
        check(os.path.exists(path), "the new file")
        with open(path, "r+b") as f:
            f.write(b"NOTMETRC")
        tmp = path + ".x"
        shutil.copy(path, tmp)
        os.rename(tmp, path)        # a new inode, another layout
        r = s.get("/metrics")
        expect(r, 503, "SERVICE_UNAVAILABLE", "another layout")
        check("not a metrics file of this version's layout" in s.error_log(),
              s.error_log()[-500:])
        # Removed again: the scrape maps a new file (within the minute of
        # the failed open) and is not counted with a time from nowhere.
        os.unlink(path)
        scrape(s)
        got = parse(scrape(s))
        took = got[("crmauth_request_duration_seconds_sum", 'method="metrics"')]
        check(took < 10, f"the scrapes' time: {took} s")
    finally:
        s.cleanup()


def t_truncated():
    """The file truncated under responders that map it (an operator's
    mistake): a scrape says 503 at once, never zeros; requests that write
    into the truncated pages all succeed (the responder that faults is
    not killed by SIGBUS), and its next scrape says 503 too; each
    responder logs it once a minute, not at every scrape; once the file
    is removed, a new one counts from 0."""
    s = Lighttpd("metrics-trunc", procs=2).start()
    try:
        path = os.path.join(s.db, "metrics")
        for _ in range(3):
            expect(s.get("/health"), 200, "OK")
        pids = s.responder_pids()
        # Scraped before anything wrote to it: 503, not zeros.
        os.truncate(path, 0)
        expect(s.get("/metrics"), 503, "SERVICE_UNAVAILABLE", "scraped at once")
        os.unlink(path)
        eq(parse(scrape(s))[req("health", 200, "OK")], 0, "a new file counts from 0")
        # Written to after the truncation: the add faults, the request
        # goes on, the responder lives (4096 bytes would keep every word:
        # they fit in the first page).
        expect(s.get("/health"), 200, "OK")
        os.truncate(path, 0)
        for _ in range(6):
            expect(s.get("/health"), 200, "OK", "health after the truncation")
        eq(s.responder_pids(), pids, "the same responders: none died")
        log = s.error_log()
        check("SIGBUS" not in log and "signal" not in log, log)
        for _ in range(4):
            expect(s.get("/metrics"), 503, "SERVICE_UNAVAILABLE", "a truncated file")
        said = s.error_log().count("this process counts nothing")
        check(1 <= said <= len(pids), f"said {said} times by {len(pids)} responders over "
              f"5 scrapes of a truncated file:\n{s.error_log()[-1500:]}")
        check("not a metrics file of this version's layout" in s.error_log(),
              s.error_log()[-500:])
        os.unlink(path)
        got = parse(scrape(s))
        eq(got[req("health", 200, "OK")], 0, "a new file counts from 0")
    finally:
        s.cleanup()


def t_cgi_says_once():
    """Under CGI every request is a process: a metrics file that cannot
    be opened is said once a minute across them, not once per request."""
    s = Lighttpd("metrics-cgi", procs=1).start()
    try:
        s.stop()
        path = os.path.join(s.db, "metrics")
        if os.path.exists(path):
            os.unlink(path)
        os.mkdir(path)                  # not a file: every open fails
        env = {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "PATH_INFO": "/health",
               "REMOTE_ADDR": "127.0.0.1", "CRMAUTH_CONF": s.conf, "PATH": "/usr/bin:/bin"}
        said = 0
        for _ in range(4):
            r = subprocess.run([os.path.join(s.sbindir, "crmauth.fcgi")], env=env,
                               capture_output=True, text=True, timeout=60,
                               **({"user": s.user, "group": s.user, "extra_groups": []}
                                  if s.user else {}))
            check(r.stdout.startswith("Status: 200"), f"health as CGI: {r.stdout[:100]!r}")
            said += r.stderr.count("this process counts nothing")
        eq(said, 1, "one line for four CGI requests")
    finally:
        s.cleanup()


def t_off():
    """metrics = off: nothing counted, no file, and metrics is a 404."""
    s = Lighttpd("metrics-off", procs=1, conf_extra="metrics = off\n").start()
    try:
        expect(s.get("/health"), 200, "OK")
        expect(s.get("/metrics"), 404, "NOT_FOUND")
        check(not os.path.exists(os.path.join(s.db, "metrics")), "no metrics file")
    finally:
        s.cleanup()


def t_store_outage():
    """A store the responders cannot read: 503s counted as store errors,
    crmauth_store_up 0; once readable again, 1, and the counts go on."""
    if RUN_USER is None:
        print("  (needs root: the responders must run as another user)")
        return
    s = Lighttpd("metrics-outage", procs=1, user=RUN_USER).start()
    try:
        expect(s.get("/health"), 200, "OK")
        s.stop()
        data = os.path.join(s.db, "data.mdb")
        os.chmod(data, 0)
        s.start()
        for _ in range(3):
            expect(s.get("/health"), 503, "SERVICE_UNAVAILABLE", "outage")
        got = parse(scrape(s))
        eq(got[("crmauth_store_up", "")], 0, "store down")
        check(("crmauth_released_tokens", "") not in got, "no store gauges while down")
        eq(got[req("health", 503, "SERVICE_UNAVAILABLE")], 3, "the 503s")
        eq(sum(v for (n, _), v in got.items() if n == "crmauth_store_errors_total"), 3,
           "store errors: the three requests, not the scrapes")
        got = parse(scrape(s))
        eq(sum(v for (n, _), v in got.items() if n == "crmauth_store_errors_total"), 3,
           "a second scrape while down counts nothing either")
        eq(got[req("health", 200, "OK")], 1, "the count from before the restart")
        os.chmod(data, 0o600)
        s.stop()
        s.start()
        expect(s.get("/health"), 200, "OK")
        got = parse(scrape(s))
        eq(got[("crmauth_store_up", "")], 1, "store up again")
        eq(sum(v for (n, _), v in got.items() if n == "crmauth_store_errors_total"), 3,
           "the store errors counted while down")
    finally:
        s.cleanup()


def t_sigkill():
    """Responders killed with SIGKILL under load: every request answered
    200 is counted, and the counts scraped never go down.  A request is
    counted before its answer is sent, so a responder killed in between
    has counted a 200 its client never got: at most one per kill."""
    s = Lighttpd("metrics-kill", procs=2).start()
    try:
        s.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="pw\n")
        key = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        stop = threading.Event()
        ok = [0]
        lock = threading.Lock()

        def load():
            while not stop.is_set():
                r = s.post("/authentication/web_api_key/token",
                           headers={"Authorization": basic(key)})
                if r.status == 200:
                    with lock:
                        ok[0] += 1
        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        seen = []
        kills = 0
        try:
            for _ in range(8):
                wait_for(lambda: ok[0] > 0, 20, "tokens under load")
                for pid in s.responder_pids():
                    os.kill(int(pid), signal.SIGKILL)
                    kills += 1
                # lighttpd answers 503 until it has started new ones.
                r = wait_for(lambda: (lambda r: r if r.status == 200 else None)(
                    s.get("/metrics")), 30, "a responder to scrape", interval=0.1)
                seen.append(parse(r.body.decode())[req(KEY, 200, "OK")])
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        eq(seen, sorted(seen), "scraped counts never go down")
        check(seen[-1] > seen[0], f"the load went on: {seen}")
        wait_for(lambda: s.get("/health").status == 200, 30, "responders again")
        got = parse(scrape(s))
        counted = got[req(KEY, 200, "OK")]
        check(ok[0] <= counted <= ok[0] + kills,
              f"every 200 counted: {ok[0]} answered, {counted} counted, {kills} killed")
        # A token is counted when issued, its request when answered: a
        # kill in between leaves one more token than requests.
        tokens = got[("crmauth_tokens_issued_total", f'method="{KEY}"')]
        check(counted <= tokens <= counted + kills,
              f"tokens issued: {tokens} for {counted} requests counted, {kills} killed")
    finally:
        s.cleanup()


def main():
    run = Runner("metrics")
    run.run("a known mix: exactly its counts, over two responders; promtool clean", t_counts)
    run.run("outside metrics_allow: the 404 of an unknown method", t_not_allowed)
    run.run("a proxied request: the 404 of an unknown method", t_proxied)
    run.run("the file removed or replaced: a new one, or 503", t_file_replaced)
    run.run("the file truncated under the responders: no SIGBUS, 503, then a new one",
            t_truncated)
    run.run("CGI: a file that cannot be opened is said once a minute", t_cgi_says_once)
    run.run("metrics = off: nothing counted, 404", t_off)
    run.run("crmauthctl stats: a clear line when it cannot; the store down shown",
            t_stats_edges)
    run.run("a store outage: store errors, crmauth_store_up 0, then 1", t_store_outage)
    run.run("SIGKILLed responders under load: nothing counted is lost", t_sigkill)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
