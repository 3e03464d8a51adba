"""Hostile requests through a real lighttpd: truncated and oversized
bodies, a Content-Length that lies, invalid UTF-8, deep nesting, huge
numbers, duplicate keys, wrong types, path tricks, odd methods, header
injection in values.  Each gets its documented 4xx envelope (or, when the
web server itself refuses malformed HTTP before crmauth sees it, that
server's 4xx), the service keeps answering, and the store's data is the
same afterwards."""
import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crmtest import Runner, Lighttpd, PREFIX, basic, eq, check  # noqa: E402

S = None
CASES = []      # (name, sender, expected status or None for "server's 4xx", code)


def case(name, status, code, **req):
    """One request through http.client.  server_ok: the web server may
    refuse it itself (malformed URL or header) with its own 4xx."""
    CASES.append((name, status, code, req))


def raw_case(name, payload, statuses=None):
    """Bytes sent as they are on one connection.  statuses: what the web
    server may answer (None: any 4xx, or closing the connection)."""
    CASES.append((name, "raw", statuses, {"payload": payload}))


def build():
    login = {"username": "alice", "password": "alice-pw", "organisation": "ACME"}
    body = json.dumps(login)
    T = "/authentication/token"
    K = "/authentication/web_api_key/token"
    C = "/authentication/consumer_application_key/token"
    R = "/authentication/token/release"
    X = "/authentication/token/check"

    # Truncated bodies: every cut of a login body (Content-Length matches).
    for cut in range(1, len(body), 3):
        case(f"truncated body at {cut}", 400, "INVALID_REQUEST", method="POST", path=T,
             raw=body[:cut].encode())
    # Oversized bodies, refused before reading.
    for size in (4097, 5000, 65536, 1 << 20):
        case(f"{size}-byte body", 413, "PAYLOAD_TOO_LARGE", method="POST", path=T,
             raw=b"{" + b" " * (size - 2) + b"}")
    # Invalid UTF-8 in a value.
    for name, seq in (("lone continuation", b"\x80"), ("overlong slash", b"\xc0\xaf"),
                      ("truncated 2-byte", b"\xc3"), ("truncated 3-byte", b"\xe2\x82"),
                      ("surrogate half", b"\xed\xa0\x80"), ("0xff", b"\xff"),
                      ("0xfe", b"\xfe"), ("overlong NUL", b"\xc0\x80"),
                      ("past U+10FFFF", b"\xf4\x90\x80\x80"), ("5-byte form", b"\xf8\x88\x80\x80\x80")):
        case(f"invalid UTF-8: {name}", 400, "INVALID_REQUEST", method="POST", path=T,
             raw=b'{"username":"a' + seq + b'","password":"hostile-pw-1","organisation":"ACME"}')
    # Raw control characters and NUL in strings (strict JSON refuses).
    for c in (b"\x00", b"\x01", b"\x0a", b"\x1f", b"\x7f\x00"):
        case(f"raw control {c!r} in a string", 400, "INVALID_REQUEST", method="POST", path=T,
             raw=b'{"username":"a' + c + b'b","password":"hostile-pw-1","organisation":"A"}')
    # Deep nesting.
    for depth in (9, 10, 20, 64, 500):
        case(f"{depth} nested objects", 400, "INVALID_REQUEST", method="POST", path=T,
             raw=(b'{"a":' * depth + b"1" + b"}" * depth))
        case(f"{depth} nested arrays", 400, "INVALID_REQUEST", method="POST", path=T,
             raw=(b'{"a":' + b"[" * depth + b"]" * depth + b"}"))
    # Huge numbers and wrong types, in every field of every method.
    values = ["1e999999", "-1e999999", "123456789012345678901234567890", "-0", "1.5", "true",
              "false", "[]", "{}", '["x"]', '{"a":"b"}', "0x10"]
    for field in ("username", "password", "organisation", "unit"):
        for v in values:
            parts = [f'"{k}": {json.dumps(login[k])}' for k in login if k != field]
            parts.append(f'"{field}": {v}')
            case(f"{field} = {v}", 400, "INVALID_REQUEST", method="POST", path=T,
                 raw=("{" + ", ".join(parts) + "}").encode())
    for v in values[:6]:
        case(f"token = {v} (release)", 400, "INVALID_REQUEST", method="POST", path=R,
             raw=('{"token": %s}' % v).encode())
        case(f"access_token_identifier = {v}", 400, "INVALID_REQUEST", method="POST", path=C,
             raw=('{"access_token_identifier": %s}' % v).encode(),
             headers={"Authorization": basic("F" * 32)})
    # Bodies that are not an object.
    for v in ("[]", '"x"', "1", "true", "null", "[{}]", "", " ", "\n"):
        case(f"body {v!r}", 400, "INVALID_REQUEST", method="POST", path=T, raw=v.encode())
    # Duplicate keys.
    for text in ('{"username":"a","username":"b","password":"hostile-pw-1","organisation":"A"}',
                 '{"username":"a","password":"hostile-pw-1","password":"hostile-pw-2","organisation":"A"}',
                 '{"username":"a","\\u0075sername":"b","password":"hostile-pw-1","organisation":"A"}',
                 '{"token":"a.b.c","token":"d.e.f"}',
                 '{"access_token_identifier":{"identifier":"x","identifier":"y","pass_code":"hostile-pc-1"}}'):
        path = R if "token" in text[:9] else C if "access" in text else T
        case(f"duplicate key: {text[:40]}", 400, "INVALID_REQUEST", method="POST", path=path,
             raw=text.encode(), headers={"Authorization": basic("F" * 32)} if path == C else None)
    # Content-Type games.
    for ct in ("text/plain", "application/xml", "application/json-patch+json",
               "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
               "application/json; charset=iso-8859-1", "application/json; charset=utf-16",
               "application/jsonx", "json", "*/*"):
        case(f"Content-Type {ct}", 415, "UNSUPPORTED_MEDIA_TYPE", method="POST", path=T,
             raw=body.encode(), content_type=ct)
    # Path tricks: nothing is mounted there.
    for p in ("/authentication/token/x", "/authentication/tokens", "/AUTHENTICATION/TOKEN",
              "/authentication/token;x", "/authentication/%74oken2",
              "/authentication/web_api_key", "/authentication", "/health/x",
              "/authentication/token/release/..%2f..%2fnothing", "/" + "a" * 300,
              "/authentication/token%2Fcheck/x", "/.env",
              "/authentication/%2e%2e/nothing"):
        case(f"path {p[:50]}", 404, "NOT_FOUND", method="POST", path=p, raw=b"{}")
    # lighttpd refuses these itself (NUL, bad UTF-8 in the path) or maps
    # them outside the API (dot-segments above the root).
    for p in ("/authentication/token%00", "/%00", "/%ff%fe", "/../../etc/passwd"):
        case(f"path {p[:50]}", 404, "NOT_FOUND", method="POST", path=p, raw=b"{}",
             server_ok=True)
    # Odd methods.
    for m in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        for p in (T, K, R):
            case(f"{m} {p}", 405, "METHOD_NOT_ALLOWED", method=m, path=p, raw=b"{}")
    case("HEAD /health", 405, None, method="HEAD", path="/health")
    case("POST /health", 405, "METHOD_NOT_ALLOWED", method="POST", path="/health", raw=b"{}")
    # Header injection in values that could be echoed: nothing is echoed,
    # and no header appears.
    for field in ("unit",):
        for inj in ("HQ\r\nSet-Cookie: pwned=1", "HQ\nX-Injected: 1", "HQ\r\n\r\n<h1>x</h1>"):
            b2 = dict(login, **{field: inj})
            case(f"CRLF in {field}", 403, "INVALID_UNIT", method="POST", path=T,
                 raw=json.dumps(b2).encode(), no_header=("set-cookie", "x-injected"))
    for inj in ("alice\r\nSet-Cookie: pwned=1", "a\r\nLocation: http://127.0.0.1/"):
        b2 = dict(login, username=inj)
        case("CRLF in username", 401, "INVALID_CREDENTIALS", method="POST", path=T,
             raw=json.dumps(b2).encode(), no_header=("set-cookie", "location"))
    # Authorization games on the key methods.
    for h in ("Basic", "Basic ===", "Basic " + "A" * 5000, "Digest x", "Bearer x.y.z",
              basic("hostile-key-1", "hostile-pw-3"), basic(""), "Basic " + "QQ==" * 3, "Basic\tQUFBOg==",
              "Basic QUFB\x7fOg=="):
        case(f"Authorization {h[:30]!r}", 401, "INVALID_CREDENTIALS", method="POST", path=K,
             headers={"Authorization": h}, raw=b"", server_ok="\x7f" in h)
    # Token garbage for release and check.
    for t in ("", "a", "a.b", "a.b.c", "...", "eyJ.eyJ.x", "e" * 5000, "a.b.c.d", "%00.%00.%00",
              "eyJhbGciOiJub25lIn0.e30."):
        if t == "":
            case("release: empty token", 400, "INVALID_REQUEST", method="POST", path=R,
                 raw=b'{"token":""}')
        else:
            exp = 413 if len(t) > 4000 else 401
            case(f"release: token {t[:20]!r}", exp,
                 "PAYLOAD_TOO_LARGE" if exp == 413 else "INVALID_TOKEN",
                 method="POST", path=R, raw=json.dumps({"token": t}).encode())
            case(f"check: Bearer {t[:20]!r}", 401, "INVALID_TOKEN", method="GET", path=X,
                 headers={"Authorization": "Bearer " + t})
    # HTTP-level malformations, straight on the socket.
    host = "Host: 127.0.0.1\r\n"
    raw_case("Content-Length larger than the body, then half-close",
             f"POST {PREFIX}{T} HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
             "Content-Length: 100\r\nConnection: close\r\n\r\n{\"a\":".encode())
    raw_case("Content-Length smaller than the body",
             f"POST {PREFIX}{T} HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
             "Content-Length: 5\r\nConnection: close\r\n\r\n{\"username\":1}".encode(),
             statuses=(400,))
    raw_case("negative Content-Length",
             f"POST {PREFIX}{T} HTTP/1.1\r\n{host}Content-Length: -5\r\n\r\n{{}}".encode())
    raw_case("two Content-Lengths",
             f"POST {PREFIX}{T} HTTP/1.1\r\n{host}Content-Length: 2\r\nContent-Length: 3\r\n"
             "\r\n{}".encode())
    raw_case("header with a bare CR",
             f"POST {PREFIX}{T} HTTP/1.1\r\n{host}X-A: a\rb\r\nContent-Length: 2\r\n\r\n{{}}".encode())
    raw_case("Authorization with CRLF continuation",
             f"POST {PREFIX}{K} HTTP/1.1\r\n{host}Authorization: Basic\r\n QUFBOg==\r\n"
             "Content-Length: 0\r\n\r\n".encode())
    raw_case("request line garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
    raw_case("HTTP/0.9", f"GET {PREFIX}/health\r\n".encode())
    raw_case("chunked with a bad chunk size",
             f"POST {PREFIX}{T} HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n"
             "Content-Type: application/json\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".encode())
    raw_case("a 64 KiB header",
             f"GET {PREFIX}/health HTTP/1.1\r\n{host}X-Big: {'a' * 65536}\r\n\r\n".encode())
    raw_case("NUL in the request line", f"GET {PREFIX}/he\x00alth HTTP/1.1\r\n{host}\r\n".encode())


def send_raw(payload, timeout=5.0):
    """Send bytes; return the status of the answer, or None if the server
    closed without one."""
    with socket.create_connection(("127.0.0.1", S.port), timeout=timeout) as s:
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = b""
        try:
            while len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    if not data.startswith(b"HTTP/1."):
        return None, data
    return int(data.split(b" ", 2)[1]), data


def run_case(name, status, code, req):
    if status == "raw":
        got, data = send_raw(req["payload"])
        allowed = code
        if allowed is None:
            check(got is None or 400 <= got < 500, f"{name}: {got} {data[:200]!r}")
        else:
            check(got in allowed, f"{name}: {got} {data[:200]!r}")
        if got is not None and b'{"data"' in data:
            body = json.loads(data.split(b"\r\n\r\n", 1)[1])
            check(body["data"] is None and body["status"]["code"], f"{name}: envelope")
        return
    r = S.request(req.get("method", "POST"), req["path"], raw=req.get("raw"),
                  headers=req.get("headers"),
                  content_type=req.get("content_type", "application/json"))
    if req.get("server_ok") and r.json is None:
        check(400 <= r.status < 500, f"{name}: the server's own answer {r!r}")
        return
    eq(r.status, status, f"{name} ({r!r})")
    if req.get("method") == "HEAD":
        eq(r.headers.get("allow"), "GET", f"{name}: Allow")
        return
    eq(r.headers.get("content-type"), "application/json; charset=utf-8", f"{name}: type")
    check(r.json is not None and r.data is None, f"{name}: not the error envelope: {r!r}")
    eq(r.code, code, f"{name}: code")
    for h in req.get("no_header", ()):
        check(h not in r.headers, f"{name}: the header {h} was injected")


def main():
    global S
    run = Runner("hostile")
    build()
    S = Lighttpd("hostile").start()
    try:
        S.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="alice-pw\n")
        before = S.dump(S.DATA_DBS)
        print(f"  {len(CASES)} hostile requests")
        check_every = 25
        for i, (name, status, code, req) in enumerate(CASES):
            run.run(name, run_case, name, status, code, req)
            if i % check_every == check_every - 1:
                r = S.get("/health")
                if r.status != 200:
                    run.run(f"still answering after {i + 1}", eq, r.status, 200)

        def afterwards():
            eq(S.get("/health").status, 200, "health")
            r = S.post("/authentication/token", {"username": "alice", "password": "alice-pw",
                                                 "organisation": "ACME"})
            eq(r.status, 200, f"a real login still works ({r!r})")
            check(S.dump(S.DATA_DBS) == before, "the store's data changed")
            check(len(CASES) >= 150, f"at least 150 hostile requests ({len(CASES)})")
            # Sanitizers report as a process ends: stop them all first.
            S.stop()
            log = S.error_log()
            check("AddressSanitizer" not in log and "runtime error" not in log,
                  f"sanitizer reports in the log: {log[-2000:]}")
        run.run("afterwards: answering, logging in, data unchanged", afterwards)

        def events():
            # Every line is one JSON object (S.events() fails otherwise);
            # the real login's token_issued is among them.
            evs = S.events()
            check(len(evs) >= 100, f"the hostile requests left events ({len(evs)})")
            check(any(e["event"] == "token_issued" and e.get("usr") == "alice" for e in evs),
                  "the real login's event")
            text = S.audit_text() + S.error_log()
            # Every password, pass code and key these requests sent.
            for secret in ("alice-pw", "hostile-pw-1", "hostile-pw-2", "hostile-pw-3",
                           "hostile-pc-1", "hostile-key-1", "F" * 32):
                check(secret not in text, f"{secret!r} is in the audit or error log")
            check(not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", text), "a token is in a log")
        run.run("security: events of the hostile requests, one JSON line each, no secret",
                events)
    finally:
        S.cleanup()
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
