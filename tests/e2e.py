"""End-to-end: every method and every applicable error of README.md "Errors",
through a real lighttpd, in FastCGI and in CGI mode."""
import base64
import calendar
import json
import grp
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crmtest  # noqa: E402
from crmtest import (Runner, Lighttpd, basic, jwt_parts, sign, b64url,  # noqa: E402
                     b64url_decode, VALGRIND, PREFIX, VERIFY, eq, check, expect, wait_for)

S = None        # the main server
K = {}          # keys and tokens made by setup()


def login(user="alice", password="alice-pw", org="ACME", **extra):
    return S.post("/authentication/token",
                  {"username": user, "password": password, "organisation": org, **extra})


def token_for(user="alice", **extra):
    r = expect(login(user, **extra), 200, "OK", "login")
    return r.data["token"]


def unchanged(fn):
    """Run fn; the store must be byte-for-byte the same afterwards."""
    before = S.dump()
    fn()
    after = S.dump()
    check(before == after, "the store changed")


def counted(fn):
    """Run fn, a failed authentication: the data must be the same
    afterwards, and the failure counted (throttling)."""
    data, counters = S.dump(S.DATA_DBS), S.counters()
    fn()
    check(S.dump(S.DATA_DBS) == data, "the data changed")
    check(S.counters() != counters, "the failure was not counted")


def setup():
    ctl = S.ctl
    ctl("user", "add", "ACME", "alice", "--unit", "HQ", "--unit", "EU", input="alice-pw\n")
    ctl("user", "add", "ACME", "bob", "--unit", "HQ", input="bob-pw\n")
    ctl("user", "disable", "ACME", "bob")
    ctl("user", "add", "OTHER", "alice", "--unit", "X", input="other-pw\n")
    K["apikey"] = ctl("apikey", "add", "ACME", "alice").stdout.strip()
    K["apikey_bob"] = ctl("apikey", "add", "ACME", "bob").stdout.strip()
    K["apikey_revoked"] = ctl("apikey", "add", "ACME", "alice").stdout.strip()
    ctl("apikey", "revoke", input=K["apikey_revoked"] + "\n")
    K["ck"] = ctl("consumer-key", "add", "ACME", "shop", "--unit", "HQ",
                  "--unit", "STORE").stdout.strip()
    K["ck_revoked"] = ctl("consumer-key", "add", "ACME", "old", "--unit", "HQ").stdout.strip()
    ctl("consumer-key", "revoke", input=K["ck_revoked"] + "\n")
    K["ck_other"] = ctl("consumer-key", "add", "OTHER", "app", "--unit", "X").stdout.strip()
    S.add_code("ACME", "C-1", "CODE-1", ari="AR-1")
    ctl("access-token", "add", "ACME", "--contact", "C-2", "--identifier", "card-2",
        input="pc-73519\n")
    kid, secret = ctl("key", "export").stdout.split()
    K["kid"], K["secret"] = kid, b64url_decode(secret)
    for k in ("apikey", "ck"):
        check(len(K[k]) == 32 and K[k] == K[k].upper(), f"{k} is 32 upper-case hex")


# ---- health, routing, HTTP-level errors ------------------------------------

def t_health():
    r = expect(S.get("/health"), 200, "OK")
    eq(r.body, b'{"data":{"status":"ok"},"status":{"code":"OK","description":"","message":""}}',
       "health body")


def t_not_found():
    # ("//" never reaches us: lighttpd folds it before setting PATH_INFO.)
    for path in ("/nothing", "/authentication", "/authentication/token/x",
                 "/Authentication/token", "/authentication/token/..", "", "/"):
        unchanged(lambda: expect(S.post(path, {}), 404, "NOT_FOUND", path))
    # The prefix is not our business: the prefix alone has no PATH_INFO.
    expect(S.get("", prefix=PREFIX), 404, "NOT_FOUND", PREFIX)


def t_trailing_slash():
    expect(S.get("/health/"), 200, "OK", "trailing slash")
    r = expect(S.post("/authentication/token/", {"username": "alice", "password": "alice-pw",
                                                 "organisation": "ACME"}), 200, "OK")
    check(r.data["token"], "token via trailing slash")


def t_method_not_allowed():
    for m, path, allow in (("GET", "/authentication/token", "POST"),
                           ("PUT", "/authentication/token", "POST"),
                           ("DELETE", "/authentication/token/release", "POST"),
                           ("GET", "/authentication/web_api_key/token", "POST"),
                           ("GET", "/authentication/consumer_application_key/token", "POST"),
                           ("POST", "/health", "GET"),
                           ("PUT", "/authentication/token/check", "GET, POST"),
                           ("OPTIONS", "/health", "GET")):
        def one():
            r = expect(S.request(m, path), 405, "METHOD_NOT_ALLOWED", f"{m} {path}")
            eq(r.headers.get("allow"), allow, f"{m} {path} Allow")
        unchanged(one)


def t_payload_too_large():
    big = {"username": "alice", "password": "x" * 5000, "organisation": "ACME"}
    unchanged(lambda: expect(login(password="x" * 5000), 413, "PAYLOAD_TOO_LARGE"))
    r = expect(S.post("/authentication/token/release", {"token": "a" * 4100}),
               413, "PAYLOAD_TOO_LARGE")
    check("4096" in r.message, "413 message gives the limit")
    del big


def t_unsupported_media_type():
    body = json.dumps({"username": "alice", "password": "alice-pw", "organisation": "ACME"})
    for ct in ("text/plain", "application/x-www-form-urlencoded",
               "application/json; charset=latin1", "application/jsonx"):
        unchanged(lambda: expect(S.post("/authentication/token", body, content_type=ct),
                                 415, "UNSUPPORTED_MEDIA_TYPE", ct))
    unchanged(lambda: expect(S.post("/authentication/token", body, content_type=None),
                             415, "UNSUPPORTED_MEDIA_TYPE", "no Content-Type"))
    expect(S.post("/authentication/token", body, content_type="Application/JSON; charset=UTF-8"),
           200, "OK", "media type is case-insensitive")


def t_bad_bodies():
    cases = [
        (None, "must be a JSON object"),
        ("", "must be a JSON object"),
        ("[]", "must be a JSON object"),
        ('"alice"', "must be a JSON object"),
        ("{", "not valid JSON"),
        ("{'username':'alice'}", "not valid JSON"),
        ('{"username":"alice"} {}', "not valid JSON"),
        ('{"a":' + "[" * 20 + "]" * 20 + "}", "nested too deeply"),
    ]
    for raw, msg in cases:
        def one():
            r = S.post("/authentication/token", raw=None if raw is None else raw.encode())
            expect(r, 400, "INVALID_REQUEST", repr(raw))
            check(msg in r.message, f"{raw!r}: message {r.message!r} lacks {msg!r}")
        unchanged(one)
    # Invalid UTF-8.
    unchanged(lambda: expect(S.post("/authentication/token",
                                    raw=b'{"username":"\xff","password":"p","organisation":"o"}'),
                             400, "INVALID_REQUEST", "bad UTF-8"))


def t_missing_and_wrong_fields():
    full = {"username": "alice", "password": "alice-pw", "organisation": "ACME"}
    for field in ("username", "password", "organisation"):
        for val, msg in ((None, "is missing"), ("", "must not be empty"),
                         (12, "must be a string"), (["x"], "must be a string"),
                         (True, "must be a string")):
            if field == "password" and val == "":
                continue        # a failed login: see t_identical_401
            body = dict(full)
            if val is None:
                del body[field]
            else:
                body[field] = val

            def one():
                r = expect(S.post("/authentication/token", body), 400, "INVALID_REQUEST",
                           f"{field}={val!r}")
                check(f"'{field}'" in r.message and msg in r.message,
                      f"message names the field: {r.message!r}")
            unchanged(one)
    r = expect(login(unit=5), 400, "INVALID_REQUEST", "unit number")
    check("'unit'" in r.message, r.message)
    r = expect(login(user="u" * 257), 400, "INVALID_REQUEST", "long user name")
    check("longer than 256" in r.message, r.message)


