"""Chunk store throughput: the market's GET and PUT beside nginx serving the same files.

    python bench/bench_chunks.py [--seconds 10] [--connections 32] [--repeats 5] [--workers 1]

What it does, all on this machine, in this one run:

1. starts `manage.py runmarket` (the embedded default: SQLite, zones in the same
   process) on a free loopback port with a temporary FABRIC_DATA_DIR, and makes a
   writer and a namespace that the whole world may read (`user:*`);
2. PUTs 200 chunks of 64 KiB (one connection, one after another) and a 64 MiB
   chunk several times, each time new bytes, so every PUT is hashed, written,
   flushed with fsync and renamed: the figure is what a client sees, in GB/s;
3. GETs the 64 KiB chunks anonymously with wrk (`--connections` concurrent, the 200
   chunks in turn) for requests/s, and the 64 MiB chunk over one connection for
   MB/s, first from the market and then from nginx serving the same store
   directory (one worker process, like the market's one process; sendfile on).
   Every chunk is fetched once before the timed runs. The same 64 KiB run is
   repeated with the visitor's asset token (`Authorization: Bearer`, answered by
   chunks/fastpath.py like the anonymous ones, deciding for the visitor) and signed
   in (a session cookie), which always takes the Django path; then, anonymous and
   with the token, through nginx in front of the market (chunks/front.py, as many
   worker processes as the plain nginx: the market decides, nginx sends the file);
4. prints for reference the raw BLAKE3 speed of this machine (one thread, and
   `blake3(max_threads=AUTO)`) and how fast a plain write + fsync of 64 MiB is on
   the store's file system, and the ratios to their targets: GET >= 0.5x nginx,
   verified PUT of a new large chunk >= 0.8x that write + fsync.

nginx and wrk are not installed by this script. Without them the GET comparison
is skipped with a note; on Debian or Ubuntu: `apt-get install -y nginx wrk`.
"""

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.machine import machine_info  # noqa: E402
from bench.processes import BenchError, free_port, manage  # noqa: E402
from chunks.front import chunk_front_config, nginx_standalone_config  # noqa: E402

SMALL_BYTES = 64 * 1024
SMALL_COUNT = 200
LARGE_BYTES = 64 * 1024 * 1024
MIB = 1024 * 1024
GET_RATIO_TARGET = 0.5
PUT_RATIO_TARGET = 0.8  # of a bare write + fsync of the same bytes, measured in the same run
VISITOR_ENTITY = 7
STARTUP_TIMEOUT_S = 60
# Environment variables that would move the market off its embedded default.
SERVICE_VARIABLES = ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "CHUNK_STORE_DIR")
CSRF_TOKEN = "b" * 32  # an unmasked token: cookie and header carry the same value

SETUP = """
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from chunks.access import namespace_reader_grant
from chunks.services import namespace_create
from market.booth_visitors import booth_visitor_set
from market.models import Booth, Market
from market.rebac.services import rebac_tuple_write

user = get_user_model().objects.create_user("bench-writer")
market = Market.objects.create(name="Bench", slug="bench-chunks")
booth = Booth.objects.create(market=market, name="Bench", zone_index=0)
namespace = namespace_create(slug="bench", name="Bench", booth=booth)
rebac_tuple_write(object=namespace.rebac_object, relation="writer", user=f"user:{user.pk}")
rebac_tuple_write(object=namespace.rebac_object, relation="reader", user="user:*")
namespace_reader_grant(namespace=namespace, spec={"kind": "visitors"})
booth_visitor_set(market_id=market.pk, entity=%(entity)d, zone=0)
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(json.dumps({"session": session.session_key, "market": market.pk}))
"""

# Asked just before each run with a token: tokens live ASSET_TOKEN_TTL_S (2 minutes).
TOKEN = """
from market.models import Market
from market.asset_tokens import asset_token_issue
print(asset_token_issue(Market.objects.get(slug="bench-chunks").pk, %(entity)d))
"""

PLAIN_NGINX = """
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location ~ "^/chunks/([0-9a-f]{{2}})([0-9a-f]{{2}})([0-9a-f]{{60}})$" {{
            alias {store}/$1/$2/$1$2$3;
            add_header Cache-Control "public, max-age=31536000, immutable";
        }}
    }}
"""

