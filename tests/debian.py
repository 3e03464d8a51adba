"""The Debian packages, as an operator gets them: built from this release's
sources with dpkg-buildpackage, checked by lintian, installed on this
machine with dpkg -i, used as README.Debian says (crmauthctl as root
without -c, lighttpd's snippet enabled with lighty-enable-mod, a token
through the real lighttpd), the systemd units verified and run under their
own sandbox behind nginx's snippet, upgraded over their own store,
removed and purged.  Then the machine is as it was: whatever the test
made, it takes away, and it checks that it did.

Run as root by tests/debian.test; refuses to touch a machine where
crmauth is installed or its directories exist already."""
import grp
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crmtest import (Runner, Endpoint, cgi_response, expect, eq, check, free_port,  # noqa: E402
                     wait_port, stop_process, parse_unit, sandboxed, unit_env, wait_for)

TOP_BUILDDIR = os.path.abspath(os.environ.get("top_builddir", "."))
MAKE = os.environ.get("MAKE", "make")
VERSION = os.environ["PACKAGE_VERSION"]
PACKAGES = ["crmauth", "libcrmauth0", "libcrmauth-dev"]
USER = "www-data"
PASSWORD = "a packaged password"
STORE = "/var/lib/crmauth"
LOGS = "/var/log/crmauth"
CONF = "/etc/crmauth/crmauth.conf"
LIGHTTPD_SNIPPET = "/etc/lighttpd/conf-available/50-crmauth.conf"
LIGHTTPD_ENABLED = "/etc/lighttpd/conf-enabled/50-crmauth.conf"
APACHE_ENABLED = "/etc/apache2/conf-enabled/crmauth.conf"
NGINX_SITE = "/etc/nginx/sites-available/crmauth-test"
FASTCGI_ENABLED = "/etc/lighttpd/conf-enabled/10-fastcgi.conf"
UNITS = ["crmauth.socket", "crmauth.service", "crmauth-spawn-fcgi.service"]
# What the test may make and must take away again.
MADE = [STORE, LOGS, "/etc/crmauth", "/run/crmauth", LIGHTTPD_ENABLED, APACHE_ENABLED,
        NGINX_SITE]
# Where the packages put things, watched from before to after.
WATCHED = ["/etc/lighttpd", "/etc/apache2", "/etc/nginx", "/etc/logrotate.d",
           "/lib/systemd/system", "/etc/systemd/system", "/usr/sbin", "/usr/libexec",
           "/var/lib", "/var/log", "/run"]

T = {}          # what the tests share: the work directory, the .debs


def sh(cmd, check_rc=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 600), **kw)
    if check_rc and r.returncode != 0:
        raise AssertionError(f"{cmd[0]} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def installed(pkg):
    r = sh(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg], check_rc=False)
    return r.stdout.strip()


def snapshot():
    """Every path under the watched trees, with its owner, group, mode and
    (for symbolic links) target: before and after are compared."""
    seen = {}
    for top in WATCHED:
        for root, dirs, files in os.walk(top):
            for n in dirs + files:
                p = os.path.join(root, n)
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
                seen[p] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), link)
    return seen


def mode_of(path):
    st = os.stat(path)
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            oct(stat.S_IMODE(st.st_mode)))