def t_limits():
    """Every input limit, one request each: the documented 4xx, data
    unchanged (nothing is counted: these never reach a credential)."""
    good = {"username": "alice", "password": "alice-pw", "organisation": "ACME"}
    members = {f"m{i}": 1 for i in range(64)}
    cases = [
        ("Authorization header over the limit", "POST", "/authentication/web_api_key/token",
         None, {"Authorization": "Basic " + "QUFB" * 1100}, 401, "INVALID_CREDENTIALS", ""),
        ("Bearer token over 4096 bytes", "GET", "/authentication/token/check", None,
         {"Authorization": "Bearer " + "A" * 4100}, 401, "INVALID_TOKEN", ""),
        ("nesting deeper than 8", "POST", "/authentication/token",
         '{"a":' * 9 + "1" + "}" * 9, None, 400, "INVALID_REQUEST", "nested too deeply"),
        ("65 members", "POST", "/authentication/token", dict(good, **members), None, 400,
         "INVALID_REQUEST", "too many members"),
        ("65 array elements", "POST", "/authentication/token",
         dict(good, x=list(range(65))), None, 400, "INVALID_REQUEST", "too many elements"),
        ("duplicate member", "POST", "/authentication/token",
         '{"username":"alice","username":"bob","password":"x","organisation":"ACME"}', None,
         400, "INVALID_REQUEST", "names a member twice"),
        ("duplicate member hidden by an escape", "POST", "/authentication/token",
         '{"username":"alice","user\\u006eame":"bob","password":"x","organisation":"A"}',
         None, 400, "INVALID_REQUEST", "names a member twice"),
        ("name over 256 bytes", "POST", "/authentication/token",
         dict(good, organisation="o" * 257), None, 400, "INVALID_REQUEST",
         "'organisation' is longer than 256 bytes"),
        ("password over 1024 bytes", "POST", "/authentication/token",
         dict(good, password="p" * 1025), None, 400, "INVALID_REQUEST",
         "'password' is longer than 1024 bytes"),
        ("invalid UTF-8", "POST", "/authentication/token",
         b'{"username":"al\xc3\x28ce","password":"x","organisation":"A"}', None, 400,
         "INVALID_REQUEST", "not valid UTF-8"),
        ("overlong UTF-8", "POST", "/authentication/token",
         b'{"username":"al\xc0\xafce","password":"x","organisation":"A"}', None, 400,
         "INVALID_REQUEST", "not valid UTF-8"),
        ("a raw control character in a string", "POST", "/authentication/token",
         b'{"username":"al\x01ce","password":"x","organisation":"A"}', None, 400,
         "INVALID_REQUEST", "control character"),
        ("NUL in a string", "POST", "/authentication/token",
         '{"username":"al\\u0000ice","password":"x","organisation":"A"}', None, 400,
         "INVALID_REQUEST", "NUL"),
        ("a number where a string belongs", "POST", "/authentication/token",
         dict(good, username=12345), None, 400, "INVALID_REQUEST", "must be a string"),
        ("a huge number where a string belongs", "POST", "/authentication/token",
         '{"username":1e999999,"password":"x","organisation":"A"}', None, 400,
         "INVALID_REQUEST", ""),
    ]
    for name, method, path, body, hdrs, status, code, msg in cases:
        def one():
            raw = body if isinstance(body, bytes) else None
            r = S.request(method, path, None if raw else body, headers=hdrs, raw=raw)
            expect(r, status, code, name)
            check(msg in r.message, f"{name}: {r.message!r} lacks {msg!r}")
        unchanged(one)


# ---- authentication/token ---------------------------------------------------

def t_token():
    t0 = int(time.time())
    r = expect(login(), 200, "OK")
    eq(r.json["status"], {"code": "OK", "description": "", "message": ""}, "status")
    token = r.data["token"]
    eq(set(r.data), {"token"}, "data members")
    check(len(token) > 32, "token longer than 32 characters")
    h, c = jwt_parts(token)
    eq(h, {"typ": "JWT", "alg": "HS256", "kid": K["kid"]}, "header")
    eq(set(c), {"jti", "usr", "org", "oun", "iat", "exp"}, "claims")
    eq((c["usr"], c["org"], c["oun"]), ("alice", "ACME", "HQ"), "usr org oun (default unit)")
    check(isinstance(c["iat"], int) and isinstance(c["exp"], int), "numeric iat/exp")
    check(t0 - 5 <= c["iat"] <= time.time() + 5, "iat is now")
    eq(c["exp"] - c["iat"], 7200, "two hours")
    check(len(c["jti"]) == 32 and all(ch in "0123456789ABCDEF" for ch in c["jti"]), "jti hex")
    v = S.verify(token)
    eq(json.loads(v.stdout)["jti"], c["jti"], "crmauthctl token verify")


def t_token_unit():
    eq(jwt_parts(token_for(unit="EU"))[1]["oun"], "EU", "requested unit")
    eq(jwt_parts(token_for(unit="HQ"))[1]["oun"], "HQ", "default unit asked for")
    for unit in ("XX", "hq", "X"):
        unchanged(lambda: expect(login(unit=unit), 403, "INVALID_UNIT", unit))
    # Another organisation's user of the same name has its own units.
    r = expect(login(password="other-pw", org="OTHER"), 200, "OK")
    eq(jwt_parts(r.data["token"])[1]["oun"], "X", "other org's alice")


def t_identical_401():
    """Wrong password, unknown user, unknown organisation, disabled user,
    wrong organisation for the password, empty password: the same bytes."""
    answers = []
    for args in (dict(password="wrong"), dict(user="nobody"), dict(org="NOORG"),
                 dict(user="bob", password="bob-pw"), dict(org="OTHER"),
                 dict(password="alice-pw" + "x"), dict(password="ALICE-PW"),
                 dict(password=""), dict(user="nobody", password="")):
        def one():
            r = expect(login(**args), 401, "INVALID_CREDENTIALS", repr(args))
            answers.append((r.status, r.body, r.headers.get("www-authenticate")))
        counted(one)
    check(len(set(answers)) == 1, f"401 answers differ: {set(answers)}")


# ---- authentication/web_api_key/token -----------------------------------------

def apikey_post(key, body=None, password=""):
    hdrs = {} if key is None else {"Authorization": basic(key, password)}
    return S.post("/authentication/web_api_key/token", body, headers=hdrs)


def t_web_api_key():
    r = expect(apikey_post(K["apikey"]), 200, "OK", "no body")
    h, c = jwt_parts(r.data["token"])
    eq((c["usr"], c["org"], c["oun"]), ("alice", "ACME", "HQ"), "the key's user")
    eq(h["kid"], K["kid"], "kid")
    r = expect(apikey_post(K["apikey"], {"unit": "EU"}), 200, "OK", "unit EU")
    eq(jwt_parts(r.data["token"])[1]["oun"], "EU", "unit EU")
    expect(apikey_post(K["apikey"], {}), 200, "OK", "empty object")
    unchanged(lambda: expect(apikey_post(K["apikey"], {"unit": "XX"}), 403, "INVALID_UNIT"))
    unchanged(lambda: expect(apikey_post(K["apikey"], "[1]"), 400, "INVALID_REQUEST"))


def t_web_api_key_401():
    challenge = 'Basic realm="crmauth", charset="UTF-8"'
    bodies = set()
    # Unknown, revoked, disabled user's key, lower-cased key: one answer.
    for key in ("0" * 32, K["apikey_revoked"], K["apikey_bob"], K["apikey"].lower(),
                K["ck"]):
        def one():
            r = expect(apikey_post(key), 401, "INVALID_CREDENTIALS", key)
            eq(r.headers.get("www-authenticate"), challenge, "challenge")
            bodies.add(r.body)
        counted(one)
    eq(len(bodies), 1, "one 401 body for every bad key")
    # Missing or malformed header: 401 with the challenge.
    for hdr in (None, "Bearer " + K["apikey"], "Basic " + K["apikey"], "Basic !!!",
                basic(K["apikey"], "password"), basic(""), "Basic"):
        def one():
            h = {} if hdr is None else {"Authorization": hdr}
            r = S.post("/authentication/web_api_key/token", headers=h)
            expect(r, 401, "INVALID_CREDENTIALS", repr(hdr))
            eq(r.headers.get("www-authenticate"), challenge, f"challenge for {hdr!r}")
        unchanged(one)


# ---- authentication/consumer_application_key/token --------------------------

def consumer_post(body, key=None):
    return S.post("/authentication/consumer_application_key/token", body,
                  headers={"Authorization": basic(key or K["ck"])})


def t_consumer_code():
    r = expect(consumer_post({"access_token_identifier": {"authentication_code": "CODE-1"}}),
               200, "OK")
    h, c = jwt_parts(r.data["token"])
    # CRM.COM's own consumer token carries these claims, "ari" the
    # accounts receivable id; iat and exp are NumericDates (JSON numbers).
    eq(set(h), {"typ", "alg", "kid"}, "consumer token header")
    eq(set(c), {"jti", "usr", "org", "oun", "iat", "exp", "cii", "ari"}, "consumer claims")
    check(all(isinstance(c[k], int) for k in ("iat", "exp")), "iat and exp are numbers")
    # The check method and crmauthctl give the same claims.
    r2 = expect(S.get("/authentication/token/check",
                      headers={"Authorization": f"Bearer {r.data['token']}"}), 200, "OK")
    eq(r2.data, c, "check gives the consumer claims")
    eq(json.loads(S.verify(r.data["token"]).stdout), c, "token verify")
    eq((c["usr"], c["org"], c["oun"], c["cii"], c["ari"]),
       ("shop", "ACME", "HQ", "C-1", "AR-1"), "consumer claims")
    r = expect(consumer_post({"access_token_identifier": {"authentication_code": "CODE-1"},
                              "unit": "STORE"}), 200, "OK")
    eq(jwt_parts(r.data["token"])[1]["oun"], "STORE", "unit")
    unchanged(lambda: expect(consumer_post({"access_token_identifier":
                                            {"authentication_code": "CODE-1"}, "unit": "EU"}),
                             403, "INVALID_UNIT"))


