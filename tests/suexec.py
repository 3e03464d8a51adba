"""The shared-hosting bundle behind a real suEXEC (Debian's
apache2-suexec-pristine), as a host runs it: a real unprivileged user
who follows the bundle's README word for word over "SSH" (a shell as
that user), then Apache runs crmauth.cgi as that user under mod_cgid
with mod_userdir (/~user/cgi-bin/crmauth.cgi) and under mod_fcgid with
SuexecUserGroup (a virtual host whose DocumentRoot is ~/public_html).
Nothing in the environment tells crmauth where its configuration is:
suEXEC passes no SetEnv variable and no HOME.

The user, its home under /var/www (suEXEC's document root) and the lines
added to suEXEC's log are removed at the end."""
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crmtest import (Runner, Endpoint, APACHE, APACHE_MODULES, free_port,  # noqa: E402
                     wait_for, eq, check, expect)
import hosting  # noqa: E402

TARBALL = os.environ["SH_TARBALL"]
SUEXEC = "/usr/lib/apache2/suexec"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
SUEXEC_LOG = "/var/log/apache2/suexec.log"
README_PASSWORD = "a password"          # what the README's curl sends

USER = f"crmsx{os.getpid() % 100000}"
HOME = f"/var/www/{USER}"
WORK = None
APACHE_PROC = None
CONF = None
PORT_A = PORT_B = None
K = {}
LOG_SIZE = None             # suexec.log as found (None: absent)
MADE_USER = False           # whether this run made USER (and may delete it)