def ctl(*args, input=None):
    """crmauthctl as README.Debian says: root, no -c."""
    return sh(["crmauthctl", *args], input=input, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def cgi(method, path_info, body=b"", headers=None):
    """The installed responder as a plain CGI program, run as www-data with
    the configuration it finds itself."""
    env = {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": method, "PATH_INFO": path_info,
           "SCRIPT_NAME": "/crmapi/rest/v2", "SERVER_PROTOCOL": "HTTP/1.1",
           "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body)),
           "CONTENT_TYPE": "application/json", "PATH": "/usr/bin:/bin"}
    for k, v in (headers or {}).items():
        env["HTTP_" + k.upper().replace("-", "_")] = v
    r = subprocess.run(["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups",
                        "/usr/sbin/crmauth.fcgi"], input=body, env=env, capture_output=True,
                       timeout=60)
    return cgi_response(r.stdout)


def packaged_responders():
    """PIDs of running /usr/sbin/crmauth.fcgi (not the build tree's, which
    other suites may be running)."""
    pids = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and os.readlink(f"/proc/{d}/exe") == "/usr/sbin/crmauth.fcgi":
                pids.append(int(d))
        except OSError:
            pass
    return pids


def login(endpoint=None):
    body = {"username": "alice", "password": PASSWORD, "organisation": "ACME"}
    if endpoint is not None:
        return endpoint.post("/authentication/token", body)
    import json
    return cgi("POST", "/authentication/token", json.dumps(body).encode())


# ---- the tests, in order: each builds on the one before ----------------------

def t_build():
    """dpkg-buildpackage -us -uc -b in a copy of the release's sources."""
    src = os.path.join(T["dir"], f"crmauth-{VERSION}")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    sh([MAKE, "-s", "-C", TOP_BUILDDIR, "distdir", f"distdir={src}"], env=env)
    env["DEB_BUILD_OPTIONS"] = "parallel=2"
    r = sh(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env, check_rc=False)
    with open(os.path.join(T["dir"], "build.log"), "w") as f:
        f.write(r.stdout + r.stderr)
    check(r.returncode == 0, f"dpkg-buildpackage exited {r.returncode}:\n{r.stdout[-3000:]}"
          f"\n{r.stderr[-2000:]}")
    for line in ("RESULT store:", "RESULT token:", "RESULT lib:"):
        check(line in r.stdout, f"the package build ran the CUnit suites ({line})")
    arch = sh(["dpkg", "--print-architecture"]).stdout.strip()
    T["debs"] = [os.path.join(T["dir"], f"{p}_{VERSION}_{arch}.deb") for p in PACKAGES]
    for d in T["debs"]:
        check(os.path.exists(d), f"{os.path.basename(d)} was built")
    T["changes"] = os.path.join(T["dir"], f"crmauth_{VERSION}_{arch}.changes")


def t_lintian():
    """No error, no warning (informational tags are listed, not judged)."""
    r = sh(["lintian", "--pedantic", "-I", T["changes"]], check_rc=False, timeout=300)
    tags = [ln for ln in r.stdout.splitlines() if ln[:2] in ("E:", "W:")]
    eq(tags, [], f"lintian's errors and warnings (all it said:\n{r.stdout})")
    eq(r.returncode, 0, "lintian's exit status")


def t_install():
    """dpkg -i: owners and modes README.Debian gives; the configuration a
    conffile; the programs say their version."""
    sh(["dpkg", "-i", *T["debs"]])
    for p in PACKAGES:
        eq(installed(p), "installed", f"{p} installed")
    eq(mode_of(STORE), ("root", "www-data", "0o2770"), STORE)
    eq(mode_of(LOGS), ("www-data", "adm", "0o2750"), LOGS)
    conffiles = sh(["dpkg-query", "-W", "-f=${Conffiles}", "crmauth"]).stdout
    for f in (CONF, LIGHTTPD_SNIPPET, "/etc/apache2/conf-available/crmauth.conf",
              "/etc/nginx/snippets/crmauth.conf", "/etc/logrotate.d/crmauth"):
        check(f" {f} " in conffiles, f"{f} is a conffile: {conffiles}")
    r = sh(["/usr/sbin/crmauth.fcgi", "--version"])
    eq(r.stdout.split()[-1], VERSION, "crmauth.fcgi --version")
    # Units an administrator enabled: restarted after an upgrade, stopped
    # on removal (no systemd runs here to do it: the scripts are read).
    with open("/var/lib/dpkg/info/crmauth.postinst") as f:
        check("_dh_action=restart" in f.read(), "postinst restarts enabled units on upgrade")
    with open("/var/lib/dpkg/info/crmauth.prerm") as f:
        text = f.read()
    for unit in UNITS:
        check("deb-systemd-invoke stop" in text and unit in text, f"prerm stops {unit}")
    for unit in UNITS:
        check(os.path.exists(f"/lib/systemd/system/{unit}"), f"{unit} installed")
        check(not os.path.exists(f"/etc/systemd/system/sockets.target.wants/{unit}") and
              not os.path.exists(f"/etc/systemd/system/multi-user.target.wants/{unit}"),
              f"{unit} not enabled")
    # libcrmauth-dev: a program builds with pkg-config alone and runs.
    prog = os.path.join(T["dir"], "verify")
    flags = sh(["pkg-config", "--cflags", "--libs", "crmauth"]).stdout.split()
    sh(["cc", "-o", prog, os.path.join(os.environ["top_srcdir"], "examples", "crmauth-verify.c"),
        *flags])
    T["verify"] = prog


def t_first_steps():
    """README.Debian's first steps, as root without -c; what they make is
    the web server's group's, 0660."""
    ctl("init")
    ctl("user", "add", "ACME", "alice", "--unit", "HQ", input=PASSWORD + "\n")
    for n in os.listdir(STORE):
        eq(mode_of(os.path.join(STORE, n))[1:], ("www-data", "0o660"), f"{STORE}/{n}")
    r = sh(["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups",
            "/usr/sbin/crmauth.fcgi", "-t"], stdin=subprocess.DEVNULL)
    check(f"store {STORE}: ok" in r.stdout, f"crmauth.fcgi -t as www-data: {r.stdout}")


def tail(root, *names):
    out = ""
    for n in names:
        try:
            with open(os.path.join(root, n), errors="replace") as f:
                out += f"{n}: {f.read()[-2000:]}\n"
        except FileNotFoundError:
            pass
    return out


def lighttpd_frame(port, root):
    """Debian's lighttpd.conf with a loopback port of the test's own: the
    same user, the same conf-enabled/ (where lighty-enable-mod links)."""
    frame = os.path.join(root, "lighttpd.conf")
    with open(frame, "w") as f:
        f.write(f"""server.document-root = "{root}/htdocs"
server.port = {port}
server.bind = "127.0.0.1"
server.username = "www-data"
server.groupname = "www-data"
server.pid-file = "{root}/lighttpd.pid"
server.errorlog = "{root}/error.log"
server.breakagelog = "{root}/breakage.log"
include "/etc/lighttpd/conf-enabled/*.conf"
""")
    os.makedirs(os.path.join(root, "htdocs"), exist_ok=True)
    return frame


def t_lighttpd():
    """lighty-enable-mod crmauth (and fastcgi with it); a token and its
    check through the real lighttpd, which starts the responders."""
    T["fastcgi_was_enabled"] = os.path.lexists(FASTCGI_ENABLED)
    sh(["lighty-enable-mod", "crmauth"], input="\n")
    check(os.path.islink(LIGHTTPD_ENABLED), "lighty-enable-mod linked the snippet")
    check(os.path.lexists(FASTCGI_ENABLED), "and fastcgi, which it depends on")
    root = os.path.join(T["dir"], "lighttpd")
    os.makedirs(root)
    os.chmod(T["dir"], 0o755)
    port = free_port()
    frame = lighttpd_frame(port, root)
    shutil.chown(root, USER, USER)      # lighttpd opens its logs as www-data
    with open(os.path.join(root, "stderr"), "w") as err:
        p = subprocess.Popen(["lighttpd", "-D", "-f", frame], stdout=subprocess.DEVNULL,
                             stderr=err, start_new_session=True)
    try:
        check(wait_port(port, p), f"lighttpd started: {tail(root, 'stderr', 'error.log')}")
        ep = Endpoint(port)
        r = expect(login(ep), 200, "OK", "password login through lighttpd")
        token = r.data["token"]
        expect(ep.get("/authentication/token/check",
                      headers={"Authorization": "Bearer " + token}), 200, "OK", "check")
        # libcrmauth, with the configuration it finds itself.
        r = sh([T["verify"], token], check_rc=False)
        eq(r.returncode, 0, f"crmauth-verify on the token: {r.stdout} {r.stderr}")
    finally:
        stop_process(p)
    wait_for(lambda: not packaged_responders(), what="lighttpd's responders to exit")


def t_apache():
    """a2enconf crmauth: Debian's Apache configuration still checks out
    (with mod_fcgid if it is enabled here, without it otherwise)."""
    sh(["a2enconf", "-q", "crmauth"])
    check(os.path.islink(APACHE_ENABLED), "a2enconf linked the snippet")
    r = sh(["apache2ctl", "-t"], check_rc=False)
    eq(r.returncode, 0, f"apache2ctl -t: {r.stderr}")


def t_units():
    """systemd-analyze verify on the three units; then crmauth.socket +
    crmauth.service as systemd would run them (socket made as the unit
    says, ExecStart as User under ProtectSystem/ReadWritePaths/
    NoNewPrivileges), behind nginx with the packaged snippet."""
    r = sh(["systemd-analyze", "verify", *[f"/lib/systemd/system/{u}" for u in UNITS]],
           check_rc=False)
    eq((r.returncode, r.stderr.strip()), (0, ""), "systemd-analyze verify")
    sock = parse_unit("/lib/systemd/system/crmauth.socket")
    svc = parse_unit("/lib/systemd/system/crmauth.service")
    path = sock["ListenStream"]
    os.makedirs(os.path.dirname(path), exist_ok=True)      # systemd makes it
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(16)
    shutil.chown(path, sock["SocketUser"], sock["SocketGroup"])
    os.chmod(path, int(sock["SocketMode"], 8))
    cmd = sandboxed(svc, svc["ExecStart"].split(), svc["User"])
    err = open(os.path.join(T["dir"], "service.err"), "w")
    unit = subprocess.Popen(cmd, stdin=s.fileno(), stdout=subprocess.DEVNULL, stderr=err,
                            env=unit_env(svc), start_new_session=True)
    s.close()
    root = os.path.join(T["dir"], "nginx")
    os.makedirs(root)
    port = free_port()
    with open(os.path.join(root, "nginx.conf"), "w") as f:
        f.write(f"""daemon off;
user www-data;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    fastcgi_temp_path {root}/fastcgi;
    server {{
        listen 127.0.0.1:{port};
        include /etc/nginx/snippets/crmauth.conf;
    }}
}}
""")
    with open(os.path.join(root, "stderr"), "w") as nerr:
        ng = subprocess.Popen(["nginx", "-c", os.path.join(root, "nginx.conf")],
                              stdout=subprocess.DEVNULL, stderr=nerr, start_new_session=True)
    try:
        check(wait_port(port, ng), f"nginx started: {tail(root, 'stderr', 'error.log')}")
        ep = Endpoint(port)
        r = expect(login(ep), 200, "OK", "password login through nginx to the unit")
        token = r.data["token"]
        expect(ep.post("/authentication/token/release", {"token": token}),
               200, "OK", "release: the unit writes the store under its sandbox")
        eq(ctl("released", "count").stdout.strip(), "1", "released count")
    finally:
        stop_process(ng)
        eq(stop_process(unit), 0, "the unit's responders exit 0 on SIGTERM")
        err.close()
        os.unlink(path)
    with open(os.path.join(T["dir"], "service.err")) as f:
        text = f.read()
    check("Read-only" not in text, f"the unit's log: {text}")


def newer_crmauth():
    """The crmauth package as a newer version (VERSION+1, repacked): what
    an upgrade does to an installed crmauth, its store and its changed
    conffile, with the maintainer scripts of both versions run."""
    unpacked = os.path.join(T["dir"], "newer")
    sh(["dpkg-deb", "-R", T["debs"][0], unpacked])
    control = os.path.join(unpacked, "DEBIAN", "control")
    with open(control) as f:
        text = f.read()
    with open(control, "w") as f:
        f.write(text.replace(f"\nVersion: {VERSION}\n", f"\nVersion: {VERSION}+1\n"))
    deb = os.path.join(T["dir"], f"crmauth_{VERSION}+1.deb")
    sh(["dpkg-deb", "--root-owner-group", "-b", unpacked, deb])
    return deb


def t_upgrade():
    """An upgrade over the installed package: the store, its modes and a
    changed conffile stay; the user made before logs in."""
    with open(CONF, "a") as f:
        f.write("# changed by the administrator\n")
    before = {n: mode_of(os.path.join(STORE, n)) for n in os.listdir(STORE)}
    r = sh(["dpkg", "-i", newer_crmauth()])
    check("crmauth: restart lighttpd" in r.stdout and "crmauth: reload Apache" in r.stdout,
          f"the upgrade says to restart the web servers whose snippet is enabled: {r.stdout}")
    eq(sh(["dpkg-query", "-W", "-f=${Version}", "crmauth"]).stdout, f"{VERSION}+1",
       "the installed version")
    with open(CONF) as f:
        check(f.read().endswith("# changed by the administrator\n"), "the changed conffile kept")
    eq({n: mode_of(os.path.join(STORE, n)) for n in os.listdir(STORE)}, before,
       "the store's files, owners and modes")
    expect(login(), 200, "OK", "the same user logs in after the upgrade")
    eq([ln.split("\t")[:2] for ln in ctl("user", "list").stdout.splitlines()],
       [["ACME", "alice"]], "user list")


def t_remove_purge():
    """remove: programs gone, configuration and lighttpd's link handled;
    purge: configuration gone, store and events kept and said."""
    check(os.path.islink(LIGHTTPD_ENABLED) and os.path.islink(APACHE_ENABLED),
          "lighttpd's and Apache's snippets enabled before the removal")
    r = sh(["dpkg", "-r", *PACKAGES])
    check("crmauth: disabled in lighttpd" in r.stdout, f"remove says: {r.stdout}")
    check(not os.path.lexists(LIGHTTPD_ENABLED), "remove disabled the lighttpd snippet")
    check(not os.path.lexists(APACHE_ENABLED), "remove disabled the Apache snippet")
    check(not os.path.exists("/usr/sbin/crmauth.fcgi"), "crmauth.fcgi removed")
    check(os.path.exists(CONF), "remove keeps the configuration")
    r = sh(["lighttpd", "-tt", "-f", "/etc/lighttpd/lighttpd.conf"], check_rc=False)
    eq(r.returncode, 0, f"lighttpd's configuration still loads: {r.stderr}")
    # A server block of the administrator's still including the snippet.
    with open(NGINX_SITE, "w") as f:
        f.write("server {\n    listen 127.0.0.1:9;\n    include snippets/crmauth.conf;\n}\n")
    r = sh(["dpkg", "-P", *PACKAGES])
    os.unlink(NGINX_SITE)
    check(f"crmauth: nginx still includes snippets/crmauth.conf, now removed: remove that line "
          f"(in {NGINX_SITE})" in r.stdout, f"purge names nginx's include: {r.stdout}")
    for p in PACKAGES:
        check(installed(p) in ("", "not-installed"), f"{p} purged: {installed(p)!r}")
    for f in (CONF, LIGHTTPD_SNIPPET, "/etc/logrotate.d/crmauth",
              "/etc/nginx/snippets/crmauth.conf", "/etc/apache2/conf-available/crmauth.conf"):
        check(not os.path.exists(f), f"purge removed {f}")
    check(f"crmauth: kept {STORE}" in r.stdout, f"purge says it kept the store: {r.stdout}")
    check(os.path.exists(os.path.join(STORE, "data.mdb")), "the store is still there")
    print(f"  left after purge: {sorted(os.listdir(STORE))} in {STORE}; {LOGS}: "
          f"{'there' if os.path.isdir(LOGS) else 'gone'}")


def undo():
    """Take away what the test made, whatever state a failure left."""
    for pid in packaged_responders():
        os.kill(pid, signal.SIGKILL)
    if any(installed(p) not in ("", "not-installed") for p in PACKAGES):
        sh(["dpkg", "-P", *PACKAGES], check_rc=False)
    for link in (LIGHTTPD_ENABLED, APACHE_ENABLED, NGINX_SITE):
        if os.path.lexists(link):
            os.unlink(link)
    if not T.get("fastcgi_was_enabled", True) and os.path.lexists(FASTCGI_ENABLED):
        sh(["lighty-disable-mod", "fastcgi"], input="\n", check_rc=False)
    for p in MADE:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
    # Made by apache2-maintscript-helper when the postrm disables the
    # Apache snippet.
    for n in ("/run/lock/apache2",):
        if n not in T.get("before", {n: 1}) and os.path.isdir(n) and not os.listdir(n):
            os.rmdir(n)


def t_machine_unchanged():
    undo()
    after = snapshot()
    before = T["before"]
    added = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    changed = sorted(p for p in set(after) & set(before) if after[p] != before[p])
    # dpkg's own bookkeeping, lighttpd's runtime files, logs of others.
    noise = ("/var/lib/dpkg/", "/var/log/dpkg.log", "/var/log/apt", "/var/lib/apt",
             "/run/lighttpd", "/var/log/lighttpd", "/var/cache", "/var/lib/systemd",
             "/var/log/journal", "/var/lib/postgresql", "/run/postgresql", "/var/lib/lintian",
             "/var/log/nginx", "/var/lib/nginx", "/var/log/apache2", "/run/apache2",
             "/var/lib/apache2", "/run/user", "/var/lib/logrotate", "/run/systemd")
    def ours(paths):
        return [p for p in paths if not p.startswith(noise)]
    eq((ours(added), ours(gone), ours(changed)), ([], [], []),
       "paths added, removed, changed under " + " ".join(WATCHED))


def main():
    runner = Runner("debian")
    if os.environ.get("CRMAUTH_SANITIZERS") == "yes":
        print("debian: run in the plain build, not under the sanitizers "
              "(it installs packages on this machine)")
        return 77
    if os.geteuid() != 0:
        print("debian: needs root (dpkg -i)")
        return 77
    for p in PACKAGES:
        if installed(p) not in ("", "not-installed", "config-files"):
            print(f"debian: {p} is installed on this machine; not touching it")
            return 99
    for p in MADE:
        if os.path.lexists(p):
            print(f"debian: {p} exists; not touching it")
            return 99
    T["dir"] = tempfile.mkdtemp(prefix="crmauth-deb.")
    T["before"] = snapshot()
    try:
        for name, fn in (("dpkg-buildpackage -us -uc -b from the release's sources", t_build),
                         ("lintian: no error, no warning", t_lintian),
                         ("dpkg -i: files, owners, modes, conffiles, library", t_install),
                         ("README.Debian's first steps as root without -c", t_first_steps),
                         ("lighty-enable-mod crmauth: a token through lighttpd", t_lighttpd),
                         ("a2enconf crmauth: Apache's configuration checks out", t_apache),
                         ("systemd units: verified, run in their sandbox behind nginx",
                          t_units),
                         ("upgrade over the store: it keeps working, the conffile kept",
                          t_upgrade),
                         ("remove, then purge: what goes, what stays and is said",
                          t_remove_purge)):
            before = runner.failed
            runner.run(name, fn)
            if runner.failed > before:
                break               # each step needs the ones before
    finally:
        runner.run("the machine afterwards is as it was before", t_machine_unchanged)
        shutil.rmtree(T["dir"], ignore_errors=True)
    return runner.finish()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    sys.exit(main())