def t_consumer_identifier():
    r = expect(consumer_post({"access_token_identifier":
                              {"identifier": "card-2", "pass_code": "pc-73519"}}), 200, "OK")
    c = jwt_parts(r.data["token"])[1]
    eq((c["usr"], c["cii"]), ("shop", "C-2"), "identifier claims")
    check("ari" not in c, "no ari when the access token has none")


def t_consumer_401():
    bodies = set()
    cases = [
        (None, {"authentication_code": "CODE-2"}),
        (None, {"authentication_code": "code-1"}),
        (None, {"identifier": "card-2", "pass_code": "0000"}),
        (None, {"identifier": "card-9", "pass_code": "pc-73519"}),
        (None, {"identifier": "CODE-1", "pass_code": "x"}),
        ("0" * 32, {"authentication_code": "CODE-1"}),
        ("ck_revoked", {"authentication_code": "CODE-1"}),
        ("ck_other", {"authentication_code": "CODE-1"}),     # another org's key
        ("apikey", {"authentication_code": "CODE-1"}),       # a Web API key
    ]
    for key, ati in cases:
        key = K.get(key, key)

        def one():
            r = expect(consumer_post({"access_token_identifier": ati}, key), 401,
                       "INVALID_CREDENTIALS", f"{key} {ati}")
            check(r.headers.get("www-authenticate", "").startswith("Basic "), "challenge")
            bodies.add(r.body)
        counted(one)
    eq(len(bodies), 1, "one 401 body for every consumer failure")
    r = S.post("/authentication/consumer_application_key/token",
               {"access_token_identifier": {"authentication_code": "CODE-1"}})
    expect(r, 401, "INVALID_CREDENTIALS", "no Authorization")


def t_consumer_400():
    cases = [
        ({}, "'access_token_identifier' is missing"),
        ({"access_token_identifier": "CODE-1"}, "must be an object"),
        ({"access_token_identifier": {}}, "needs authentication_code"),
        ({"access_token_identifier": {"identifier": "card-2"}},
         "'access_token_identifier.pass_code' is missing"),
        ({"access_token_identifier": {"pass_code": "pc-73519"}},
         "'access_token_identifier.identifier' is missing"),
        ({"access_token_identifier": {"authentication_code": "CODE-1", "identifier": "card-2",
                                      "pass_code": "pc-73519"}}, "not both"),
        ({"access_token_identifier": {"authentication_code": 1}},
         "'access_token_identifier.authentication_code' must be a string"),
        ({"access_token_identifier": {"authentication_code": ""}},
         "must not be empty"),
    ]
    for body, msg in cases:
        def one():
            r = expect(consumer_post(body), 400, "INVALID_REQUEST", repr(body))
            check(msg in r.message, f"{body}: {r.message!r} lacks {msg!r}")
        unchanged(one)
    unchanged(lambda: expect(S.post("/authentication/consumer_application_key/token",
                                    headers={"Authorization": basic(K["ck"])}),
                             400, "INVALID_REQUEST", "no body"))


# ---- authentication/token/release --------------------------------------------

def release(token):
    return S.post("/authentication/token/release", {"token": token})


def t_release():
    token = token_for()
    n = S.released_count()
    r = expect(release(token), 200, "OK")
    eq(r.body, b'{"data":null,"status":{"code":"OK","description":"","message":""}}', "body")
    eq(S.released_count(), n + 1, "released count")
    v = S.verify(token)
    eq(v.returncode, 1, "verify refuses a released token")
    check("released" in v.stderr, v.stderr)
    # Idempotent.
    expect(release(token), 200, "OK", "second release")
    eq(S.released_count(), n + 1, "released count after second release")


def t_release_web_api_key_and_consumer_tokens():
    for r in (apikey_post(K["apikey"]),
              consumer_post({"access_token_identifier": {"authentication_code": "CODE-1"}})):
        token = expect(r, 200, "OK").data["token"]
        expect(release(token), 200, "OK")
        eq(S.verify(token).returncode, 1, "released")


def forged_tokens():
    good = token_for()
    h, c = jwt_parts(good)
    hdr = {"typ": "JWT", "alg": "HS256", "kid": K["kid"]}
    sig = good.rsplit(".", 1)[1]
    flipped = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    c2 = dict(c, usr="root")
    return {
        "alg none": sign(dict(hdr, alg="none"), c, K["secret"]).rsplit(".", 1)[0] + ".",
        "alg none signed": sign(dict(hdr, alg="none"), c, K["secret"]),
        "HS512 same key": sign(dict(hdr, alg="HS512"), c, K["secret"], "sha512"),
        "hs256 lower case": sign(dict(hdr, alg="hs256"), c, K["secret"]),
        "another key": sign(hdr, c, b"k" * 32),
        "unknown kid": sign(dict(hdr, kid="0123456789ABCDEF"), c, K["secret"]),
        "no kid": sign({"alg": "HS256"}, c, K["secret"]),
        "tampered signature": flipped,
        "payload swapped": good.split(".")[0] + "." + b64url(json.dumps(c2).encode()) + "." + sig,
        "exp as string": sign(hdr, dict(c, exp=str(c["exp"])), K["secret"]),
        "garbage": "not.a.token",
        "two parts": "abc.def",
        "four parts": good + ".x",
        "16 KiB of junk": "A" * 4000 + "." + "B" * 10 + "." + "C" * 10,
    }


def check_token(tok=None, method="GET", body=None, hdr=None):
    h = {} if tok is None else {"Authorization": f"Bearer {tok}"}
    if hdr is not None:
        h = {"Authorization": hdr}
    return S.request(method, "/authentication/token/check", body, headers=h)


def t_check():
    tok = token_for(unit="EU")
    claims = jwt_parts(tok)[1]
    for how in ("GET header", "POST header", "POST body"):
        def one():
            if how == "GET header":
                r = check_token(tok)
            elif how == "POST header":
                r = check_token(tok, "POST")
            else:
                r = check_token(None, "POST", {"token": tok})
            expect(r, 200, "OK", how)
            eq(r.data, claims, f"{how}: data is the claims")
            check("www-authenticate" not in r.headers, "no challenge on success")
        unchanged(one)      # no write transaction on this path
    r = expect(check_token(tok, "POST", {"token": tok}), 400, "INVALID_REQUEST", "both")
    check("not both" in r.message, r.message)
    r = expect(check_token(), 401, "INVALID_TOKEN", "no token")
    eq(r.headers.get("www-authenticate"), "Bearer", "bare challenge when nothing was sent")
    r = expect(check_token(hdr=basic(K["apikey"])), 401, "INVALID_TOKEN", "Basic instead")
    eq(r.headers.get("www-authenticate"), "Bearer", "Basic is no Bearer token")
    for hdr in ("Bearer", "Bearer ", "Bearer a b", "Bearer !!!", "Bearer " + "A" * 5000):
        r = expect(check_token(hdr=hdr), 401, "INVALID_TOKEN", repr(hdr[:20]))
        eq(r.headers.get("www-authenticate"), 'Bearer error="invalid_token"', repr(hdr[:20]))
    expect(check_token(tok.lower()), 401, "INVALID_TOKEN", "lower-cased token")


def t_check_refusals():
    invalid = 'Bearer error="invalid_token"'
    for name, tok in forged_tokens().items():
        r = expect(check_token(tok), 401, "INVALID_TOKEN", name)
        eq(r.headers.get("www-authenticate"), invalid, name)
    c = {"jti": "ABCDEF0123456789ABCDEF0123456789", "usr": "alice", "org": "ACME",
         "oun": "HQ", "iat": 1600000000, "exp": 1600007200}
    old = sign({"typ": "JWT", "alg": "HS256", "kid": K["kid"]}, c, K["secret"])
    r = expect(check_token(old), 401, "TOKEN_EXPIRED", "expired")
    eq(r.headers.get("www-authenticate"), invalid, "expired challenge")
    tok = token_for()
    expect(check_token(tok), 200, "OK", "before release")
    expect(release(tok), 200, "OK")
    r = expect(check_token(tok), 401, "TOKEN_RELEASED", "released")
    eq(r.headers.get("www-authenticate"), invalid, "released challenge")
    r = expect(check_token(None, "POST", {"token": tok}), 401, "TOKEN_RELEASED", "in body")