WRK_ROTATION = """
local paths = {{{paths}}}
local turn = 0
request = function()
    turn = turn + 1
    return wrk.format("GET", paths[turn % #paths + 1])
end
"""


@dataclass
class Market:
    """A running market under test."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    session: str
    env: dict[str, str]

    def token(self) -> str:
        """A fresh asset token of the visitor standing in the bench's booth."""
        return manage(self.env, "shell", "-c", TOKEN % {"entity": VISITOR_ENTITY}).split()[-1]

    @property
    def store(self) -> Path:
        return self.data_dir / "chunks"


@dataclass
class WrkResult:
    requests_per_s: float
    bytes_per_s: float
    errors: str


def embedded_environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env["FABRIC_DATA_DIR"] = str(data_dir)
    return env


def wait_until_answering(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {STARTUP_TIMEOUT_S} s")


def wait_until_listening(port: int, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the server for port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {STARTUP_TIMEOUT_S} s")


@contextlib.contextmanager
def running_market(workdir: Path) -> Iterator[Market]:
    data_dir = workdir / "data"
    env = embedded_environment(data_dir)
    manage(env, "migrate", "--noinput")
    setup = SETUP % {"entity": VISITOR_ENTITY}
    session = json.loads(manage(env, "shell", "-c", setup).strip().splitlines()[-1])["session"]
    port = free_port()
    with open(workdir / "runmarket.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "manage.py"), "runmarket", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/healthz", process)
        yield Market(process=process, port=port, data_dir=data_dir, session=session, env=env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_nginx(nginx: str, workdir: Path, name: str, http: str, workers: int) -> Iterator[None]:
    """nginx with `http` (whose server listens where the caller chose) until the block ends."""
    prefix = workdir / name
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_standalone_config(prefix=prefix, http=http, workers=workers))
    process = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=15)


@contextlib.contextmanager
def plain_nginx(nginx: str, store: Path, workdir: Path, workers: int) -> Iterator[int]:
    """nginx serving the store directory by itself; its port."""
    port = free_port()
    http = PLAIN_NGINX.format(port=port, store=store)
    with running_nginx(nginx, workdir, f"nginx-{workers}", http, workers):
        wait_until_listening(port, None)
        yield port


@contextlib.contextmanager
def front_nginx(nginx: str, market: Market, workdir: Path, workers: int) -> Iterator[int]:
    """nginx in front of the market (chunks/front.py); its port."""
    port = free_port()
    http = chunk_front_config(
        listen=f"127.0.0.1:{port}",
        upstream=f"127.0.0.1:{market.port}",
        cache_dir=workdir / "front-decisions",
        store_dir=market.store,
        session_cookie="sessionid",
    )
    with running_nginx(nginx, workdir, f"front-{workers}", http, workers):
        wait_until_listening(port, None)
        yield port


def put_chunk(connection: http.client.HTTPConnection, market: Market, data: bytes) -> float:
    """PUT one chunk; the seconds from sending the request to the end of the answer."""
    digest = blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()
    headers = {
        "Cookie": f"sessionid={market.session}; csrftoken={CSRF_TOKEN}",
        "X-CSRFToken": CSRF_TOKEN,
        "Content-Type": "application/octet-stream",
    }
    start = time.perf_counter()
    connection.request("PUT", f"/chunks/{digest}?namespace=bench", body=data, headers=headers)
    response = connection.getresponse()
    body = response.read()
    seconds = time.perf_counter() - start
    if response.status not in (200, 201):
        raise SystemExit(f"PUT {digest}: {response.status} {body[:300]!r}")
    return seconds


def bench_puts(market: Market, repeats: int) -> tuple[list[str], str, dict[str, float]]:
    connection = http.client.HTTPConnection("127.0.0.1", market.port, timeout=300)
    small = [os.urandom(SMALL_BYTES) for _ in range(SMALL_COUNT)]
    start = time.perf_counter()
    for data in small:
        put_chunk(connection, market, data)
    small_seconds = time.perf_counter() - start
    large_seconds = []
    for _ in range(repeats):
        data = os.urandom(LARGE_BYTES)
        large_seconds.append(put_chunk(connection, market, data))
    # The last one again: already stored, so hashed and written but neither synced nor kept.
    again = [put_chunk(connection, market, data) for _ in range(repeats)]
    connection.close()
    figures = {
        "small_per_s": SMALL_COUNT / small_seconds,
        "large_median_gb_s": LARGE_BYTES / statistics.median(large_seconds) / 1e9,
        "large_best_gb_s": LARGE_BYTES / min(large_seconds) / 1e9,
        "large_present_gb_s": LARGE_BYTES / statistics.median(again) / 1e9,
    }
    hashes = [blake3.blake3(data).hexdigest() for data in small]
    return hashes, blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest(), figures


WRK_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def run_wrk(
    wrk: str,
    url: str,
    *,
    connections: int,
    seconds: int,
    script: Path | None,
    headers: tuple[str, ...] = (),
) -> WrkResult:
    threads = max(1, min(connections, 2))
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
    if script is not None:
        argv += ["-s", str(script)]
    for header in headers:
        argv += ["-H", header]
    output = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    requests = re.search(r"Requests/sec:\s+([\d.]+)", output)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", output)
    if requests is None or transfer is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", output)
    return WrkResult(
        requests_per_s=float(requests.group(1)),
        bytes_per_s=float(transfer.group(1)) * WRK_UNITS[transfer.group(2)],
        errors=errors.group(0) if errors else "",
    )


def rotation_script(workdir: Path, hashes: list[str]) -> Path:
    script = workdir / "rotate.lua"
    script.write_text(
        WRK_ROTATION.format(paths=", ".join(f'"/chunks/{digest}"' for digest in hashes))
    )
    return script


def warm_up(port: int, hashes: list[str], headers: tuple[str, ...] = ()) -> None:
    """Fetch every chunk once, as the first visitor of each would."""
    sent = dict(header.split(": ", 1) for header in headers)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for digest in hashes:
        connection.request("GET", f"/chunks/{digest}", headers=sent)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"GET {digest}: {response.status}")
    connection.close()


