"""The benchmarks' shared harness: a fresh database per run, servers on 127.0.0.1, paced and
closed-loop HTTP clients, repeats with min / median / max, PASS/MISS per target, the machine and
its load, and the results file.

Benchmarks never touch the dev database. The schema is migrated once into a template (a SQLite
file in a private temporary directory, or a PostgreSQL database named after BENCH_DATABASE_URL's
with a unique suffix); every repeat runs on its own copy, and all of them are removed at exit, so
two benchmarks can run at once and no run inherits another's rows. Set REDIS_URL for the Redis
broker (the cluster name and cache prefix are unique per run).
"""

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results")
PY = sys.executable
RATE_REACHED = 0.95  # a paced run reached its target rate if it achieved 95 % of it


# --- the command line ------------------------------------------------------------------------


def parser(doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=doc.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="fresh-database runs (3)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per run")
    return parser


# --- databases ---------------------------------------------------------------------------------


class Databases:
    """A migrated template and a fresh copy of it per run; everything is dropped at exit."""

    def __init__(self, name: str):
        self.name = name
        self.tag = f"{name}_{uuid.uuid4().hex[:8]}"
        self.base = os.environ.get("BENCH_DATABASE_URL", "")
        self.made: list[str] = []
        self.count = 0
        if self.pg:
            self.server, self.prefix = self.base.rsplit("/", 1)
            self.template = f"{self.prefix}_{self.tag}"
        else:
            self.dir = tempfile.mkdtemp(prefix=f"trackdesk-bench-{name}-")
            self.template = f"{self.dir}/template.sqlite3"
        atexit.register(self.drop_all)

    @property
    def pg(self) -> bool:
        return self.base.startswith("postgres")

    def url(self, name: str) -> str:
        return f"{self.server}/{name}" if self.pg else f"sqlite:///{name}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.server + "/postgres", autocommit=True) as conn:
            conn.execute(sql)

    def create_template(self) -> str:
        if self.pg:
            self._admin(f'CREATE DATABASE "{self.template}"')
            self.made.append(self.template)
        return self.url(self.template)

    def fresh(self) -> tuple[str, str]:
        """A new copy of the template: (its URL, its name)."""
        from django.db import connections

        connections.close_all()  # PostgreSQL copies only an unused template; SQLite flushes WAL
        self.count += 1
        if self.pg:
            name = f"{self.template}_r{self.count}"
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            self.made.append(name)
        else:
            name = f"{self.dir}/run{self.count}.sqlite3"
            shutil.copyfile(self.template, name)
        return self.url(name), name

    def drop(self, name: str) -> None:
        from django.db import connections

        connections.close_all()
        if self.pg:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.made.remove(name)
        else:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(name + suffix)

    def drop_all(self) -> None:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if self.pg:
            for name in list(self.made):
                with contextlib.suppress(Exception):
                    self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.made.clear()
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class Bench:
    """One benchmark invocation: the template database, the runs, the figures, the targets."""

    def __init__(self, name: str, args: argparse.Namespace):
        self.name, self.args = name, args
        self.dbs = Databases(name)
        # `kill` or `timeout` should stop the servers and drop the databases, as Ctrl-C does.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        self.env = {
            "DATABASE_URL": self.dbs.create_template(),
            "POSTBACK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            # Read once at start-up by this process too: unique per invocation, so benchmarks
            # running at once on one Redis never share a queue.
            "Q_CLUSTER_NAME": f"bench-{self.dbs.tag}",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",  # plain HTTP to gunicorn on loopback, no TLS proxy
            "API_THROTTLE_USER": "100000000/min",
            "API_THROTTLE_ANON": "100000000/min",
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update(self.env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.machine = machine()
        self.load_before = os.getloadavg()
        self.runs: list[dict] = []
        self.targets: list[dict] = []
        print(f"{name} on {backend()}: {describe_machine(self.machine)}")
        print(f"load average before: {fmt_load(self.load_before)}")

    @contextlib.contextmanager
    def run(self):
        """A fresh database for one repeat; yields the environment for its servers."""
        from django.core.cache import cache
        from django.db import connections

        url, name = self.dbs.fresh()
        run_id = uuid.uuid4().hex[:12]
        env = {
            **self.env,
            "DATABASE_URL": url,
            "BENCH_RUN_ID": run_id,
        }
        os.environ.update(env)
        connections["default"].settings_dict["NAME"] = name
        cache.key_prefix = run_id  # the Redis cache outlives the database
        print(f"\nrun {len(self.runs) + 1}/{self.args.repeats} (load {fmt_load(os.getloadavg())})")
        try:
            yield env
        finally:
            self.dbs.drop(name)
            forget_redis_keys(run_id)  # the cache entries
            forget_redis_keys(self.env["Q_CLUSTER_NAME"])  # the queue

    def record(self, figures: dict, **flags) -> None:
        """One repeat's figures (name -> number) and flags (e.g. rate_reached=False)."""
        self.runs.append({"figures": figures, "load": os.getloadavg(), **flags})

    def values(self, key: str) -> list:
        return [r["figures"][key] for r in self.runs if r["figures"].get(key) is not None]

    def target(self, label: str, key: str, op: str, limit: float, *, needs: str = "") -> None:
        """PASS when the median of `key` over the repeats is `op` `limit` (">=" or "<=") and,
        with `needs`, every repeat's figure `needs` was true (e.g. the paced rate was reached)."""
        values = self.values(key)
        median = statistics.median(values) if values else float("nan")
        met = median >= limit if op == ">=" else median <= limit
        unmet = [i + 1 for i, r in enumerate(self.runs) if needs and not r["figures"].get(needs)]
        verdict = "PASS" if met and not unmet else "MISS"
        why = f" (target rate not reached in run {', '.join(map(str, unmet))})" if unmet else ""
        self.targets.append(
            {
                "target": f"{label} {op} {limit:g}",
                "key": key,
                "median": median,
                "verdict": verdict,
                "why": why,
            }
        )

    def finish(self, settings: dict | None = None) -> Path:
        load_after = os.getloadavg()
        print(f"\n{self.name} on {backend()}, {len(self.runs)} runs: min / median / max")
        summary = {}
        first = self.runs[0]["figures"]
        keys = [k for k, v in first.items() if type(v) in (int, float)]  # not the flags
        for key in keys:
            summary[key] = spread(self.values(key))
            print(f"  {key:<38} {fmt_spread(summary[key])}")
        print(f"load average before {fmt_load(self.load_before)}, after {fmt_load(load_after)}")
        for target in self.targets:
            print(
                f"{target['verdict']}  {target['target']}: median {num(target['median'])}"
                f"{target['why']}"
            )
        payload = {
            "benchmark": self.name,
            "backend": backend(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": self.machine,
            "loadavg_before": self.load_before,
            "loadavg_after": load_after,
            "args": vars(self.args),
            "settings": settings or {},
            "template_database": self.dbs.template,  # and its copies: removed at exit
            "summary": summary,
            "targets": self.targets,
            "runs": self.runs,
        }
        return save_json(f"{self.name}-{backend()}.json", payload)


def forget_redis_keys(run_id: str) -> None:
    """Delete the keys holding `run_id` that a run left in Redis."""
    if url := os.environ.get("REDIS_URL"):
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=f"*{run_id}*", count=1000):
            client.delete(key)


def save_json(filename: str, payload: dict) -> Path:
    """Write atomically through a unique temporary name (two benchmarks may finish at once)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", dir=RESULTS)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(payload, indent=2, default=str) + "\n")
    path = RESULTS / filename
    os.replace(tmp, path)
    print(f"written {path}")
    return path


# --- bench/admin.py: one seeded database kept between runs on purpose (1,000,000 rows) ----------


def configure(name: str) -> dict:
    """Point this process at the kept bench database of `name` and set Django up: SQLite
    /tmp/trackdesk-bench-<name>.sqlite3, or BENCH_DATABASE_URL's database + _<name>."""
    url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:////tmp/trackdesk-bench-{name}.sqlite3"
    if url.startswith("postgres"):
        url = f"{url}_{name}"
        server, db = url.rsplit("/", 1)
        import psycopg

        with psycopg.connect(server + "/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (db,)).fetchone():
                conn.execute(f'CREATE DATABASE "{db}"')
    env = {
        "DATABASE_URL": url,
        "POSTBACK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "Q_CLUSTER_NAME": f"bench-{name}-{uuid.uuid4().hex[:8]}",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "API_THROTTLE_USER": "100000000/min",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def write_results(name: str, results: dict, load_before) -> Path:
    return save_json(
        f"{name}-{backend()}.json",
        {
            "benchmark": name,
            "backend": backend(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            **results,
        },
    )


# --- figures -----------------------------------------------------------------------------------


def spread(values: list) -> dict:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def fmt_spread(s: dict) -> str:
    if s["median"] is None:
        return "-"
    return " / ".join(num(s[k]) for k in ("min", "median", "max"))


def num(x) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def percentile(values, p: float) -> float:
    """Nearest-rank percentile (p99 of 1,000 samples is the 990th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, -(-len(ordered) * p // 100) - 1))
    return ordered[int(k)]


def latency_ms(seconds: list[float]) -> dict:
    ms = [x * 1000 for x in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else None,
    }


def ratio(a, b) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# --- the machine -------------------------------------------------------------------------------


def backend() -> str:
    from django.db import connection

    broker = "redis" if os.environ.get("REDIS_URL") else "orm"
    return f"{connection.vendor}+{broker}"


def machine() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def describe_machine(m: dict) -> str:
    return f"{m['cpus']} cores ({m['cpu_model']}), Python {m['python']}"


def fmt_load(load) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, reaped children included) of a process and its descendants."""
    parents, times = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            child = int(stat.parent.name)
            parents[child] = int(fields[1])
            times[child] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    tree, grew = {pid}, True
    while grew:
        more = {c for c, p in parents.items() if p in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(times.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def servers_cpu_seconds(name: str) -> dict[int, float]:
    """CPU seconds so far (reaped children included) of each process named `name` (a server
    this machine runs, such as postgres or redis-server), by pid."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            head, rest = stat.read_text().rsplit(")", 1)
            if head.split("(", 1)[1] == name:
                fields = rest.split()
                found[int(stat.parent.name)] = sum(int(x) for x in fields[11:15])
    return {pid: ticks / os.sysconf("SC_CLK_TCK") for pid, ticks in found.items()}


class CpuMeter:
    """Where a run's CPU went: the web server's process tree (gunicorn), the worker's
    (qcluster), the database server's processes (PostgreSQL; SQLite runs inside the others),
    Redis, and this process with its sinks (the client and the receivers), from start() to
    stop(). A backend that exits in between counts through its parent's reaped-children time."""

    SERVERS = {"database": "postgres", "redis": "redis-server"}

    def __init__(self, api_pid: int, worker_pid: int):
        self.api_pid, self.worker_pid = api_pid, worker_pid

    def _read(self) -> dict:
        api, worker = tree_cpu_seconds(self.api_pid), tree_cpu_seconds(self.worker_pid)
        parts = {"api": api, "worker": worker}
        parts["client_sink"] = tree_cpu_seconds(os.getpid()) - api - worker
        for part, name in self.SERVERS.items():
            parts[part] = servers_cpu_seconds(name)
        return parts

    def start(self) -> None:
        self.before, self.started = self._read(), time.monotonic()

    def stop(self, events: int) -> dict:
        """CPU ms per event of each part, their total, and the cores busy on average."""
        after, seconds = self._read(), time.monotonic() - self.started
        spent = {}
        for part, value in after.items():
            if isinstance(value, dict):  # survivors' growth, and the reaped ones via the parent
                before = self.before[part]
                value = sum(value.values()) - sum(before[p] for p in value if p in before)
            else:
                value -= self.before[part]
            spent[part] = max(value, 0.0)
        figures = {f"cpu_ms_{part}": round(v * 1000 / events, 2) for part, v in spent.items()}
        figures["cpu_ms_total"] = round(sum(spent.values()) * 1000 / events, 2)
        figures["cores_busy"] = round(sum(spent.values()) / seconds, 2)
        return figures


def print_cpu(label: str, figures: dict) -> None:
    parts = ", ".join(
        f"{part} {figures[f'cpu_ms_{part}']}"
        for part in ("api", "worker", "database", "redis", "client_sink")
    )
    print(
        f"  {label}CPU ms per conversion: {parts}; total {figures['cpu_ms_total']} "
        f"({figures['cores_busy']} of {os.cpu_count()} cores busy)"
    )


# --- profiles (BENCH_PROFILE=1: py-spy samples each server the benchmark starts) ----------------


def start_profiler(pid: int, label: str):
    if not os.environ.get("BENCH_PROFILE"):
        return None
    out = tempfile.mkstemp(prefix=f"bench-{label}-", suffix=".txt")[1]
    spy = Path(PY).parent / "py-spy"
    proc = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
        + ["--format", "raw", "--rate", "100", "--output", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.out, proc.label = out, label
    return proc


def stop_profiler(proc) -> None:
    """Stop sampling; keep the collapsed stacks and print where the time went."""
    if proc is None:
        return
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    stacks = Path(proc.out)
    if not stacks.exists() or not stacks.stat().st_size:
        return
    kept = RESULTS / "profiles" / f"{proc.label}-{backend()}-{uuid.uuid4().hex[:6]}.txt"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(stacks, kept)
    print(f"  profile of {proc.label}: {kept}")
    for share, frame in top_frames(kept):
        print(f"    {share:5.1f} %  {frame}")


def top_frames(path: Path, count: int = 25, within: str = "") -> list[tuple[float, str]]:
    """Inclusive share of samples per function of ours, Django's ORM or DRF (collapsed stacks),
    busy samples only (waiting on a socket or a lock is left out); with `within`, only the
    samples under that function, as shares of its own."""
    inclusive, total = {}, 0
    idle = ("select (selectors", "wait (threading", "accept (socket", "sleep", "_recv_into")
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if not n.isdigit() or any(frames[-1].startswith(i) for i in idle):
            continue
        if within:
            starts = [i for i, frame in enumerate(frames) if frame.startswith(within + " ")]
            if not starts:
                continue
            frames = frames[starts[0] :]
        total += int(n)
        seen = set()
        for frame in frames:
            name = frame.split(":")[0] + ")" if ":" in frame else frame
            if name not in seen and (within or any(k in name for k in KEEP_FRAMES)):
                seen.add(name)
                inclusive[name] = inclusive.get(name, 0) + int(n)
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:count]
    return [(100 * n / max(total, 1), name) for name, n in ranked]


KEEP_FRAMES = (  # py-spy's short paths: the project's apps, then the libraries' hot parts
    *("conversions/", "postbacks/", "affiliates/", "trackdesk/", "portal/", "bench/"),
    *("django/db/", "django/middleware/", "django/contrib/", "rest_framework/", "django_q/"),
    *("aiohttp/", "psycopg/", "redis/"),
)


# --- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FastSink:
    """bench/fastsink.py in its own process."""

    def __init__(self, delay: float = 0.0):
        self.proc = subprocess.Popen(
            [PY, str(ROOT / "bench" / "fastsink.py"), "--delay", str(delay)],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().split()
        self.port = int(line[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def count(self) -> int:
        return self.get("/__stats")["count"]

    def times(self) -> dict:
        return self.get("/__times")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def start_qcluster(env: dict, extra: dict | None = None) -> subprocess.Popen:
    log_path = Path(tempfile.mkstemp(prefix="bench-qcluster-", suffix=".log")[1])
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [PY, "manage.py", "qcluster"],
        cwd=ROOT,
        env={**os.environ, **env, **(extra or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # signal only the main pid (django-q2 #346)
    )
    proc.log_path = log_path
    deadline = time.monotonic() + 180
    while b"running" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"qcluster did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    proc.profiler = start_profiler(proc.pid, "qcluster")
    return proc


def stop_qcluster(proc: subprocess.Popen) -> None:
    stop_profiler(proc.profiler)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if os.environ.get("BENCH_KEEP_LOGS"):
        print(f"  qcluster log: {proc.log_path}")
    else:
        proc.log_path.unlink(missing_ok=True)


def start_gunicorn(env: dict, workers: int = 2) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # django-q logs every enqueue at INFO: to a file, kept (and named) with BENCH_KEEP_LOGS.
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115
        prefix="bench-gunicorn-", suffix=".log", delete=not os.environ.get("BENCH_KEEP_LOGS")
    )
    proc = subprocess.Popen(
        [ROOT / ".venv" / "bin" / "gunicorn", "trackdesk.wsgi", "-w", str(workers)]
        + ["-b", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a loaded machine takes its time
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/admin/login/", timeout=30)
            proc.profiler = start_profiler(proc.pid, "gunicorn")
            if os.environ.get("BENCH_KEEP_LOGS"):
                print(f"  gunicorn log: {log.name}")
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    log.seek(0)
    raise RuntimeError(f"gunicorn did not start:\n{log.read().decode(errors='replace')}")


def stop_gunicorn(proc: subprocess.Popen) -> None:
    stop_profiler(getattr(proc, "profiler", None))
    proc.terminate()
    proc.wait(timeout=30)


@contextlib.contextmanager
def gunicorn(env: dict, workers: int = 2):
    proc, url = start_gunicorn(env, workers)
    try:
        yield url
    finally:
        stop_gunicorn(proc)


@contextlib.contextmanager
def qcluster(env: dict, extra: dict | None = None):
    proc = start_qcluster(env, extra)
    try:
        yield proc
    finally:
        stop_qcluster(proc)


@contextlib.contextmanager
def sinks(*delays: float):
    started = [FastSink(delay) for delay in delays]
    try:
        yield started
    finally:
        for sink in started:
            sink.stop()


# --- clients -----------------------------------------------------------------------------------


def session(token: str = "", limit: int = 100):
    import aiohttp

    headers = {"Authorization": f"Token {token}"} if token else {}
    connector = aiohttp.TCPConnector(limit=limit)
    # No limit on waiting for a pooled connection: an overloaded server shows as latency.
    timeout = aiohttp.ClientTimeout(total=120, sock_connect=10)
    return aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout)


async def paced(rate: float, count: int, send) -> dict:
    """Open loop: start `await send(i)` for i in range(count) at `rate` per second, whatever
    the answers take. `send` returns True on success. Gives the answers' latencies, the
    errors and the rate achieved (successful answers per second from the first start to the
    last answer)."""
    loop = asyncio.get_running_loop()
    latencies, errors = [], 0

    async def one(i):
        nonlocal errors
        started = loop.time()
        ok = await guarded(send, i)
        latencies.append(loop.time() - started)
        errors += not ok

    start, tasks = loop.time(), []
    for i in range(count):
        pause = start + i / rate - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    achieved = (count - errors) / elapsed
    return {
        "target_rate": rate,
        "achieved_rate": round(achieved, 1),
        "rate_reached": achieved >= RATE_REACHED * rate,
        "errors": errors,
        **latency_ms(latencies),
    }


async def guarded(send, *args) -> bool:
    """A request that fails (refused, reset, timed out) counts as an error, not a crash."""
    import aiohttp

    try:
        return await send(*args)
    except (TimeoutError, aiohttp.ClientError):
        return False


async def closed_loop(seconds: float, concurrency: int, send) -> dict:
    """`concurrency` clients each calling `await send()` back to back for `seconds`."""
    loop = asyncio.get_running_loop()
    done, errors = 0, 0
    deadline = loop.time() + seconds

    async def client():
        nonlocal done, errors
        while loop.time() < deadline:
            if await guarded(send):
                done += 1
            else:
                errors += 1

    started = loop.time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return {"per_s": round(done / (loop.time() - started), 1), "errors": errors}


def print_paced(label: str, r: dict) -> None:
    reached = "" if r["rate_reached"] else "  RATE NOT REACHED"
    print(
        f"  {label}: achieved {r['achieved_rate']}/s of {r['target_rate']:g}/s{reached}; "
        f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['errors']} errors"
    )


# --- rows --------------------------------------------------------------------------------------


def demo_rows(affiliates: int = 1, url: str = "", *, postbacks_each: int = 1, hang_url: str = ""):
    """An offer and per affiliate a click and `postbacks_each` postbacks to `url`; returns the
    clicks. With hang_url, every third affiliate's postbacks go there (a hanging receiver)."""
    from affiliates.models import Affiliate, Offer
    from conversions.models import Click, ConversionType
    from postbacks.models import Postback

    offer = Offer.objects.create(name="Bench offer", landing_page_url="https://shop.example.com/")
    sale = ConversionType.objects.get_or_create(code="sale", defaults={"name": "Sale"})[0]
    clicks = []
    for i in range(affiliates):
        affiliate = Affiliate.objects.create(name=f"Bench {i}", email=f"b{i}@example.com")
        hanging = bool(hang_url) and i % 3 == 0
        target = hang_url if hanging else url
        for j in range(postbacks_each):
            postback = Postback.objects.create(
                name=f"Bench {i}.{j}",
                affiliate=affiliate,
                url=target + "/pb?txn={transactionId}&id={deliveryId}",
                statuses=["pending", "approved"],
            )
            postback.conversion_types.set([sale])
        click = Click.objects.create(affiliate=affiliate, offer=offer)
        click.hanging = hanging
        clicks.append(click)
    return clicks


def api_token() -> str:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from postbacks.roles import SERVICE

    user, _ = get_user_model().objects.get_or_create(username="bench-service")
    user.groups.add(Group.objects.get(name=SERVICE))  # the API checks the token's permissions
    return Token.objects.get_or_create(user=user)[0].key


def commit_to_sink(sink_times: dict, txns) -> dict[str, float]:
    """Seconds from each delivery's `created` stamp (set inside the committing transaction, a
    few milliseconds before the commit, so this errs long) to the sink's receipt, by txn."""
    from postbacks.models import Delivery

    rows = Delivery.objects.filter(conversion__transaction_id__in=list(txns)).values_list(
        "conversion__transaction_id", "created"
    )
    return {t: sink_times[t] - created.timestamp() for t, created in rows if t in sink_times}


def wait_until(check, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


if __name__ == "__main__":
    # python bench/common.py <kept profile> [function]: where the time under `function` went
    for share, frame in top_frames(Path(sys.argv[1]), 30, *sys.argv[2:3]):
        print(f"{share:5.1f} %  {frame}")