def t_release_forged():
    forged = forged_tokens()
    for name, tok in forged.items():
        unchanged(lambda: expect(release(tok), 401, "INVALID_TOKEN", name))
        v = S.verify(tok)
        eq(v.returncode, 1, f"crmauthctl token verify refuses {name}")
    for body, msg in (({}, "'token' is missing"), ({"token": ""}, "must not be empty"),
                      ({"token": 5}, "must be a string")):
        unchanged(lambda: check(msg in expect(S.post("/authentication/token/release", body),
                                              400, "INVALID_REQUEST").message, msg))


def t_release_expired_is_ok():
    """An authentic token already past exp: 200, and nothing is stored."""
    c = {"jti": "ABCDEF0123456789ABCDEF0123456789", "usr": "alice", "org": "ACME",
         "oun": "HQ", "iat": 1600000000, "exp": 1600007200}
    tok = sign({"typ": "JWT", "alg": "HS256", "kid": K["kid"]}, c, K["secret"])
    unchanged(lambda: expect(release(tok), 200, "OK"))
    v = S.verify(tok)
    check(v.returncode == 1 and "expired" in v.stderr, v.stderr)


def t_concurrent_releases():
    """Eight clients release 80 tokens at once through two responders."""
    tokens = [expect(apikey_post(K["apikey"]), 200, "OK").data["token"] for _ in range(80)]
    pids = S.responder_pids()
    check(len(pids) >= 2, f"two or more responder processes, saw {pids}")
    n = S.released_count()
    results = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def client(i):
        start.wait()
        for tok in tokens[i::8]:
            r = release(tok)
            with lock:
                results.append((r.status, r.code))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    eq(len(results), 80, "answers")
    eq(set(results), {(200, "OK")}, "every release answered 200")
    eq(S.released_count(), n + 80, "released count is exact")
    for tok in tokens:
        v = S.verify(tok)
        check(v.returncode == 1 and "released" in v.stderr, f"refused afterwards: {v.stderr}")


def t_internal_error():
    """A record the store cannot decode: 500 with nothing of the cause in
    the answer, the detail in the error log, and the service goes on."""
    S.ctl("user", "add", "ACME", "zed", "--unit", "HQ", input="zed-pw\n")
    if S.pg is not None:
        # A hash longer than any record holds.
        S.pg.psql(S.pg_db, "UPDATE users SET pwhash = repeat('x', 5000) WHERE name = 'zed'")
    else:
        damage_zed()
    r = expect(login("zed", "zed-pw"), 500, "INTERNAL_ERROR")
    for word in ("store", "record", "json", S.db, "zed", "postgresql", "sql"):
        check(word not in r.body.decode().lower(), f"500 answer mentions {word!r}: {r!r}")
    check("cannot be read" in S.error_log(), "the detail is in the error log")
    expect(login(), 200, "OK", "other users still log in")
    S.ctl("user", "del", "ACME", "zed")
    expect(login("zed", "zed-pw"), 401, "INVALID_CREDENTIALS", "after del")


def damage_zed():
    """LMDB: zed's record replaced by bytes that are not a record."""
    dump = subprocess.run(["mdb_dump", "-p", "-s", "users", S.db], capture_output=True,
                          text=True, check=True).stdout.splitlines()
    head = [ln for ln in dump[:dump.index("HEADER=END") + 1]
            if not ln.startswith("db_pagesize=")]  # mdb_load does not know it
    body = dump[dump.index("HEADER=END") + 1:-1]
    pairs = [(body[i], body[i + 1]) for i in range(0, len(body), 2)]
    key = [k for k, v in pairs if "\\03zed" in v]     # a binary record: length, name
    eq(len(key), 1, "zed's record")
    subprocess.run(["mdb_load", "-s", "users", S.db], check=True, text=True,
                   input="\n".join(head + [key[0], " not a record{", "DATA=END"]) + "\n")