def small_gets(
    wrk: str,
    port: int,
    hashes: list[str],
    workdir: Path,
    args: argparse.Namespace,
    headers: tuple[str, ...] = (),
) -> WrkResult:
    """The 64 KiB chunks in turn, `args.connections` at once."""
    warm_up(port, hashes, headers)
    return run_wrk(
        wrk,
        f"http://127.0.0.1:{port}/",
        connections=args.connections,
        seconds=args.seconds,
        script=rotation_script(workdir, hashes),
        headers=headers,
    )


def large_get(wrk: str, port: int, large: str, args: argparse.Namespace) -> WrkResult:
    """The 64 MiB chunk over one connection."""
    warm_up(port, [large])
    url = f"http://127.0.0.1:{port}/chunks/{large}"
    return run_wrk(wrk, url, connections=1, seconds=args.seconds, script=None)


def blake3_speed() -> tuple[float, float]:
    data = os.urandom(LARGE_BYTES)
    speeds = []
    for threads in (1, blake3.blake3.AUTO):
        best = min(
            _timed(lambda threads=threads: blake3.blake3(data, max_threads=threads).digest())
            for _ in range(5)
        )
        speeds.append(LARGE_BYTES / best / 1e9)
    return speeds[0], speeds[1]


def disk_write_speed(directory: Path) -> float:
    """GB/s of a plain write + fsync of new 64 MiB files in `directory`: what any durable
    PUT of a new chunk has to do, with nothing else."""
    data = os.urandom(LARGE_BYTES)
    seconds = []
    with tempfile.TemporaryDirectory(dir=directory) as folder:
        for index in range(3):  # each file kept until the end, as stored chunks are

            def write(path: Path = Path(folder) / str(index)) -> None:
                with open(path, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())

            seconds.append(_timed(write))
    return LARGE_BYTES / statistics.median(seconds) / 1e9


