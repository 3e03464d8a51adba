"""What the shared-hosting suites (bundle.py: chrooted CGI; suexec.py:
behind a real suEXEC) both check: every method, answered as the e2e
suite checks answers, whatever carries the request."""
import hashlib
import hmac
import re
import time

from crmtest import basic, b64url, jwt_parts, eq, check, expect

# The records every_method() expects: made by crmauthctl as the suites do.
PASSWORD = "alice-pw-1"
CODE = "CODE-1-secret"
PASS_CODE = "pc-73519"


def make_records(ctl, K, org="ACME"):
    """ctl(*args, input=None) runs crmauthctl and gives its stdout (str).
    Fills K with the organisation, the keys and the signing key."""
    K["org"] = org
    ctl("user", "add", org, "alice", "--unit", "HQ", "--unit", "EU", input=PASSWORD + "\n")
    K["apikey"] = ctl("apikey", "add", org, "alice").strip()
    K["ck"] = ctl("consumer-key", "add", org, "shop", "--unit", "HQ",
                  "--unit", "STORE").strip()
    ctl("access-token", "add", org, "--contact", "C-1", "--accounts-receivable", "AR-1",
        "--authentication-code", input=CODE + "\n")
    ctl("access-token", "add", org, "--contact", "C-2", "--identifier", "card-2",
        input=PASS_CODE + "\n")
    for k in ("apikey", "ck"):
        check(re.fullmatch(r"[0-9A-F]{32}", K[k]), f"{k}: 32 upper-case hex")
    kid, secret = ctl("key", "export").split()
    K["kid"], K["secret"] = kid, secret


def check_token(K, tok, usr, org, oun, extra=None):
    """As the e2e suite checks a token: header, claims, two hours, and the
    signature under the signing key crmauthctl exports."""
    import base64
    check(len(tok) > 32, "token longer than 32 characters")
    h, c = jwt_parts(tok)
    eq(h, {"typ": "JWT", "alg": "HS256", "kid": K["kid"]}, "header")
    eq(set(c), {"jti", "usr", "org", "oun", "iat", "exp"} | set(extra or {}), "claims")
    eq((c["usr"], c["org"], c["oun"]), (usr, org, oun), "usr org oun")
    for k, v in (extra or {}).items():
        eq(c[k], v, k)
    check(isinstance(c["iat"], int) and abs(c["iat"] - time.time()) < 60, "iat is now")
    eq(c["exp"] - c["iat"], 7200, "two hours")
    check(re.fullmatch(r"[0-9A-F]{32}", c["jti"]), "jti: 32 upper-case hex")
    secret = base64.urlsafe_b64decode(K["secret"] + "=" * (-len(K["secret"]) % 4))
    signing_input, _, sig = tok.rpartition(".")
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    eq(sig, b64url(mac), "HS256 signature under the exported key")
    return c


def every_method(req, K, what=""):
    """req(method, path, body=None, headers=None) -> Response.  All three
    token methods, check, release, health; K as make_records left it.
    Returns the released login token."""
    org = K["org"]
    r = expect(req("GET", "/health"), 200, "OK", f"{what} health")
    eq(r.body, b'{"data":{"status":"ok"},"status":{"code":"OK","description":"",'
       b'"message":""}}', f"{what} health body")
    r = expect(req("POST", "/authentication/token",
                   {"username": "alice", "password": PASSWORD, "organisation": org}),
               200, "OK", f"{what} password token")
    eq(r.json["status"], {"code": "OK", "description": "", "message": ""}, "status")
    login = r.data["token"]
    check_token(K, login, "alice", org, "HQ")
    expect(req("POST", "/authentication/token",
               {"username": "alice", "password": "no", "organisation": org}),
           401, "INVALID_CREDENTIALS", f"{what} wrong password")
    r = expect(req("POST", "/authentication/web_api_key/token", {"unit": "EU"},
                   headers={"Authorization": basic(K["apikey"])}), 200, "OK",
               f"{what} key token")
    check_token(K, r.data["token"], "alice", org, "EU")
    r = expect(req("POST", "/authentication/web_api_key/token", b""), 401,
               "INVALID_CREDENTIALS", f"{what} no Authorization")
    eq(r.headers.get("www-authenticate"), 'Basic realm="crmauth", charset="UTF-8"',
       f"{what} challenge")
    r = expect(req("POST", "/authentication/consumer_application_key/token",
                   {"access_token_identifier": {"authentication_code": CODE}},
                   headers={"Authorization": basic(K["ck"])}), 200, "OK",
               f"{what} code token")
    consumer = r.data["token"]
    check_token(K, consumer, "shop", org, "HQ", {"cii": "C-1", "ari": "AR-1"})
    r = expect(req("POST", "/authentication/consumer_application_key/token",
                   {"access_token_identifier": {"identifier": "card-2", "pass_code": PASS_CODE},
                    "unit": "STORE"},
                   headers={"Authorization": basic(K["ck"])}), 200, "OK",
               f"{what} pass code token")
    check_token(K, r.data["token"], "shop", org, "STORE", {"cii": "C-2"})
    r = expect(req("GET", "/authentication/token/check",
                   headers={"Authorization": f"Bearer {consumer}"}), 200, "OK",
               f"{what} check")
    eq(r.data, jwt_parts(consumer)[1], f"{what} check gives the claims")
    expect(req("POST", "/authentication/token/check", {"token": login}), 200, "OK",
           f"{what} check by body")
    r = expect(req("POST", "/authentication/token/release", {"token": login}), 200, "OK",
               f"{what} release")
    eq(r.data, None, "release data")
    r = expect(req("GET", "/authentication/token/check",
                   headers={"Authorization": f"Bearer {login}"}), 401, "TOKEN_RELEASED",
               f"{what} check after release")
    eq(r.headers.get("www-authenticate"), 'Bearer error="invalid_token"', f"{what} challenge")
    expect(req("POST", "/authentication/token/release", {"token": login}), 200, "OK",
           f"{what} release again")
    # Another signature: its second-last character changed (the old
    # "AA" ending was the token itself once in 1,024 runs).
    forged = login[:-2] + ("A" if login[-2] != "A" else "B") + login[-1]
    expect(req("POST", "/authentication/token/release", {"token": forged}),
           401, "INVALID_TOKEN", f"{what} release of a forged token")
    return login