def t_release_seen_everywhere():
    """A release through one responder is seen at once by the check method
    in other processes (a second lighttpd on the same store, and CGI) and
    by libcrmauth in a long-lived process: 100 rounds, no miss."""
    rounds = 20 if VALGRIND else 100
    with open(S.conf) as f:
        B = Lighttpd("other", conf_text=f.read(), init=False).start()
    lib = subprocess.Popen([VERIFY, "-c", S.conf, "-"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    misses = []
    try:
        def library(tok):
            lib.stdin.write(tok + "\n")
            lib.stdin.flush()
            return lib.stdout.readline().strip()

        tokens = [expect(apikey_post(K["apikey"]), 200, "OK").data["token"]
                  for _ in range(rounds)]
        bearer = {}
        for i, tok in enumerate(tokens):
            bearer = {"Authorization": f"Bearer {tok}"}
            if i == 0:
                eq(library(tok).split()[0], "ok", "the library accepts it before")
                eq(B.get("/authentication/token/check", headers=bearer).status, 200, "B before")
            eq(release(tok).status, 200, "release through the first server")
            seen = {
                "other server": B.get("/authentication/token/check", headers=bearer).code,
                "CGI": S.get("/authentication/token/check", headers=bearer,
                             prefix="/cgi-bin/crmauth.cgi").code,
                "same server": S.get("/authentication/token/check", headers=bearer).code,
                "libcrmauth": library(tok),
            }
            want = {"other server": "TOKEN_RELEASED", "CGI": "TOKEN_RELEASED",
                    "same server": "TOKEN_RELEASED", "libcrmauth": "refused released"}
            misses += [(i, k, v) for k, v in seen.items() if v != want[k]]
        print(f"  {rounds} release-then-check rounds across processes, {len(misses)} misses")
        eq(misses, [], "every process saw every release at once")
    finally:
        lib.stdin.close()
        eq(lib.wait(10), 0, "the library process exits cleanly")
        B.cleanup()


def t_library():
    """libcrmauth through its example program: usable, refused by name."""
    tok = token_for(unit="EU")
    r = subprocess.run([VERIFY, "-c", S.conf, tok], capture_output=True, text=True)
    eq(r.returncode, 0, f"usable: {r.stdout} {r.stderr}")
    c = jwt_parts(tok)[1]
    eq(r.stdout.split(), ["ok", "usr=alice", "org=ACME", "oun=EU", f"jti={c['jti']}",
                          f"exp={c['exp']}"], "the claims")
    for name, bad in list(forged_tokens().items())[:6]:
        r = subprocess.run([VERIFY, "-c", S.conf, bad], capture_output=True, text=True)
        eq((r.returncode, r.stdout.strip()), (1, "refused not a token of this service"), name)
    c2 = {"jti": "ABCDEF0123456789ABCDEF0123456789", "usr": "alice", "org": "ACME",
          "oun": "HQ", "iat": 1600000000, "exp": 1600007200}
    old = sign({"typ": "JWT", "alg": "HS256", "kid": K["kid"]}, c2, K["secret"])
    r = subprocess.run([VERIFY, "-c", S.conf, old], capture_output=True, text=True)
    eq(r.stdout.strip(), "refused expired", "expired")
    r = subprocess.run([VERIFY, "-c", S.conf + ".missing", tok], capture_output=True, text=True)
    eq(r.returncode, 1, "a missing configuration")
    check(f"{S.conf}.missing: No such file or directory" in r.stderr, r.stderr)
    # Read-only: the library never writes the store.
    unchanged(lambda: subprocess.run([VERIFY, "-c", S.conf, tok], capture_output=True))


def t_python_jwt():
    """The README's Python verifier, run as it stands with Debian's
    python3-jwt against a live token, and what it cannot see."""
    with open(os.path.join(crmtest.TOP_SRCDIR, "README.md")) as f:
        code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
    keyfile = os.path.join(S.dir, "crmauth.key")
    with open(keyfile, "w") as f:
        f.write(S.ctl("key", "export").stdout)
    tok = token_for()
    released = token_for()
    expect(release(released), 200, "OK")
    consumer = expect(consumer_post({"access_token_identifier": {"authentication_code": "CODE-1"}}),
                      200, "OK").data["token"]
    forged = forged_tokens()
    driver = code.replace("KEY_FILE", repr(keyfile)) + """
import json, sys
for t in sys.stdin.read().split():
    try:
        print(json.dumps(verify(t)))
    except jwt.InvalidTokenError as e:
        print("refused", type(e).__name__)
"""
    inp = "\n".join([tok, released, consumer, forged["alg none signed"], forged["HS512 same key"],
                     forged["another key"], forged["unknown kid"]])
    r = subprocess.run(["/usr/bin/python3", "-c", driver], input=inp, capture_output=True,
                       text=True, timeout=60)
    eq(r.returncode, 0, r.stderr)
    out = r.stdout.splitlines()
    eq(json.loads(out[0]), jwt_parts(tok)[1], "python3-jwt gives the claims")
    # Offline verification cannot know about releases: why the README
    # says to ask the check method.
    eq(json.loads(out[1]), jwt_parts(released)[1], "a released token passes offline")
    expect(S.get("/authentication/token/check", headers={"Authorization": f"Bearer {released}"}),
           401, "TOKEN_RELEASED", "the check method knows")
    eq(json.loads(out[2]), jwt_parts(consumer)[1], "python3-jwt reads a consumer token")
    eq((json.loads(out[2])["cii"], json.loads(out[2])["ari"]), ("C-1", "AR-1"), "cii and ari")
    for line in out[3:]:
        check(line.startswith("refused "), f"forgery refused by python3-jwt: {line}")


def t_admin_changes_seen_at_once():
    """crmauthctl writes while the responders run; they see it."""
    S.ctl("user", "add", "ACME", "dave", "--unit", "HQ", input="dave-pw\n")
    expect(login("dave", "dave-pw"), 200, "OK", "new user")
    S.ctl("user", "passwd", "ACME", "dave", input="dave-pw2\n")
    expect(login("dave", "dave-pw"), 401, "INVALID_CREDENTIALS", "old password")
    expect(login("dave", "dave-pw2"), 200, "OK", "new password")
    S.ctl("user", "disable", "ACME", "dave")
    expect(login("dave", "dave-pw2"), 401, "INVALID_CREDENTIALS", "disabled")
    S.ctl("user", "enable", "ACME", "dave")
    expect(login("dave", "dave-pw2"), 200, "OK", "enabled")
    key = S.ctl("apikey", "add", "ACME", "dave").stdout.strip()
    expect(apikey_post(key), 200, "OK", "dave's key")
    S.ctl("user", "del", "ACME", "dave")
    expect(login("dave", "dave-pw2"), 401, "INVALID_CREDENTIALS", "deleted")
    expect(apikey_post(key), 401, "INVALID_CREDENTIALS", "deleted user's key")


# ---- CGI mode ------------------------------------------------------------------

def t_cgi():
    cgi = "/cgi-bin/crmauth.cgi"
    r = expect(S.get("/health", prefix=cgi), 200, "OK", "CGI health")
    r = expect(S.post("/authentication/token", {"username": "alice", "password": "alice-pw",
                                                "organisation": "ACME"}, prefix=cgi),
               200, "OK", "CGI token")
    token = r.data["token"]
    eq(jwt_parts(token)[1]["usr"], "alice", "CGI claims")
    r = expect(S.post("/authentication/web_api_key/token", prefix=cgi,
                      headers={"Authorization": basic(K["apikey"])}), 200, "OK", "CGI Web API key")
    n = S.released_count()
    expect(S.post("/authentication/token/release", {"token": token}, prefix=cgi), 200, "OK")
    eq(S.released_count(), n + 1, "CGI release stored")
    expect(S.get("/nothing", prefix=cgi), 404, "NOT_FOUND", "CGI 404")
    r = expect(S.get("/authentication/token", prefix=cgi), 405, "METHOD_NOT_ALLOWED")
    eq(r.headers.get("allow"), "POST", "CGI Allow")
    expect(S.post("/authentication/token", "x" * 5000, prefix=cgi), 413, "PAYLOAD_TOO_LARGE")
    r = S.post("/authentication/web_api_key/token", prefix=cgi)
    expect(r, 401, "INVALID_CREDENTIALS", "CGI no key")
    check(r.headers.get("www-authenticate", "").startswith("Basic "), "CGI challenge")
    # A query string without '=' may reach a CGI program as argv (RFC 3875
    # §4.4); it must not be read as options.
    expect(S.get("/health?-c/etc/passwd", prefix=cgi), 200, "OK", "argv is ignored in CGI")


# ---- other servers: pruning, broken configuration, no store ---------------------

def t_pruning():
    # token_ttl leaves room for slow runs (valgrind on a busy machine)
    # before the sleeps.
    P = Lighttpd("prune", procs=1, conf_extra="token_ttl = 8\n").start()
    try:
        P.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="pw\n")
        key = P.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        toks = [P.key_token(key) for _ in range(5)]
        c = jwt_parts(toks[0])[1]
        eq(c["exp"] - c["iat"], 8, "short token_ttl")
        for t in toks:
            eq(P.post("/authentication/token/release", {"token": t}).status, 200, "release")
        eq(P.released_count(), 5, "five kept")
        time.sleep(max(0, c["exp"] - time.time()) + 1.1)
        # The next write prunes what has passed its exp.
        fresh = P.key_token(key)
        eq(P.post("/authentication/token/release", {"token": fresh}).status, 200, "release")
        eq(P.released_count(), 1, "expired releases pruned by the write")
        time.sleep(max(0, jwt_parts(fresh)[1]["exp"] - time.time()) + 1.1)
        eq(P.ctl("released", "prune").stdout.strip(), "pruned 1", "crmauthctl released prune")
        eq(P.released_count(), 0, "empty after prune")
    finally:
        P.cleanup()


def t_key_rotation():
    """Tokens of the old key keep working across a rotation until they
    expire; then the old key is deleted by the next write."""
    R = Lighttpd("rotate", procs=2, conf_extra="token_ttl = 10\n").start()
    try:
        R.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="pw\n")

        def check_status(tok):
            r = R.get("/authentication/token/check", headers={"Authorization": f"Bearer {tok}"})
            return r.status, r.code
        old_kid = R.ctl("key", "list").stdout.split()[0]
        a, released = (R.login_token("alice", "pw") for _ in range(2))
        eq(jwt_parts(a)[0]["kid"], old_kid, "signed by the first key")
        out = R.ctl("key", "rotate").stdout
        keys = [ln.split("\t") for ln in R.ctl("key", "list").stdout.splitlines()]
        eq(len(keys), 2, f"two keys: {keys}")
        new_kid = [k[0] for k in keys if k[2] == "current"][0]
        check(new_kid != old_kid, "a new current key")
        prev = [k for k in keys if k[0] == old_kid][0]
        eq(prev[2], "previous", "the old key is previous")
        check(prev[3] != "-" and f"{old_kid} verifies until {prev[3]}" in out, out)
        b = R.login_token("alice", "pw")
        eq(jwt_parts(b)[0]["kid"], new_kid, "new tokens carry the new kid")
        eq(R.ctl("key", "export").stdout.split()[0], new_kid, "export gives the current key")
        # Across the rotation the old key's tokens still work, in every process.
        for _ in range(4):
            eq(check_status(a), (200, "OK"), "old-key token after rotation")
            eq(check_status(b), (200, "OK"), "new-key token")
        eq(R.post("/authentication/token/release", {"token": released}).status, 200,
           "an old-key token can be released")
        eq(check_status(released), (401, "TOKEN_RELEASED"), "and stays released")
        # Past the old key's expiry (rotation + token_ttl), and so past
        # every token it signed: the key verifies nothing from then on,
        # before any write has deleted it.
        until = calendar.timegm(time.strptime(prev[3], "%Y-%m-%dT%H:%M:%SZ"))
        time.sleep(max(0, until - time.time()) + 1.2)
        eq(check_status(a), (401, "INVALID_TOKEN"), "old key verifies nothing")
        eq(len(R.ctl("key", "list").stdout.splitlines()), 2, "not yet deleted")
        # The next write deletes the old key.
        r = R.post("/authentication/token/release", {"token": R.login_token("alice", "pw")})
        eq(r.status, 200, "a write")
        keys = R.ctl("key", "list").stdout.splitlines()
        eq(len(keys), 1, f"the old key is gone: {keys}")
        check(keys[0].startswith(new_kid + "\t") and "\tcurrent\t-" in keys[0], keys)
        eq(check_status(a), (401, "INVALID_TOKEN"), "old key unknown after deletion")
        v = R.verify(a)
        eq(v.returncode, 1, "crmauthctl refuses it too")
    finally:
        R.cleanup()


THROTTLE_WINDOW = 20   # long enough for the steps under valgrind on a busy machine


