"""The README quick start, for real: script/server on a free loopback
port, every curl line it prints, and every README example (a ```sh block
followed by a ```json block) compared with its documented answer."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crmtest import Runner, free_port, wait_for, TOP_SRCDIR, TOP_BUILDDIR  # noqa: E402

TOKEN_PLACEHOLDER = "eyJ..."


def same(expected, got, path="$"):
    """Compare JSON values; "eyJ..." in expected stands for any token."""
    if expected == TOKEN_PLACEHOLDER:
        if not (isinstance(got, str) and got.startswith("eyJ") and got.count(".") == 2):
            raise AssertionError(f"{path}: expected a token, got {got!r}")
        return
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(expected) != set(got):
            raise AssertionError(f"{path}: expected {expected!r}, got {got!r}")
        for k in expected:
            same(expected[k], got[k], f"{path}.{k}")
        return
    if expected != got:
        raise AssertionError(f"{path}: expected {expected!r}, got {got!r}")


class Demo:
    def __init__(self):
        self.var = tempfile.mkdtemp(prefix="crmauth-quickstart-")
        self.port = free_port()
        env = dict(os.environ, PORT=str(self.port), CRMAUTH_VAR=self.var,
                   CRMAUTH_NO_BUILD="1", CRMAUTH_BUILDDIR=TOP_BUILDDIR)
        self.out = open(os.path.join(self.var + ".out"), "w+")
        self.proc = subprocess.Popen([os.path.join(TOP_SRCDIR, "script", "server")],
                                     env=env, stdout=self.out, stderr=subprocess.STDOUT,
                                     cwd=TOP_SRCDIR, start_new_session=True)
        try:
            wait_for(self.listening, 60, "script/server to listen", interval=0.1)
        except AssertionError as e:
            out = self.output()
            self.stop()
            raise AssertionError(f"{e}: {out}")

    def listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("script/server exited")
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.2):
                return True
        except OSError:
            return False

    def output(self):
        self.out.seek(0)
        return self.out.read()

    def stop(self):
        if self.proc.poll() is None:
            # Ctrl-C, as a user would.
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError("script/server ignored Ctrl-C")
        self.out.close()
        subprocess.run(["rm", "-rf", self.var, self.var + ".out"])

    def sh(self, script):
        r = subprocess.run(["bash", "-c", f"set -a; . '{self.var}/demo.env'; set +a\n{script}"],
                           capture_output=True, text=True, timeout=60, cwd=TOP_SRCDIR)
        return r


D = None


def t_printed_commands():
    lines = [ln.strip() for ln in D.output().splitlines() if ln.strip().startswith("curl ")]
    if len(lines) != 6:
        raise AssertionError(f"expected 6 curl lines, found {len(lines)}")
    for line in lines:
        r = D.sh(line)
        try:
            answer = json.loads(r.stdout)
        except ValueError:
            raise AssertionError(f"{line}\n-> not JSON: {r.stdout!r} {r.stderr!r}")
        if answer["status"]["code"] != "OK":
            raise AssertionError(f"{line}\n-> {answer}")


def t_readme_examples():
    with open(os.path.join(TOP_SRCDIR, "README.md")) as f:
        text = f.read()
    pairs = re.findall(r"```sh\n(.*?)```\s*```json\n(.*?)```", text, re.S)
    if len(pairs) < 6:
        raise AssertionError(f"expected at least 6 README examples, found {len(pairs)}")
    for script, answer in pairs:
        r = D.sh(script)
        try:
            got = json.loads(r.stdout)
        except ValueError:
            raise AssertionError(f"{script}\n-> not JSON: {r.stdout!r} {r.stderr!r}")
        try:
            same(json.loads(answer), got)
        except AssertionError as e:
            raise AssertionError(f"README example:\n{script}\n{e}")


def main():
    global D
    run = Runner("quickstart")
    # The port is chosen free before script/server makes its store, and
    # another suite running meanwhile may take it first: then again, on
    # another port (as Server.start does).
    for attempt in range(3):
        try:
            D = Demo()
            break
        except AssertionError as e:
            if "Address already in use" in str(e) and attempt < 2:
                print(f"  (port taken meanwhile, again: {str(e).splitlines()[-1][:120]})")
                continue
            print(f"FAIL script/server starts: {e}")
            run.failed += 1
            return run.finish()
    try:
        run.run("script/server prints curl commands that work as printed", t_printed_commands)
        run.run("every README example gives its documented answer", t_readme_examples)
    finally:
        run.run("script/server stops on Ctrl-C", D.stop)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
