"""CPU per HTTP Basic request: DRF's stock BasicAuthentication against the market's.

    python bench/bench_basic_auth.py [--requests N] [--flood M]

Both run in this one process over a fresh SQLite database in a temporary folder, with
Django's default password hasher (PBKDF2, as in production), on requests built by
RequestFactory, so what is timed is the authentication alone. Two loads:

* right password: N requests of one creator's tool. The stock class hashes the password
  every time; the market's hashes it once and then finds the remembered success.
* wrong passwords: M requests from one address with a wrong password. The baseline is
  the stock class without sign-in limits (as the site was); the market's is refused
  without hashing once the address reached AXES_FAILURE_LIMIT failures.

CPU time of this process (time.process_time) is reported: the per-request median for
the first load, the total for the second, each with its ratio to the baseline.
"""

import argparse
import base64
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info  # noqa: E402

PASSWORD = "loom and shuttle"


def django_setup(data_dir: str) -> None:
    os.environ["FABRIC_DATA_DIR"] = data_dir
    for variable in ("DATABASE_URL", "REDIS_URL", "FABRIC_DEBUG"):
        os.environ.pop(variable, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fabric_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def cpu_seconds(call: Callable[[], object]) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--flood", type=int, default=40)
    args = parser.parse_args()
    machine_info(requests=str(args.requests), flood=str(args.flood))
    with tempfile.TemporaryDirectory(prefix="bench-basic-") as data_dir:
        django_setup(data_dir)
        logging.getLogger("axes").setLevel(logging.ERROR)  # one warning per failure otherwise
        run(args.requests, args.flood)


def run(requests: int, flood: int) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory
    from rest_framework import exceptions
    from rest_framework.authentication import BasicAuthentication
    from rest_framework.request import Request

    from fabric_site.basic_auth import BoundedBasicAuthentication

    get_user_model().objects.create_user("olga", password=PASSWORD)
    factory = RequestFactory()

    def request_with(password: str, address: str) -> Request:
        token = base64.b64encode(f"olga:{password}".encode()).decode()
        return Request(factory.get("/", HTTP_AUTHORIZATION=f"Basic {token}", REMOTE_ADDR=address))

    def load(kind: type[BasicAuthentication], password: str, address: str, count: int) -> list:
        """CPU seconds of each of `count` requests authenticated by a new `kind`."""

        def attempt() -> None:
            with contextlib.suppress(exceptions.APIException):  # refusals are part of the load
                kind().authenticate(request_with(password, address))

        return [cpu_seconds(attempt) for _ in range(count)]

    print(f"password hasher: {settings.PASSWORD_HASHERS[0].rsplit('.', 1)[-1]}")
    settings.AXES_ENABLED = False  # the site as it was: no sign-in limits
    stock = load(BasicAuthentication, PASSWORD, "192.0.2.1", requests)
    stock_flood = sum(load(BasicAuthentication, "wrong", "192.0.2.2", flood))
    settings.AXES_ENABLED = True
    ours = load(BoundedBasicAuthentication, PASSWORD, "192.0.2.3", requests)
    ours_flood = sum(load(BoundedBasicAuthentication, "wrong", "192.0.2.4", flood))

    base, mine = statistics.median(stock), statistics.median(ours)
    print(
        f"right password, {requests} requests: stock median {base * 1e3:8.2f} ms CPU a request,"
        f" bounded median {mine * 1e3:6.2f} ms (first {ours[0] * 1e3:.0f} ms)"
        f"  ratio {base / mine:,.0f}x less CPU"
    )
    print(
        f"wrong password, {flood} requests from one address: stock {stock_flood:6.2f} s CPU,"
        f" bounded {ours_flood:5.2f} s (limit {settings.AXES_FAILURE_LIMIT} failures)"
        f"  ratio {stock_flood / ours_flood:,.1f}x less CPU"
    )


if __name__ == "__main__":
    main()
