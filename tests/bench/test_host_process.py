"""bench/host_process.py: the environment the benches' host runs in."""

from pathlib import Path

from bench.host_process import SECRET_VARIABLE, host_environment
from market.rates import JOIN_LIMIT_DEFAULTS, rate_parse


def test_the_host_runs_embedded_on_sqlite_whatever_the_shell_says(monkeypatch) -> None:
    monkeypatch.setenv("FABRIC_HOST_DATABASE_URL", "postgresql://127.0.0.1/test")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("FABRIC_JOINS_PER_ADDRESS", "1/60")
    env = host_environment(data_dir=Path("/data"), secret="s" * 43)
    assert "FABRIC_HOST_DATABASE_URL" not in env and "REDIS_URL" not in env
    assert env["FABRIC_DATA_DIR"] == "/data" and env[SECRET_VARIABLE] == "s" * 43
    # every visitor of the bench joins from 127.0.0.1: no join limit may stop it
    assert all(rate_parse(name, env[name]) is None for name in JOIN_LIMIT_DEFAULTS)
