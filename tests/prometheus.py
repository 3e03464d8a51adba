"""A real Prometheus server (Debian's prometheus), started on loopback,
scrapes three nodes at once: lighttpd with its FastCGI responders,
nginx with spawn-fcgi, and lighttpd running crmauth as CGI (a process per
request, the scrapes too).  Each node has its own PostgreSQL database
(the store several nodes share in production) and gets the same known
mix: successes, every failure reason, holds, a release, checks, and an
outage of the database (health and a check answered 503
meanwhile).  Prometheus's HTTP API must then give exactly
the counts the nodes answered, job by job, and have seen the store go
down and come back."""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crmtest  # noqa: E402
from crmtest import (Runner, Lighttpd, Nginx, Endpoint, Postgres, RUN_USER, basic,  # noqa: E402
                     eq, check, free_port, wait_for, wait_port, stop_process)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CODE = "7D1A-77C0-0B5E"
PASS_CODE = "4711"
TOKEN = "authentication/token"
KEY = "authentication/web_api_key/token"
CONSUMER = "authentication/consumer_application_key/token"
CHECK = "authentication/token/check"
RELEASE = "authentication/token/release"
REASONS = ("unknown_user", "bad_password", "disabled", "unknown_key", "revoked_key",
           "unknown_access_token", "bad_pass_code", "unit_not_allowed", "invalid_request",
           "no_key")


class Prometheus:
    """prometheus on a loopback port with a scrape job per node, every
    second, and a data directory of its own."""

    def __init__(self, jobs):
        self.jobs = list(jobs)
        self.dir = tempfile.mkdtemp(prefix="crmauth-prometheus-")
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n")
            for job, (port, path) in jobs.items():
                f.write(f"  - job_name: {job}\n    metrics_path: {path}\n"
                        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
        for attempt in range(5):
            self.port = free_port()
            log = open(os.path.join(self.dir, "prometheus.log"), "w")
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={conf}",
                 f"--storage.tsdb.path={self.dir}/data",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=log, start_new_session=True)
            log.close()
            if wait_port(self.port, self.proc, 60):
                break
            stop_process(self.proc)
        else:
            raise AssertionError(f"prometheus did not start: {self.log()[-2000:]}")
        wait_for(lambda: self.ready(), 60, "prometheus to be ready")

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def log(self):
        with open(os.path.join(self.dir, "prometheus.log"), errors="replace") as f:
            return f.read()

    def vector(self, q):
        """An instant query: [(labels, value)]."""
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?" +
               urllib.parse.urlencode({"query": q}))
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
        eq(body["status"], "success", f"query {q}")
        return [(dict(s["metric"]), float(s["value"][1])) for s in body["data"]["result"]]

    def query(self, q):
        """An instant query of one job: {(name, frozenset of the labels
        but job and instance): value}."""
        out = {}
        for m, v in self.vector(q):
            name = m.pop("__name__", "")
            m.pop("job", None)
            m.pop("instance", None)
            out[(name, frozenset(m.items()))] = v
        return out

    def by_job(self, q):
        """An instant query with one series per job: {job: value}."""
        return {m["job"]: v for m, v in self.vector(q)}

    def targets_up(self):
        return self.by_job("up") == {job: 1 for job in self.jobs}

    def cleanup(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Tally:
    """What a node answered, request by request, and what Prometheus must
    therefore say: series -> count."""

    def __init__(self, ep):
        self.ep = ep
        self.want = collections.Counter()

    def __call__(self, method, path, body=None, headers=None, source="127.0.0.1"):
        r = self.ep.request(method, "/" + path, body, headers=headers, source=source)
        code = r.json["status"]["code"] if r.body.startswith(b"{") else "?"
        self.want[("crmauth_requests_total",
                   frozenset({"method": path, "code": str(r.status), "status": code}.items()))] += 1
        if path == CHECK:
            self.want[("crmauth_token_checks_total", frozenset({"result": code}.items()))] += 1
        if path in (TOKEN, KEY, CONSUMER) and r.status == 200:
            self.want[("crmauth_tokens_issued_total", frozenset({"method": path}.items()))] += 1
        if path in (TOKEN, KEY, CONSUMER) and r.status == 429:
            self.want[("crmauth_auth_holds_total", frozenset({"method": path}.items()))] += 1
        if path == RELEASE and r.status == 200:
            self.want[("crmauth_token_releases_total", frozenset())] += 1
        if r.status == 503:
            self.want[("crmauth_store_errors_total",
                       frozenset({"kind": "unavailable"}.items()))] += 1
        return r

    def failure(self, method, reason, n=1):
        self.want[("crmauth_auth_failures_total",
                   frozenset({"method": method, "reason": reason}.items()))] += n


def records(s):
    """alice (HQ), bob (disabled), a Web API key and a revoked one, a
    consumer key with an access token of each kind."""
    s.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="pw\n")
    s.ctl("user", "add", "ACME", "bob", "--unit", "HQ", input="pw\n")
    s.ctl("user", "disable", "ACME", "bob")
    old = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
    s.ctl("apikey", "revoke", input=old + "\n")
    key = s.ctl("apikey", "add", "ACME", "alice").stdout.strip()
    ck = s.ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ").stdout.strip()
    s.ctl("access-token", "add", "ACME", "--contact", "C-1", "--authentication-code",
          input=CODE + "\n")
    s.ctl("access-token", "add", "ACME", "--contact", "C-2", "--identifier", "card-2",
          input=PASS_CODE + "\n")
    return key, old, ck