def t_throttle():
    """README.md "Throttling failed attempts", with lockout_threshold 3,
    lockout_account_threshold 8, lockout_window 20 s.  Addresses are
    127.0.0.x: the server sees them as REMOTE_ADDR."""
    T = Lighttpd("throttle", procs=2, lockout="lockout_threshold = 3\n"
                 f"lockout_account_threshold = 8\nlockout_window = {THROTTLE_WINDOW}\n").start()
    try:
        T.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="right\n")
        key = T.ctl("apikey", "add", "ACME", "alice").stdout.strip()

        def login(pw, src, user="alice"):
            return T.post("/authentication/token",
                          {"username": user, "password": pw, "organisation": "ACME"},
                          source=src)
        # Guessing from one address is stopped, before the password is
        # even checked: the right password gets 429 there too.
        for i in range(3):
            expect(login(f"guess{i}", "127.0.0.10"), 401, "INVALID_CREDENTIALS", f"guess {i}")
        locked = expect(login("right", "127.0.0.10"), 429, "TOO_MANY_ATTEMPTS", "locked pair")
        retry = int(locked.headers["retry-after"])
        check(1 <= retry <= THROTTLE_WINDOW, f"Retry-After {retry}")
        # The real user, from another address, still logs in.
        expect(login("right", "127.0.0.11"), 200, "OK", "another address")
        # An unknown user is counted and locked the same way, and the
        # locked answer is the same bytes.
        for i in range(3):
            expect(login(f"guess{i}", "127.0.0.10", "nobody"), 401, "INVALID_CREDENTIALS",
                   "unknown user")
        r = expect(login("x", "127.0.0.10", "nobody"), 429, "TOO_MANY_ATTEMPTS", "unknown")
        eq(r.body, locked.body, "a locked answer reveals nothing")
        # A success clears only its own pair: two failures, a success, two
        # more failures and no lockout from that address.
        for pw in ("bad1", "bad2", "right", "bad3", "bad4"):
            r = login(pw, "127.0.0.12")
            eq(r.status, 200 if pw == "right" else 401, f"{pw} from .12")
        expect(login("right", "127.0.0.12"), 200, "OK", "the pair was cleared by the success")
        # 3 + 4 failures so far (successes give their count back); the
        # 8th locks the account for every new address...
        expect(login("bad5", "127.0.0.14"), 401, "INVALID_CREDENTIALS", "the 8th failure")
        expect(login("right", "127.0.0.13"), 429, "TOO_MANY_ATTEMPTS", "account locked")
        # ... but not for one it was used from successfully.
        expect(login("right", "127.0.0.11"), 200, "OK", "a trusted address")
        # crmauthctl lock list shows the locks in force: the account,
        # the pairs that reached the threshold, the unknown user's too.
        locks = [ln.split("\t")[:5] for ln in T.ctl("lock", "list").stdout.splitlines()]
        for want in (["user", "ACME", "alice", "*", "8"],
                     ["user", "ACME", "alice", "127.0.0.10", "3"],
                     ["user", "ACME", "nobody", "127.0.0.10", "3"]):
            check(want in locks, f"lock list has {want}: {locks}")
        # crmauthctl user unlock clears the account and all its pairs.
        T.ctl("user", "unlock", "ACME", "alice")
        expect(login("right", "127.0.0.10"), 200, "OK", "after unlock, the locked address")
        # Web API keys: the same bad key from one address is locked...
        for i in range(3):
            r = T.post("/authentication/web_api_key/token",
                       headers={"Authorization": basic("F" * 32)}, source="127.0.0.20")
            eq(r.status, 401, "bad key")
        r = T.post("/authentication/web_api_key/token",
                   headers={"Authorization": basic("F" * 32)}, source="127.0.0.20")
        expect(r, 429, "TOO_MANY_ATTEMPTS", "bad key locked")
        check("retry-after" in r.headers, "Retry-After")
        # ... while a good key from that address is its own account.
        expect(T.post("/authentication/web_api_key/token",
                      headers={"Authorization": basic(key)}, source="127.0.0.20"),
               200, "OK", "good key")
        # The window passes: the lockout ends by itself (held attempts are
        # not counted, so asking meanwhile changes nothing).
        r = wait_for(lambda: (lambda r: r if r.status != 429 else None)(
            login("right", "127.0.0.13")), THROTTLE_WINDOW + 30, "the account's window to pass",
            interval=0.5)
        expect(r, 200, "OK", "after the window")
        r = wait_for(lambda: (lambda r: r if r.status != 429 else None)(
            T.post("/authentication/web_api_key/token",
                   headers={"Authorization": basic("F" * 32)}, source="127.0.0.20")),
            THROTTLE_WINDOW + 30, "the key's window to pass", interval=0.5)
        expect(r, 401, "INVALID_CREDENTIALS", "key window over")
        # The locks are over, and lock list says so.
        eq(T.ctl("lock", "list").stdout, "", "no lock in force")
    finally:
        T.cleanup()


def t_backup_restore():
    """backup while serving under load; restore refused while serving,
    then done with the service stopped: users and releases come back,
    later changes go, and later releases are kept."""
    B = Lighttpd("backup", procs=2).start()
    try:
        B.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="alice-pw\n")
        key = B.ctl("apikey", "add", "ACME", "alice").stdout.strip()

        def check_code(t):
            return B.get("/authentication/token/check",
                         headers={"Authorization": f"Bearer {t}"}).code
        before, after, kept = (B.key_token(key) for _ in range(3))
        eq(B.post("/authentication/token/release", {"token": before}).status, 200, "release")
        # Backup in the middle of concurrent logins and releases.
        stop = threading.Event()
        errors = []

        def load():
            while not stop.is_set():
                t = B.key_token(key)
                r = B.post("/authentication/token/release", {"token": t})
                if r.status != 200:
                    errors.append(r)
        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        backup = os.path.join(B.dir, "crmauth.backup")
        try:
            out = B.ctl("backup", backup).stdout
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        eq(errors, [], "service undisturbed by the backup")
        check("written to" in out, out)
        eq(oct(os.stat(backup).st_mode & 0o777), "0o600", "the backup holds keys: 0600")
        # Changes after the backup.
        B.ctl("user", "add", "ACME", "bob", "--unit", "HQ", input="bob-pw\n")
        eq(B.post("/authentication/token/release", {"token": after}).status, 200, "later release")
        r = B.ctl("restore", backup, check=False)
        eq(r.returncode, 1, "restore while serving is refused")
        check("is in use (still after 2 s): stop the service" in r.stderr, r.stderr)
        B.stop()
        r = B.ctl("restore", backup)
        check("restored from" in r.stdout, r.stdout)
        bad = os.path.join(B.dir, "not-a-backup")
        with open(bad, "w") as f:
            f.write("junk\n")
        r = B.ctl("restore", bad, check=False)
        eq(r.returncode, 1, "a file that is no backup")
        check("is not a crmauth store backup" in r.stderr, r.stderr)
        B.start()
        r = B.post("/authentication/token",
                   {"username": "alice", "password": "alice-pw", "organisation": "ACME"})
        eq(r.status, 200, "alice, from the backup, logs in")
        r = B.post("/authentication/token",
                   {"username": "bob", "password": "bob-pw", "organisation": "ACME"})
        eq(r.status, 401, "bob came after the backup: gone")
        eq(check_code(before), "TOKEN_RELEASED", "released before the backup: still released")
        eq(check_code(after), "TOKEN_RELEASED", "released after the backup: kept released")
        eq(check_code(kept), "OK", "never released: usable")
        eq(B.get("/health").status, 200, "the restored store serves")
    finally:
        B.cleanup()