def _timed(function) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def report_gets(rows: list[tuple[str, WrkResult, WrkResult]], unit: str) -> None:
    """Each figure beside nginx's in the same run, and its ratio to the target."""
    for name, ours, theirs in rows:
        scale = 1.0 if unit == "requests/s" else 1e-6
        mine = ours.requests_per_s if unit == "requests/s" else ours.bytes_per_s * scale
        base = theirs.requests_per_s if unit == "requests/s" else theirs.bytes_per_s * scale
        ratio = mine / base if base else float("nan")
        verdict = "meets" if ratio >= GET_RATIO_TARGET else "below"
        print(
            f"{name:<44} {mine:10.1f} {unit:<10} nginx {base:10.1f}   "
            f"ratio {ratio:5.2f}x  ({verdict} the {GET_RATIO_TARGET}x target)"
        )
        for label, result in (("ours", ours), ("nginx", theirs)):
            if result.errors:
                print(f"  {label}: wrk reported {result.errors}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent 64 KiB GETs")
    parser.add_argument("--repeats", type=int, default=5, help="64 MiB PUTs to time")
    parser.add_argument(
        "--workers", type=int, default=1, help="nginx worker processes, plain and in front"
    )
    args = parser.parse_args()
    if args.seconds < 1 or args.connections < 1 or args.repeats < 1 or args.workers < 1:
        parser.error("--seconds, --connections, --repeats and --workers must be at least 1")

    nginx, wrk = shutil.which("nginx"), shutil.which("wrk")
    machine_info(
        blake3=blake3.__version__,
        nginx=nginx or "not installed",
        wrk=wrk or "not installed",
    )
    single, threaded = blake3_speed()
    print(
        f"BLAKE3, 64 MiB in memory: one thread {single:5.2f} GB/s, max_threads=AUTO {threaded:5.2f} GB/s"
    )

    with tempfile.TemporaryDirectory(prefix="bench-chunks-") as temp:
        workdir = Path(temp)
        floor = disk_write_speed(workdir)
        print(
            f"write + fsync of 64 MiB to a new file here: {floor:5.2f} GB/s "
            "(no durable PUT of a new chunk can be faster)"
        )
        with running_market(workdir) as market:
            hashes, large, puts = bench_puts(market, args.repeats)
            print(
                f"PUT 64 KiB, one connection   {puts['small_per_s']:8.1f} requests/s "
                f"({puts['small_per_s'] * SMALL_BYTES / 1e6:.1f} MB/s)"
            )
            ratio = puts["large_median_gb_s"] / floor
            verdict = "meets" if ratio >= PUT_RATIO_TARGET else "below"
            print(
                f"PUT 64 MiB, new, verified    median {puts['large_median_gb_s']:5.2f} GB/s, "
                f"best {puts['large_best_gb_s']:5.2f} GB/s, ratio to write + fsync "
                f"{ratio:4.2f}x ({verdict} the {PUT_RATIO_TARGET}x target; includes fsync)"
            )
            print(
                f"PUT 64 MiB, already stored   median {puts['large_present_gb_s']:5.2f} GB/s "
                "(verified again: hashed and written to a temporary file, not synced, dropped)"
            )
            if not (nginx and wrk):
                print(
                    "\nThe GET comparison needs nginx and wrk; install them "
                    "(Debian/Ubuntu: apt-get install -y nginx wrk) and run this again."
                )
                return
            print(
                f"\nGET: wrk, {args.seconds} s per figure; 64 KiB chunks with "
                f"{args.connections} connections, the 64 MiB chunk over one; nginx with "
                f"{args.workers} worker process(es)"
            )
            anonymous = small_gets(wrk, market.port, hashes, workdir, args)
            token = (f"Authorization: Bearer {market.token()}",)
            visitor = small_gets(wrk, market.port, hashes, workdir, args, token)
            session = (f"Cookie: sessionid={market.session}",)
            signed_in = small_gets(wrk, market.port, hashes, workdir, args, session)
            big = large_get(wrk, market.port, large, args)
            with plain_nginx(nginx, market.store, workdir, args.workers) as port:
                plain = small_gets(wrk, port, hashes, workdir, args)
                plain_big = large_get(wrk, port, large, args)
            with front_nginx(nginx, market, workdir, args.workers) as port:
                front_anonymous = small_gets(wrk, port, hashes, workdir, args)
                token = (f"Authorization: Bearer {market.token()}",)
                front_visitor = small_gets(wrk, port, hashes, workdir, args, token)
        report_gets(
            [
                ("GET 64 KiB, anonymous (market alone)", anonymous, plain),
                ("GET 64 KiB, visitor token (market alone)", visitor, plain),
                ("GET 64 KiB, signed in (Django path)", signed_in, plain),
                ("GET 64 KiB, anonymous (nginx in front)", front_anonymous, plain),
                ("GET 64 KiB, visitor token (nginx in front)", front_visitor, plain),
            ],
            "requests/s",
        )
        report_gets([("GET 64 MiB (market alone)", big, plain_big)], "MB/s")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        raise SystemExit(str(exc)) from None