def the_mix(t, key, old, ck):
    """Successes, each failure reason once (bad_password four times: the
    holds need three), two holds, a release and three checks."""
    def login(pw, user="alice", source="127.0.0.1", **more):
        return t("POST", TOKEN, {"username": user, "password": pw, "organisation": "ACME",
                                 **more}, source=source)
    tokens = [login("pw").json["data"]["token"] for _ in range(3)]
    login("bad")
    t.failure(TOKEN, "bad_password")
    login("pw", "nobody")
    t.failure(TOKEN, "unknown_user")
    login("pw", "bob")
    t.failure(TOKEN, "disabled")
    login("pw", unit="EU", source="127.0.0.3")
    t.failure(TOKEN, "unit_not_allowed")
    t("POST", TOKEN, {"username": "alice"})
    t.failure(TOKEN, "invalid_request")
    for _ in range(2):
        t("POST", KEY, headers={"Authorization": basic(key)})
    t("POST", KEY, headers={"Authorization": basic("F" * 32)})
    t.failure(KEY, "unknown_key")
    t("POST", KEY, headers={"Authorization": basic(old)})
    t.failure(KEY, "revoked_key")
    t("POST", KEY)
    t.failure(KEY, "no_key")
    t("POST", CONSUMER, {"access_token_identifier": {"authentication_code": CODE}},
      headers={"Authorization": basic(ck)})
    t("POST", CONSUMER, {"access_token_identifier": {"authentication_code": "0000-0000-0000"}},
      headers={"Authorization": basic(ck)})
    t.failure(CONSUMER, "unknown_access_token")
    t("POST", CONSUMER, {"access_token_identifier": {"identifier": "card-2", "pass_code": "1"}},
      headers={"Authorization": basic(ck)})
    t.failure(CONSUMER, "bad_pass_code")
    t("POST", RELEASE, {"token": tokens[0]})
    for tok in (tokens[1], tokens[0], "x.y.z"):
        t("GET", CHECK, headers={"Authorization": "Bearer " + tok})
    # Three failures from one address, then two held (lockout_threshold 3).
    for i in range(5):
        login(f"guess{i}", source="127.0.0.9")
    t.failure(TOKEN, "bad_password", 3)
    t("GET", "health")
    return tokens[1]


def wanted_counters(got, want):
    """Prometheus's counters of one job against the tally: every series
    the tally has, and 0 for every other (the scrapes' own aside)."""
    diff = {}
    for k, v in got.items():
        labels = dict(k[1])
        if labels.get("method") == "metrics" or k[0].startswith("crmauth_request_duration"):
            continue
        if v != want.get(k, 0):
            diff[k] = (v, want.get(k, 0))
    for k, v in want.items():
        if k not in got:
            diff[k] = (None, v)
    return diff


def show(diff):
    return "\n".join(f"  {n}{{{', '.join(f'{a}={b}' for a, b in sorted(ls))}}}: "
                     f"prometheus {g}, answered {w}" for (n, ls), (g, w) in sorted(
                         diff.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]))))