def t_map_full():
    """A 1 MiB map that may grow to 2: crmauthctl grows it while the
    responders run (they follow, MDB_MAP_RESIZED), then releases fill it:
    503 SERVICE_UNAVAILABLE with Retry-After, nothing half-written, and
    every release that was answered 200 holds."""
    M = Lighttpd("mapfull", procs=2, conf_extra="db_map_size_mb = 1\ndb_map_max_mb = 2\n").start()
    try:
        key = None
        M.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="pw\n")
        key = M.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        eq(M.get("/health").status, 200, "responders up on the 1 MiB map")
        # Big users from crmauthctl: past 1 MiB, so the map grows under
        # the running responders.
        units = []
        for i in range(32):
            units += ["--unit", f"{i:02d}" + "u" * 200]
        n = 0
        while n < 400:
            r = M.ctl("user", "add", "BIG", f"user{n}", *units, input="pw\n", check=False)
            if r.returncode != 0:
                check("store is full" in r.stderr, r.stderr)
                break
            n += 1
        check(n > 130, f"the map grew past 1 MiB ({n} big users)")
        # The responders follow the grown map, then fill the rest.
        released, full = [], None
        for i in range(3000):
            t = M.post("/authentication/web_api_key/token", headers={"Authorization": basic(key)})
            eq(t.status, 200, "tokens come from reads")
            r = M.post("/authentication/token/release", {"token": t.data["token"]})
            if r.status == 503:
                full = r
                break
            eq(r.status, 200, f"release {i}: {r!r}")
            released.append(t.data["token"])
        check(full is not None, "the map filled up")
        eq(full.code, "SERVICE_UNAVAILABLE", "503 code")
        check("retry-after" in full.headers, "Retry-After")
        check("full" in full.message, full.message)
        eq(M.get("/health").status, 200, "reads still answer")
        eq(M.released_count(), len(released), "every acknowledged release is kept, no more")
        for t in released[::max(1, len(released) // 20)] + released[-3:]:
            r = M.get("/authentication/token/check", headers={"Authorization": f"Bearer {t}"})
            eq(r.code, "TOKEN_RELEASED", "an acknowledged release holds")
        check("store is full" in M.error_log() or "MDB_MAP_FULL" in M.error_log(),
              "the log says why")
    finally:
        M.cleanup()


def t_disk_full():
    """The store on a 2 MiB tmpfs of the test's own, filled up: 503 with
    Retry-After, no corruption, and normal service once space is back."""
    D = Lighttpd("diskfull", procs=2, init=False,
                 conf_extra="db_map_size_mb = 1\ndb_map_max_mb = 64\n")
    disk = os.path.join(D.dir, "disk")
    os.makedirs(disk)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", disk],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"this test mounts a tmpfs and needs root: {r.stderr}")
    try:
        with open(D.conf) as f:
            conf = f.read().replace(f"db_path = {D.db}", f"db_path = {disk}/db")
        with open(D.conf, "w") as f:
            f.write(conf)
        D.db = os.path.join(disk, "db")
        D.ctl("init")
        D.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="pw\n")
        key = D.ctl("apikey", "add", "ACME", "alice").stdout.strip()
        D.start()
        # Leave almost nothing free.
        filler = os.path.join(disk, "filler")
        st = os.statvfs(disk)
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 32768))
        released, full = [], None
        for _ in range(5000):
            t = D.key_token(key)
            r = D.post("/authentication/token/release", {"token": t})
            if r.status != 200:
                full = r
                break
            released.append(t)
        check(full is not None, "the disk filled up")
        expect(full, 503, "SERVICE_UNAVAILABLE", "disk full")
        check("full" in full.message, full.message)
        check("retry-after" in full.headers, "Retry-After")
        eq(D.get("/health").status, 200, "reads go on")
        log = D.error_log()
        check("No space left on device" in log or "is the disk full?" in log,
              f"the log says why: {log[-600:]}")
        # Space comes back: service as normal, nothing lost or corrupt.
        os.unlink(filler)
        t = D.key_token(key)
        expect(D.post("/authentication/token/release", {"token": t}), 200, "OK", "space back")
        released.append(t)
        eq(D.released_count(), len(released), "every acknowledged release, no other")
        for t in released[::max(1, len(released) // 10)] + released[-2:]:
            eq(D.get("/authentication/token/check",
                     headers={"Authorization": f"Bearer {t}"}).code, "TOKEN_RELEASED", "holds")
        D.stop()
        out = subprocess.run(["mdb_stat", "-a", D.db], capture_output=True, text=True)
        eq(out.returncode, 0, f"the store reads whole: {out.stderr}")
    finally:
        D.stop()
        subprocess.run(["umount", disk])
        D.cleanup()


def t_bad_starts():
    """A store the responders cannot open, or one from a newer crmauth:
    one clear line in the log, 503 to the client, the same words from
    crmauthctl."""
    W = Lighttpd("badstart", procs=1, user=crmtest.RUN_USER)
    try:
        W.start()
        eq(W.get("/health").status, 200, "healthy first")
        W.stop()
        if crmtest.RUN_USER and W.pg is None:
            os.chmod(W.db, 0)        # the responders run as www-data
            W.start()
            r = expect(W.get("/health"), 503, "SERVICE_UNAVAILABLE", "unreadable store")
            check("retry-after" in r.headers, "Retry-After")
            expect(W.get("/health"), 503, "SERVICE_UNAVAILABLE", "again")
            # (And one line per process from the metrics, whose file is
            # in the same directory.)
            lines = [ln for ln in W.error_log().splitlines() if "Permission denied" in ln
                     and "metrics:" not in ln]
            eq(len(lines), 1, f"one line, not one per request: {lines}")
            check(W.db in lines[0], lines[0])
            v = W.ctl("released", "count", check=False)
            eq(v.returncode, 1, "crmauthctl fails too")
            check("Permission denied" in v.stderr and v.stderr.count("\n") == 1, v.stderr)
            W.stop()
            os.chmod(W.db, 0o700)
        # A schema version from the future.
        if W.pg is not None:
            W.pg.psql(W.pg_db, "UPDATE meta SET value = '99' WHERE name = 'schema'")
        else:
            dump = subprocess.run(["mdb_dump", "-p", "-s", "meta", W.db], capture_output=True,
                                  text=True, check=True).stdout.splitlines()
            i = dump.index(" schema")
            dump[i + 1] = " 99"
            dump = [ln for ln in dump if not ln.startswith("db_pagesize=")]
            subprocess.run(["mdb_load", "-s", "meta", W.db], input="\n".join(dump) + "\n",
                           text=True, check=True)
        W.start()
        expect(W.get("/health"), 503, "SERVICE_UNAVAILABLE", "newer schema")
        check("made by a newer crmauth" in W.error_log(), W.error_log()[-500:])
        v = W.ctl("user", "list", check=False)
        eq((v.returncode, v.stderr.strip()),
           (1, f"crmauthctl: {W.where()}: store was made by a newer crmauth (schema version): "
                  "run that version, or restore the backup taken before it"),
           "crmauthctl says the same")
    finally:
        if os.path.exists(W.db):
            os.chmod(W.db, 0o700)
        W.cleanup()


def t_bad_config():
    B = Lighttpd("badconf", procs=1, init=False,
               conf_text="token_ttl = 60\nno_such_key = 1\n").start()
    try:
        r = expect(B.get("/health"), 503, "SERVICE_UNAVAILABLE")
        check("retry-after" in r.headers, "Retry-After")
        check("crmauth.conf" not in r.body.decode(), "no path in the answer")
        log = B.error_log()
        check(f"{B.conf}:2: unknown key \"no_such_key\"" in log, f"error log: {log[-2000:]}")
        v = B.ctl("released", "count", check=False)
        eq(v.returncode, 1, "crmauthctl fails")
        eq(v.stderr.strip(), f"crmauthctl: {B.conf}:2: unknown key \"no_such_key\"", "one line")
    finally:
        B.cleanup()


def t_no_store():
    N = Lighttpd("nostore", procs=1, init=False).start()
    try:
        r = expect(N.get("/health"), 503, "SERVICE_UNAVAILABLE")
        check("retry-after" in r.headers, "Retry-After")
        check(N.db not in r.body.decode(), "no path in the answer")
        expect(N.post("/authentication/token", {"username": "a", "password": "b",
                                                "organisation": "c"}),
               503, "SERVICE_UNAVAILABLE")
        check(not os.path.exists(os.path.join(N.db, "data.mdb")), "serving made no store")
        if N.pg is not None:
            eq(N.pg.psql(N.pg_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
               "0\n", "serving made no tables")
        line = f"{N.where()}: store not initialised (run crmauthctl init)"
        check(line in N.error_log(), f"the log says: {N.error_log()[-300:]}")
        v = N.ctl("released", "count", check=False)
        eq((v.returncode, v.stderr.strip()), (1, f"crmauthctl: {line}"), "crmauthctl says the same")
        # Made after start: picked up without a restart.
        N.ctl("init")
        expect(N.get("/health"), 200, "OK", "store made later")
    finally:
        N.cleanup()


def t_ctl_usage():
    for args, code in ((("bogus",), 2), (("user",), 2), (("user", "add", "ACME"), 2),
                       (("user", "add", "ACME", "x"), 2), (("--nope",), 2),
                       (("user", "list", "a", "b"), 2), (("apikey", "revoke", "00"), 2),
                       (("apikey", "revoke", "0011223344556677"), 1),
                       (("user", "del", "ACME", "ghost"), 1),
                       (("lock", "clear", "nobody", "x"), 2), (("key", "retire", "x"), 2),
                       (("key", "retire", "0011223344556677"), 1)):
        r = S.ctl(*args, check=False)
        eq(r.returncode, code, f"crmauthctl {args}: {r.stderr}")
        check(r.stderr.startswith("crmauthctl: "), f"message: {r.stderr!r}")
    r = S.ctl("user", "add", "ACME", "eve", "--unit", "HQ", input="", check=False)
    eq(r.returncode, 1, "empty stdin password")
    # A name a token could not carry: not UTF-8 (byte 0xff).
    r = S.ctl("user", "add", "ACME", "eve\udcff", "--unit", "HQ", input="x\n", check=False)
    eq((r.returncode, r.stderr.splitlines()[0]), (2, "crmauthctl: user must be UTF-8"),
       "not UTF-8")
    r = S.ctl("--help", check=False)
    eq(r.returncode, 0, "--help")
    check("access-token add" in r.stdout, "help lists commands")
    r = S.ctl("--version", check=False)
    eq(r.returncode, 0, "--version")
    check(re.fullmatch(r"crmauthctl \d+\.\d+\.\d+\n", r.stdout), f"--version: {r.stdout!r}")
    listing = S.ctl("apikey", "list", "ACME").stdout
    check(K["apikey"] not in listing, "apikey list never prints whole keys")
    S.ctl("user", "add", "ACME", "alice", "--unit", "HQ", input="x\n", check=False)
    users = S.ctl("user", "list", "ACME").stdout.splitlines()
    check(any(u.startswith("ACME\talice\tHQ,EU\tenabled\t") for u in users), users)
    check(all(u.startswith("ACME\t") for u in users), "list filters by org")


def t_fcgi_check_mode():
    """crmauth.fcgi -t from a terminal: the configuration and the store."""
    from crmtest import FCGI
    r = subprocess.run([FCGI, "-t", "-c", S.conf], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=30)
    eq(r.returncode, 0, f"-t on a good setup: {r.stderr}")
    check(f"store {S.db}: ok" in r.stdout, r.stdout)
    r = subprocess.run([FCGI, "-t", "-c", S.conf + ".missing"], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=30)
    eq(r.returncode, 1, "-t with a missing config")
    check(f"{S.conf}.missing: No such file or directory" in r.stderr, r.stderr)
    for flag in ("-V", "--version"):
        r = subprocess.run([FCGI, flag], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
        eq(r.returncode, 0, f"{flag}: {r.stderr}")
        check(re.fullmatch(r"crmauth\.fcgi \d+\.\d+\.\d+\n", r.stdout), f"{flag}: {r.stdout!r}")
    for flag in ("-h", "--help"):
        r = subprocess.run([FCGI, flag], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
        eq(r.returncode, 0, f"{flag}: {r.stderr}")
        check(r.stdout.startswith("usage: crmauth.fcgi") and "--version" in r.stdout,
              f"{flag}: {r.stdout!r}")
    r = subprocess.run([FCGI], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=30, env={"PATH": os.environ.get("PATH", "")})
    eq(r.returncode, 2, "no web server, no -t: usage")
    check(r.stderr.startswith("usage: crmauth.fcgi"), r.stderr)


def suite_secrets():
    """Every password, pass code, key and authentication code this suite
    used, and a few tokens."""
    secrets = ["alice-pw", "bob-pw", "other-pw", "dave-pw", "dave-pw2", "pc-73519", "CODE-1",
               "zed-pw", K["apikey"], K["apikey_bob"], K["apikey_revoked"], K["ck"],
               K["ck_revoked"], K["ck_other"]]
    return secrets


def t_store_has_no_secrets():
    dump = S.dump() + S.raw_dump()
    for secret in suite_secrets():
        # As text, as hex of the text, and (for keys, which are hex) as the
        # raw bytes a hex dump would show in lower case.
        for form in (secret.encode(), secret.encode().hex().encode(),
                     secret.lower().encode()):
            check(form not in dump, f"{secret!r} is in the store ({form[:16]!r})")
    check(b"$argon2id$" in dump, "passwords are there as argon2id hashes")


def t_store_modes():
    """LMDB: the store's files; PostgreSQL: db_path holds this node's
    wrap.key, which seals the signing keys in the database."""
    files, shared_mode = (("wrap.key",), "0o640") if S.pg else (("data.mdb", "lock.mdb"), "0o660")
    eq(oct(os.stat(S.db).st_mode & 0o7777), "0o700", "store directory")
    for f in files:
        eq(oct(os.stat(os.path.join(S.db, f)).st_mode & 0o777), "0o600", f)
    shared = os.path.join(S.dir, "shared")
    conf = os.path.join(S.dir, "shared.conf")
    with open(conf, "w") as f:
        f.write(f"db_path = {shared}\n")
        if S.pg:
            f.write("store = postgresql\n"
                    f"pg_conninfo = {S.pg.conninfo(S.pg.createdb('shared'))}\n")
    S.ctl("init", "--group", "www-data", conf=conf)
    st = os.stat(shared)
    eq(oct(st.st_mode & 0o7777), "0o2770", "shared store directory")
    eq(st.st_gid, grp.getgrnam("www-data").gr_gid, "its group")
    for f in files:
        st = os.stat(os.path.join(shared, f))
        eq((oct(st.st_mode & 0o777), st.st_gid), (shared_mode, grp.getgrnam("www-data").gr_gid),
           f)
    r = S.ctl("init", "--group", "no-such-group-here", conf=conf, check=False)
    eq((r.returncode, r.stderr.strip()), (1, "crmauthctl: no group no-such-group-here"), "bad group")


def t_logs_have_no_secrets():
    # The last test: every process that could write is stopped first.
    S.stop()
    log = S.error_log()
    check(log, "there is a log to read")
    events = S.audit_text()
    check(events.count("\n") > 50, "there are events to read")
    for secret in suite_secrets():
        check(secret not in log, f"{secret!r} is in the error log")
        if secret == "CODE-1":
            # t_consumer_401 sends it once as an identifier: a name, which
            # events name as sent (README, "Authentication events").
            check(events.count('"identifier":"CODE-1"') == events.count("CODE-1"),
                  "CODE-1 is in the audit log other than as a name")
            continue
        check(secret not in events, f"{secret!r} is in the audit log")
    check(not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", log), "a token is in the error log")
    check(not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", events), "a token is in the audit log")


# What the suite does not run on PostgreSQL, and where that is covered.
LMDB_ONLY = {
    t_backup_restore: "PostgreSQL: pg_dump, or export/import in pg.py",
    t_map_full: "an LMDB map size",
    t_disk_full: "LMDB's files on a small disk; pg.py stops the database instead",
}


def main():
    global S
    run = Runner("e2e" + ("-valgrind" if VALGRIND else ""))
    S = Lighttpd("main").start()
    try:
        setup()
        tests = [
            ("health answers 200 when the store reads", t_health),
            ("404 for anything not mounted", t_not_found),
            ("a trailing slash is tolerated", t_trailing_slash),
            ("405 with Allow", t_method_not_allowed),
            ("413 before reading the body", t_payload_too_large),
            ("415 for bodies that are not JSON", t_unsupported_media_type),
            ("400 for bodies that are not a JSON object", t_bad_bodies),
            ("400 names the missing or wrong field", t_missing_and_wrong_fields),
            ("every input limit, each with its answer", t_limits),
            ("token: claims, header, two hours", t_token),
            ("token: unit chosen, or 403", t_token_unit),
            ("token: every credential failure is the same 401", t_identical_401),
            ("Web API key: token for the key's user", t_web_api_key),
            ("Web API key: 401 with WWW-Authenticate", t_web_api_key_401),
            ("consumer key + authentication code", t_consumer_code),
            ("consumer key + identifier and pass code", t_consumer_identifier),
            ("consumer: every failure is the same 401", t_consumer_401),
            ("consumer: 400 names the incomplete identifier", t_consumer_400),
            ("release: 200, data null, refused after, idempotent", t_release),
            ("release: Web API key and consumer tokens", t_release_web_api_key_and_consumer_tokens),
            ("release and verify refuse forged tokens", t_release_forged),
            ("release of an expired token succeeds, stores nothing", t_release_expired_is_ok),
            ("check: claims for a good token, no write, RFC 6750 challenges", t_check),
            ("check: forged, expired, released are refused by name", t_check_refusals),
            ("8 clients, 80 releases, 2 responders", t_concurrent_releases),
            ("admin changes are seen by running responders", t_admin_changes_seen_at_once),
            ("libcrmauth: claims, refusals, read-only", t_library),
            ("README's python3-jwt verifier against a live token", t_python_jwt),
            ("release seen at once by other processes and libcrmauth", t_release_seen_everywhere),
            ("500 tells nothing of its cause", t_internal_error),
            ("CGI mode through mod_cgi", t_cgi),
            ("crmauthctl: usage errors exit 2, failures 1", t_ctl_usage),
            ("crmauth.fcgi -t checks config and store", t_fcgi_check_mode),
            ("released ids are pruned after exp", t_pruning),
            ("key rotation: old tokens verify until they expire", t_key_rotation),
            ("throttling: per address and account, unlock, window", t_throttle),
            ("backup while serving; restore keeps users and releases", t_backup_restore),
            ("a broken config: 503 and file:line in the log", t_bad_config),
            ("bad starts: unreadable store, newer schema: 503, one line", t_bad_starts),
            ("a full map: growth followed, then 503, nothing half-written", t_map_full),
            ("a full disk: 503, no corruption, service when space is back", t_disk_full),
            ("no store: 503; picked up once made", t_no_store),
            ("store: directory 0700, files 0600; --group 02770, 0660", t_store_modes),
            ("store: no password, pass code, key or code in a dump", t_store_has_no_secrets),
            ("error and audit logs: no secret, no token, after the whole suite",
             t_logs_have_no_secrets),
        ]
        only = os.environ.get("E2E_ONLY")
        for name, fn in tests:
            if only and only not in name:
                continue
            if S.pg is not None and fn in LMDB_ONLY:
                print(f"-    {name}: LMDB only ({LMDB_ONLY[fn]})")
                continue
            run.run(name, fn)
    finally:
        S.cleanup()
    if VALGRIND:
        if crmtest.VALGRIND_PROBLEMS:
            print("valgrind found problems:\n" + "\n".join(crmtest.VALGRIND_PROBLEMS))
            run.failed += 1
        else:
            print("valgrind: no errors, no leaks in any responder process")
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