def as_user(script, input=None, check_rc=True):
    """A shell as the customer, as SSH gives one: HOME, a plain PATH,
    umask 022, in the home directory."""
    env = {"HOME": HOME, "USER": USER, "LOGNAME": USER, "SHELL": "/bin/sh",
           "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    r = subprocess.run([RUNUSER, "-u", USER, "--", "/bin/sh", "-ec", "umask 022; cd ~; " + script],
                       env=env, input=input, capture_output=True, text=True, timeout=120)
    if check_rc and r.returncode != 0:
        raise AssertionError(f"as {USER}: {script!r}: {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def ctl(*args, input=None):
    return as_user("~/crmauth/crmauthctl " + " ".join(shlex.quote(a) for a in args),
                   input=input).stdout


def readme_blocks(title):
    """The shell blocks of a section of the bundle's README, in order:
    each a list of its lines (indented four spaces in the text)."""
    with tarfile.open(TARBALL) as t:
        top = t.getnames()[0].split("/")[0]
        text = t.extractfile(f"{top}/README").read().decode()
    section = text.split(f"\n{title}\n", 1)[1].split("\n\n\n", 1)[0]
    blocks, cur = [], []
    for line in section.splitlines():
        if line.startswith("    "):
            cur.append(line[4:])
        elif cur:
            blocks.append(cur)
            cur = []
    return blocks + ([cur] if cur else [])


def run_steps(steps, first="", input=None):
    """Steps in one shell, as one SSH session (after first); the output
    of each."""
    url = f"http://127.0.0.1:{PORT_A}/~{USER}/crmauth"
    script = first + "".join(f"printf '\\n#### {i}\\n'\n"
                             f"{step.replace('https://example.org/crmauth', url)}\n"
                             for i, step in enumerate(steps))
    r = as_user(script, input=input)
    outs = [o.strip() for o in re.split(r"\n#### \d+\n", r.stdout)[1:]]
    eq(len(outs), len(steps), f"every step ran: {r.stdout}")
    return outs


# ---- the host ----------------------------------------------------------------

def make_user():
    """A customer account as a host makes one: a home the user owns with
    a web root in it.  Its home is under /var/www, suEXEC's document root,
    so that both userdir and SuexecUserGroup requests may run there."""
    global MADE_USER
    subprocess.run(["useradd", "-M", "-d", HOME, "-U", "-s", "/usr/sbin/nologin", USER],
                   check=True)
    MADE_USER = True
    os.makedirs(HOME + "/public_html", mode=0o755)
    shutil.copy(TARBALL, HOME)          # uploaded
    pw = pwd.getpwnam(USER)
    for p in (HOME, HOME + "/public_html", os.path.join(HOME, os.path.basename(TARBALL))):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    os.chmod(HOME, 0o755)


def apache_conf():
    loads = "\n".join(f"LoadModule {n}_module {APACHE_MODULES}/mod_{n}.so" for n in
                      ("mpm_event", "authz_core", "mime", "alias", "env", "userdir", "cgid",
                       "suexec", "fcgid"))
    return f"""
ServerRoot {WORK}
ServerName 127.0.0.1
PidFile {WORK}/run/httpd.pid
DefaultRuntimeDir {WORK}/run
ErrorLog {WORK}/logs/error.log
LogLevel warn
{loads}
User www-data
Group www-data
TypesConfig /etc/mime.types
LogFormat "%h %u \\"%r\\" %>s" short
CustomLog {WORK}/logs/access.log short
ScriptSock {WORK}/run/cgid.sock
FcgidIPCDir {WORK}/run/fcgid
FcgidProcessTableFile {WORK}/run/fcgid_shm
Listen 127.0.0.1:{PORT_A}
Listen 127.0.0.1:{PORT_B}
<Directory />
    AllowOverride None
    Require all denied
</Directory>
# What a host allows a customer's .htaccess.
<Directory {HOME}/public_html>
    AllowOverride Options=ExecCGI,Indexes FileInfo AuthConfig
    Require all granted
</Directory>
# A: mod_cgid, the customer's directory by mod_userdir.
<VirtualHost 127.0.0.1:{PORT_A}>
    DocumentRoot {WORK}/htdocs
    <Directory {WORK}/htdocs>
        Require all granted
    </Directory>
    UserDir public_html
    UserDir disabled
    UserDir enabled {USER}
</VirtualHost>
# B: the customer's own site, FastCGI by mod_fcgid, as the customer.
<VirtualHost 127.0.0.1:{PORT_B}>
    SuexecUserGroup {USER} {USER}
    DocumentRoot {HOME}/public_html
    <Directory {HOME}/public_html/crmauth>
        SetHandler fcgid-script
        Options +ExecCGI
    </Directory>
</VirtualHost>
"""


def start_apache():
    global APACHE_PROC, CONF
    CONF = os.path.join(WORK, "httpd.conf")
    with open(CONF, "w") as f:
        f.write(apache_conf())
    APACHE_PROC = subprocess.Popen([APACHE, "-f", CONF, "-DFOREGROUND"],
                                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def up():
        for port in (PORT_A, PORT_B):
            try:
                Endpoint(port, "").request("GET", "/")
            except OSError:
                return False
        return True
    try:
        wait_for(up, what="apache on both ports")
    except AssertionError:
        APACHE_PROC.kill()
        raise AssertionError(f"apache: {APACHE_PROC.communicate()[1]!r} {error_log()}")
    err = error_log()
    check("suEXEC mechanism enabled" in err, f"suEXEC not enabled:\n{err}")


def stop_apache():
    if APACHE_PROC is None:
        return
    APACHE_PROC.send_signal(signal.SIGTERM)
    try:
        APACHE_PROC.wait(timeout=30)
    except subprocess.TimeoutExpired:
        APACHE_PROC.kill()
        APACHE_PROC.wait()


def error_log():
    try:
        with open(os.path.join(WORK, "logs", "error.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def user_pids():
    r = subprocess.run(["pgrep", "-u", USER], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def fcgi_pids(wait=True):
    """The customer's running crmauth.cgi processes (FastCGI: they stay);
    waited for unless wait is False."""
    def find():
        found = []
        for p in user_pids():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == "crmauth.cgi":
                        found.append(p)
            except OSError:
                pass
        return found
    return wait_for(find, what="a FastCGI process of the customer's") if wait else find()


def suexec_lines():
    try:
        with open(SUEXEC_LOG, errors="replace") as f:
            f.seek(LOG_SIZE or 0)
            return f.read().splitlines()
    except OSError:
        return []


def site_a():
    return Endpoint(PORT_A, f"/~{USER}/crmauth/crmauth.cgi")


def site_b():
    return Endpoint(PORT_B, "/crmauth/crmauth.cgi")


def requester(site):
    def req(method, path, body=None, headers=None):
        if isinstance(body, bytes):
            return site.request(method, path, raw=body, headers=headers)
        return site.request(method, path, body, headers=headers)
    return req


# ---- tests ----------------------------------------------------------------------

def t_readme():
    """The bundle README's steps, word for word, as the customer, with the
    host's address in the curl lines: health answers ok, the login and
    the Web API key give tokens."""
    steps = [line for block in readme_blocks("Installing") for line in block]
    check(any(s.startswith("tar xzf ") for s in steps) and
          any("crmauthctl init" in s for s in steps), f"the README's steps: {steps}")
    outs = run_steps(steps, input=README_PASSWORD + "\n")
    curls = [out for step, out in zip(steps, outs) if step.startswith("curl ")]
    eq(len(curls), 3, "three curl lines")
    eq(json.loads(curls[0])["data"], {"status": "ok"}, "health, as the README says")
    for out in curls[1:]:
        check(json.loads(out)["data"]["token"].startswith("eyJ"), f"a token: {out}")


def t_runs_as_the_user():
    """The programs run as the customer: suEXEC says so, the store and
    the events file are the customer's, crmauthctl's events name the
    customer, and nothing of crmauth's reached it through the
    environment."""
    uid = pwd.getpwnam(USER).pw_uid
    for f in ("crmauth/db/data.mdb", "crmauth/db/lock.mdb", "crmauth/events.log"):
        eq(os.stat(os.path.join(HOME, f)).st_uid, uid, f"{f} belongs to {USER}")
    lines = suexec_lines()
    check(any(f"uid: ({uid}/{USER})" in line and "cmd: crmauth.cgi" in line for line in lines),
          f"suexec.log: {lines[-5:]}")
    with open(os.path.join(HOME, "crmauth", "events.log")) as f:
        events = [json.loads(line) for line in f]
    admin = [e for e in events if e["event"] == "admin"]
    check(admin and all(e["unix_user"] == USER for e in admin),
          f"admin events name {USER}: {admin}")
    issued = [e for e in events if e["event"] == "token_issued"]
    eq([(e["org"], e["usr"], e["method"]) for e in issued],
       [("ACME", "alice", "authentication/token"),
        ("ACME", "alice", "authentication/web_api_key/token")],
       "the README's tokens are events")
    # A file the CGI program makes itself is the customer's.
    log = os.path.join(HOME, "crmauth", "events.log")
    os.rename(log, log + ".old")
    expect(requester(site_a())("POST", "/authentication/token",
                               {"username": "alice", "password": "no", "organisation": "ACME"}),
           401, "INVALID_CREDENTIALS")
    st = os.stat(log)
    eq((st.st_uid, st.st_mode & 0o777), (uid, 0o600),
       "events.log made by crmauth.cgi: the customer's, 0600")


def t_methods_cgi():
    """Every method under mod_cgid + mod_userdir, through suEXEC."""
    hosting.make_records(lambda *a, input=None: ctl(*a, input=input), K, org="SHOP")
    K["login"] = hosting.every_method(requester(site_a()), K, "A (mod_cgid)")


def t_methods_fcgid():
    """Every method under mod_fcgid + SuexecUserGroup: crmauth.cgi as a
    FastCGI process of the customer's that outlives its requests."""
    hosting.every_method(requester(site_b()), K, "B (mod_fcgid)")
    uid = pwd.getpwnam(USER).pw_uid
    pids = fcgi_pids()
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            ids = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        eq(ids["Uid"].split()[:2], [str(uid)] * 2, "the FastCGI process runs as the customer")
    before = set(pids)
    expect(requester(site_b())("GET", "/health"), 200, "OK")
    check(before & set(user_pids()), "the same process answered again (FastCGI)")


def t_only_the_program():
    """The .htaccess serves crmauth.cgi and nothing else from its
    directory, in A and B: not itself, not a file put there by mistake,
    not a listing."""
    cgibin = os.path.join(HOME, "public_html", "crmauth")
    for name, text in (("crmauth.conf", "db_path = /secret\n"), ("backup.mdb", "secret")):
        with open(os.path.join(cgibin, name), "w") as f:
            f.write(text)
        os.chown(os.path.join(cgibin, name), *pwd.getpwnam(USER)[2:4])
    for port, base in ((PORT_A, f"/~{USER}/crmauth/"), (PORT_B, "/crmauth/")):
        for path in (".htaccess", "crmauth.conf", "backup.mdb", ""):
            r = Endpoint(port, base).request("GET", path)
            eq(r.status, 403, f"{base}{path} on {port}")
            check(b"secret" not in r.body and b"Options" not in r.body, f"{base}{path} body")


def t_nothing_fetchable():
    """Nothing of the store or the configuration can be fetched: every
    way to name ~/crmauth/ over HTTP fails, and no answer holds a byte of
    it."""
    with open(os.path.join(HOME, "crmauth", "crmauth.conf"), "rb") as f:
        conf = f.read()
    secret_bits = [b"db_path", b"audit_log", conf[:40]]
    with open(os.path.join(HOME, "crmauth", "db", "data.mdb"), "rb") as f:
        secret_bits.append(f.read()[4096:4160])
    paths = {PORT_A: [f"/~{USER}/../crmauth/crmauth.conf", f"/~{USER}/%2e%2e/crmauth/crmauth.conf",
                      f"/~{USER}/crmauth/../../crmauth/crmauth.conf",
                      f"/~{USER}/crmauth/%2e%2e/%2e%2e/crmauth/db/data.mdb",
                      f"/~{USER}/crmauth/crmauth.cgi/../../../crmauth/crmauth.conf",
                      f"/~{USER}/crmauth/crmauth.cgi/%2e%2e/%2e%2e/crmauth/crmauth.conf",
                      f"/~{USER}/crmauth/crmauth.conf", f"/~{USER}/crmauth/db/data.mdb",
                      f"/~{USER}/crmauth/events.log", f"/~{USER}/{os.path.basename(TARBALL)}"],
             PORT_B: ["/../crmauth/crmauth.conf", "/%2e%2e/crmauth/crmauth.conf",
                      "/crmauth/%2e%2e/%2e%2e/crmauth/db/data.mdb",
                      "/crmauth/crmauth.cgi/../../crmauth/crmauth.conf", "/crmauth/events.log",
                      "/crmauth/crmauth.conf", "/crmauth/db/data.mdb"]}
    for port, ps in paths.items():
        for p in ps:
            r = Endpoint(port, "").request("GET", p)
            check(r.status != 200 or r.json is not None, f"{p} on {port}: {r.status}")
            for bit in secret_bits:
                check(bit not in r.body, f"{p} on {port} gave the store or configuration away")


def t_no_env_needed():
    """Neither program was told where to look: the customer's .htaccess
    has no SetEnv, suEXEC gave no HOME, and the configuration was found by
    the account's home directory.  A CRMAUTH_CONF set with SetEnv (the old
    way) never reaches the CGI program: suEXEC strips it.  (mod_fcgid
    would pass it as a request parameter, which crmauth never reads for
    its configuration: it is read once, at start.)"""
    ht = os.path.join(HOME, "public_html", "crmauth", ".htaccess")
    with open(ht) as f:
        text = f.read()
    check("SetEnv" not in re.sub(r"#.*", "", text), "the .htaccess sets nothing")
    with open(ht, "a") as f:
        f.write("\nSetEnv CRMAUTH_CONF /nonexistent/crmauth.conf\n")
    try:
        expect(requester(site_a())("GET", "/health"), 200, "OK", "with SetEnv CRMAUTH_CONF")
    finally:
        with open(ht, "w") as f:
            f.write(text)


def t_web_root_refused():
    """Security: an events file (or store, or configuration) the web
    server could serve is refused, as CGI (A: the customer's directory is
    CONTEXT_DOCUMENT_ROOT) and as FastCGI (B: DOCUMENT_ROOT, per request):
    503, and one line naming it."""
    conf = os.path.join(HOME, "crmauth", "crmauth.conf")
    with open(conf) as f:
        text = f.read()
    try:
        with open(conf, "w") as f:
            f.write(text.replace("audit_log = ./events.log", "audit_log = ../public_html/ev.log"))
        as_user(f"pkill -u {USER} -x crmauth.cgi || true")
        wait_for(lambda: not fcgi_pids(wait=False), what="the FastCGI processes to end")
        for site, name in ((site_a(), "CONTEXT_DOCUMENT_ROOT"), (site_b(), "DOCUMENT_ROOT")):
            before = error_log()
            r = expect(requester(site)("GET", "/health"), 503, "SERVICE_UNAVAILABLE",
                       f"events under {name}")
            check(r.headers.get("retry-after"), "Retry-After")
            new = error_log()[len(before):]
            check(f"audit_log {HOME}/crmauth/../public_html/ev.log is inside the web root "
                  f"{HOME}/public_html ({name}): the web server could serve it; move it out"
                  in new, new)
        check(not os.path.exists(os.path.join(HOME, "public_html", "ev.log")), "nothing written")
    finally:
        with open(conf, "w") as f:
            f.write(text)
        as_user(f"pkill -u {USER} -x crmauth.cgi || true")
    for site in (site_a(), site_b()):
        wait_for(lambda: requester(site)("GET", "/health").status == 200,
                 what="health again with the events file back in ~/crmauth")


def t_upgrade():
    """The README's Upgrading steps, word for word, while mod_fcgid keeps
    a FastCGI process of the program running (cp over it would fail:
    "Text file busy"); then its Going back steps: the store as it was at
    the backup, the programs answering."""
    upgrade, back = readme_blocks("Upgrading")
    expect(requester(site_b())("GET", "/health"), 200, "OK")
    fcgi_pids()
    name = os.path.basename(TARBALL).replace("-x86_64-linux.tar.gz", "")
    run_steps(upgrade, first=f"cd ~/{name}\n")
    hosting.every_method(requester(site_b()), K, "B after the upgrade")
    expect(requester(site_a())("GET", "/health"), 200, "OK", "A after the upgrade")
    # A change after the backup, which going back undoes.
    ctl("user", "add", "SHOP", "late", "--unit", "HQ", input="late-pw-1\n")
    check("\tlate\t" in ctl("user", "list", "SHOP"), "the late user")
    run_steps(back)
    check("\tlate\t" not in ctl("user", "list", "SHOP"), "the store is the backup's")
    for site, what in ((site_a(), "A"), (site_b(), "B")):
        expect(requester(site)("GET", "/health"), 200, "OK", f"{what} after going back")
    for f in ("crmauthctl.before-upgrade", "crmauth.cgi.before-upgrade", "before-upgrade.mdb"):
        check(os.path.exists(os.path.join(HOME, "crmauth", f)), f)


def main():
    global WORK, PORT_A, PORT_B, LOG_SIZE
    runner = Runner("suexec")
    if os.geteuid() != 0:
        print("suexec: needs root (a user, Apache with suEXEC)")
        return 77
    LOG_SIZE = os.path.getsize(SUEXEC_LOG) if os.path.exists(SUEXEC_LOG) else None
    WORK = tempfile.mkdtemp(prefix="crmauth-suexec.")
    os.chmod(WORK, 0o755)           # www-data reaches cgid's and fcgid's sockets
    for d in ("run", "logs", "htdocs"):
        os.makedirs(os.path.join(WORK, d))
    PORT_A, PORT_B = free_port(), free_port()
    try:
        make_user()
        start_apache()
        runner.run("the bundle's README, word for word, as the customer", t_readme)
        runner.run("runs as the customer: suEXEC, files, events", t_runs_as_the_user)
        runner.run("every method: mod_cgid + mod_userdir", t_methods_cgi)
        runner.run("every method: mod_fcgid + SuexecUserGroup", t_methods_fcgid)
        runner.run("the .htaccess serves crmauth.cgi and nothing else", t_only_the_program)
        runner.run("nothing of the store or configuration over HTTP", t_nothing_fetchable)
        runner.run("no variable needed, and SetEnv never arrives", t_no_env_needed)
        runner.run("security: a file under the web root refused, CGI and FastCGI",
                   t_web_root_refused)
        runner.run("the README's upgrade and going back, under mod_fcgid", t_upgrade)
    finally:
        stop_apache()
        try:
            wait_for(lambda: not user_pids(), timeout=30, what=f"{USER}'s processes to end")
        except AssertionError as e:
            print(e)
            for p in user_pids():
                os.kill(p, signal.SIGKILL)
        if runner.failed:
            print(error_log()[-3000:])
            print("\n".join(suexec_lines()[-20:]))
        if MADE_USER:
            subprocess.run(["userdel", "-r", USER], capture_output=True)
            shutil.rmtree(HOME, ignore_errors=True)
        # suEXEC's log as it was, unless someone else wrote to it meanwhile.
        ours = suexec_lines()
        if all(USER in line or HOME in line for line in ours):
            if LOG_SIZE is None:
                if os.path.exists(SUEXEC_LOG):
                    os.unlink(SUEXEC_LOG)
            else:
                os.truncate(SUEXEC_LOG, LOG_SIZE)
        shutil.rmtree(WORK, ignore_errors=True)
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
