"""The harness's own market serves every visitor from 127.0.0.1: it runs without join limits."""

from market.rates import JOIN_LIMIT_DEFAULTS, rate_parse
from zones.load.server import OwnServer


def test_the_harness_s_own_server_turns_every_join_limit_off(tmp_path):
    server = OwnServer(log_path=tmp_path / "server.log", booths=1)
    server.data_dir = tmp_path

    env = server.environment()

    assert set(JOIN_LIMIT_DEFAULTS) <= set(env)
    assert all(rate_parse(name, env[name]) is None for name in JOIN_LIMIT_DEFAULTS)
