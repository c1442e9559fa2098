"""A Redis of the test's own: redis-server on a free port with its folder under tmp_path.

For tests that stop, kill or fill Redis, or measure it: never the shared one on 6379.
Where redis-server is missing they skip with the command to install it, except in CI.
"""

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import service_missing
from zones.load.redis_server import OwnRedis


@pytest.fixture
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        service_missing("redis-server is not installed; apt-get install -y redis-server")
    server = OwnRedis(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()