def t_prometheus():
    """Three nodes, one Prometheus: exact counts per job through its HTTP
    API, and the database outage seen in crmauth_store_up."""
    lockout = ("lockout_threshold = 3\nlockout_account_threshold = 1000000\n"
               "metrics_allow = 127.0.0.1/32\n")
    pg = Postgres.get()
    nodes = {
        "lighttpd": Lighttpd("prom-lighttpd", procs=2, user=RUN_USER, store="postgresql",
                             lockout=lockout),
        "nginx": Nginx("prom-nginx", user=RUN_USER, store="postgresql", lockout=lockout),
        "cgi": Lighttpd("prom-cgi", procs=1, user=RUN_USER, store="postgresql",
                        lockout=lockout),
    }
    prom = None
    try:
        eps = {}
        for job, s in nodes.items():
            s.start()
            eps[job] = Endpoint(s.port, "/cgi-bin/crmauth.cgi" if job == "cgi" else s.prefix)
        prom = Prometheus({job: (ep.port, ep.prefix + "/metrics") for job, ep in eps.items()})
        wait_for(prom.targets_up, 30, "prometheus to scrape all three nodes")
        tallies, usable = {}, {}
        for job, s in nodes.items():
            t = tallies[job] = Tally(eps[job])
            usable[job] = the_mix(t, *records(s))
        # Every reason the events give, in every node's mix.
        for t in tallies.values():
            eq(sorted({dict(k[1])["reason"] for k in t.want
                       if k[0] == "crmauth_auth_failures_total"}), sorted(REASONS), "reasons")
            eq(sum(v for k, v in t.want.items() if k[0] == "crmauth_auth_holds_total"), 2,
               "two holds")

        # The database goes away: each node answers 503, and Prometheus
        # sees crmauth_store_up 0 from each.
        pg.stop()
        try:
            for job, t in tallies.items():
                for _ in range(2):
                    eq(t("GET", "health").status, 503, f"{job}: health with the database down")
                # A check's failure is an outage too (kind="unavailable").
                eq(t("GET", CHECK, headers={"Authorization": "Bearer " + usable[job]}).status,
                   503, f"{job}: a check with the database down")
            wait_for(lambda: prom.by_job("crmauth_store_up") == {job: 0 for job in nodes}, 30,
                     "prometheus to see every store down")
        finally:
            pg.start()
        for job, t in tallies.items():
            # The first request after the restart may still find the old
            # connection broken: counted like any other answer.
            wait_for(lambda: t("GET", "health").status == 200, 30,
                     f"{job}: the database back")

        # Prometheus's view, job by job, once it has scraped after the
        # last request: exactly the tally.
        def agreed(job):
            got = prom.query(f'{{job="{job}",__name__=~"crmauth_.*_total"}}')
            return not wanted_counters(got, tallies[job].want)
        for job in nodes:
            try:
                wait_for(lambda: agreed(job), 30, f"prometheus's counts of {job}")
            except AssertionError:
                got = prom.query(f'{{job="{job}",__name__=~"crmauth_.*_total"}}')
                raise AssertionError(f"{job}: prometheus and the answers differ:\n" +
                                     show(wanted_counters(got, tallies[job].want))) from None
            # The same number of observations in the histogram, by method.
            got = prom.query(f'crmauth_request_duration_seconds_count{{job="{job}"}}')
            per_method = collections.Counter()
            for (n, ls), v in tallies[job].want.items():
                if n == "crmauth_requests_total":
                    per_method[dict(ls)["method"]] += v
            for (n, ls), v in got.items():
                m = dict(ls)["method"]
                if m != "metrics":
                    eq(v, per_method[m], f"{job}: observations of {m}")
            # The gauges: one release kept; the outage seen, and over.
            g = prom.query(f'{{job="{job}",__name__=~"crmauth_(released_tokens|store_up|'
                           f'build_info)"}}')
            eq(g[("crmauth_released_tokens", frozenset())], 1, f"{job}: released ids kept")
            eq(g[("crmauth_store_up", frozenset())], 1, f"{job}: store up again")
            eq([k for k in g if k[0] == "crmauth_build_info"][0][1] >= {("store", "postgresql")},
               True, f"{job}: build_info says postgresql")
            low = prom.query(f'min_over_time(crmauth_store_up{{job="{job}"}}[10m])')
            eq(list(low.values()), [0.0], f"{job}: crmauth_store_up was 0 during the outage")
    finally:
        if prom is not None:
            prom.cleanup()
        for s in nodes.values():
            s.cleanup()


def main():
    run = Runner("prometheus")
    run.run("a Prometheus server: exact counts from lighttpd, nginx + spawn-fcgi and CGI, "
            "and a database outage", t_prometheus)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
