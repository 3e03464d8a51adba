"""make bench-profile: where each method's instructions go.

One responder behind lighttpd runs under callgrind, collecting only
inside http_serve() (one call per request: routing, the method, the
store, the answer; not libfcgi's socket work, which the baseline pays
alike).  PROFILE_REQUESTS requests of each method; prints instructions
per request and the functions that take the most of them, inclusive.
A profile: it prints figures; it judges nothing.

    PROFILE_REQUESTS=300  PROFILE_TOP=12  PROFILE_METHODS="apikey check"
"""
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)
from crmtest import Lighttpd, TOP_BUILDDIR, basic, FCGI  # noqa: E402
from bench import mint, provision, DEFAULT_ARGON2  # noqa: E402

N = int(os.environ.get("PROFILE_REQUESTS", "300"))
TOP = int(os.environ.get("PROFILE_TOP", "12"))
METHODS = os.environ.get("PROFILE_METHODS",
                         "login apikey consumer check release health").split()


def requests(s, method, key, ck, good, tokens):
    api = {"login": lambda i: s.post("/authentication/token", {
               "username": "alice", "password": "alice-pw", "organisation": "ACME"}),
           "apikey": lambda i: s.post("/authentication/web_api_key/token",
                                      headers={"Authorization": basic(key)}),
           "consumer": lambda i: s.post(
               "/authentication/consumer_application_key/token",
               {"access_token_identifier": {"authentication_code": "CODE-1"}},
               headers={"Authorization": basic(ck)}),
           "check": lambda i: s.get("/authentication/token/check",
                                    headers={"Authorization": "Bearer " + good}),
           "release": lambda i: s.post("/authentication/token/release",
                                       {"token": tokens[i]}),
           "health": lambda i: s.get("/health")}[method]
    n = N // 10 if method == "login" else N
    for i in range(n):
        r = api(i)
        if r.status != 200:
            raise SystemExit(f"{method}: {r.status} {r.body[:200]!r}")
    return n


# Callers of every request, whose inclusive cost is the total.
ANCESTORS = {"(below main)", "main", "serve_fcgi", "http_serve"}


def annotate(path, inclusive):
    r = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                        "--threshold=100", path],
                       capture_output=True, text=True, check=True)
    total, rows, seen = None, [], set()
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*(?:\[.*\])?$", line)
        if m and total is not None and ":" in m.group(2):
            fn = m.group(2).rsplit(":", 1)[1]
            where = os.path.basename(m.group(2).rsplit(":", 1)[0])
            if fn in ANCESTORS or fn.startswith(("0x", "__libc_start")) or fn in seen:
                continue
            seen.add(fn)
            rows.append((int(m.group(1).replace(",", "")), f"{fn} ({where})"))
    return total, rows


def main():
    if shutil.which("valgrind") is None:
        raise SystemExit("bench-profile needs valgrind")
    results = []
    for method in METHODS:
        wrapdir = os.path.join(TOP_BUILDDIR, "bench", "profile-out")
        os.makedirs(wrapdir, exist_ok=True)
        out = os.path.join(wrapdir, f"callgrind.{method}")
        for f in os.listdir(wrapdir):
            if f.startswith(f"callgrind.{method}"):
                os.unlink(os.path.join(wrapdir, f))
        wrapper = os.path.join(wrapdir, "responder.sh")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec valgrind --tool=callgrind --toggle-collect=http_serve "
                    f"--callgrind-out-file={out}.%p {FCGI} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        argon2 = f"argon2_memory_kib = {DEFAULT_ARGON2[0]}\nargon2_iterations = {DEFAULT_ARGON2[1]}\n"
        crm = Lighttpd("profile", procs=1, program=wrapper, argon2=argon2)
        try:
            key, ck, kid, secret = provision(crm)
            crm.start()
            # Tokens signed here, so that only the method is collected.
            tokens = mint(kid, secret, N)
            n = requests(crm, method, key, ck, tokens[0], tokens)
        finally:
            crm.stop()
            deadline = time.time() + 60
            while time.time() < deadline and subprocess.run(
                    ["pgrep", "-f", f"callgrind-out-file={out}"],
                    capture_output=True).returncode == 0:
                time.sleep(0.2)
            crm.cleanup()
        files = [os.path.join(wrapdir, f) for f in os.listdir(wrapdir)
                 if f.startswith(f"callgrind.{method}.")]
        if not files:
            raise SystemExit(f"{method}: no callgrind output")
        path = max(files, key=os.path.getsize)
        total, inclusive = annotate(path, True)
        _, exclusive = annotate(path, False)
        results.append((method, n, total, inclusive, exclusive))

    for method, n, total, inclusive, exclusive in results:
        print(f"\n{method}: {total / n:,.0f} instructions per request ({n} requests)")
        for what, rows in (("inclusive", inclusive), ("self", exclusive)):
            print(f"  top {TOP}, {what}:")
            for ir, fn in rows[:TOP]:
                print(f"  {ir / n:>10,.0f}  {100 * ir / total:5.1f}%  {fn}")


if __name__ == "__main__":
    main()
