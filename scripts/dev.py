#!/usr/bin/env python3
"""The project's two commands, for a fresh machine with Python 3.11 and nothing else.

    python3 scripts/dev.py run    # set up, load demo data, start web + worker + demo sink
    python3 scripts/dev.py test   # set up, run the whole test suite (extra args go to pytest)

Set-up is idempotent: a virtualenv in .venv, the pinned requirements (re-installed only when a
requirements file changes), migrations.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def ensure_venv(requirements: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be run by an older python3
        sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]}).")
    if not PY.exists():
        say("creating virtualenv in .venv")
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            shutil.rmtree(VENV, ignore_errors=True)
            sys.exit(
                f"Could not create .venv ({exc}). On Debian/Ubuntu install the venv module "
                "first: apt-get install python3.11-venv"
            )
    files = [ROOT / "requirements.txt", ROOT / requirements]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    say(f"installing pinned packages from {requirements}")
    started = time.monotonic()
    subprocess.run(
        [PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + ["-r", str(ROOT / requirements)],
        check=True,
    )
    stamp.write_text(digest)
    say(f"installed in {time.monotonic() - started:.0f} s")


def manage(*args: str, env=None) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True, env=env)


def run(argv: list[str]) -> None:
    ensure_venv("requirements.txt")
    port = os.environ.get("PORT", "8000")
    sink_port = os.environ.get("SINK_PORT", "8001")
    env = {
        **os.environ,
        # The demo postback goes to the local sink on 127.0.0.1: allow loopback for this run only.
        "POSTBACK_ALLOWED_NETWORKS": os.environ.get("POSTBACK_ALLOWED_NETWORKS", "127.0.0.0/8"),
        # Links in the demo's alert e-mails (printed on the console) point at this server.
        "SITE_URL": os.environ.get("SITE_URL", f"http://127.0.0.1:{port}"),
    }
    say("migrating the database")
    manage("migrate", "--noinput", "-v0", env=env)
    manage(
        "seed_demo",
        f"--sink-url=http://127.0.0.1:{sink_port}",
        f"--base-url=http://127.0.0.1:{port}",
        env=env,
    )
    children = [
        subprocess.Popen([PY, "manage.py", "run_sink", f"--port={sink_port}"], cwd=ROOT, env=env),
        subprocess.Popen(
            [PY, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT, env=env
        ),
        # Its own session: django-q2 hangs when its process group gets SIGTERM (docs/operations.md).
        subprocess.Popen([PY, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True),
    ]
    say(
        f"web on http://127.0.0.1:{port}/admin/ (affiliates: /portal/), worker and demo sink "
        "running; Ctrl-C stops all"
    )
    _wait_then_stop(children)


def _wait_then_stop(children: list[subprocess.Popen]) -> None:
    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        say("a process exited; stopping the others")
    except KeyboardInterrupt:
        say("stopping")
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # one signal, to the main pid only
    deadline = time.monotonic() + 40
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()


def test(argv: list[str]) -> None:
    ensure_venv("requirements-dev.txt")
    code = subprocess.run([PY, "-m", "pytest", *argv], cwd=ROOT).returncode
    sys.exit(code)


def main() -> None:
    commands = {"run": run, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
