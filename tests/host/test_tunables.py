import pytest

from host.tunables import TunableError, Tunables, tunable_variables


def test_defaults_are_the_documented_ones() -> None:
    tunables = Tunables.from_environment({})
    assert tunables == Tunables()
    assert tunables.checkpoint_ms == 300_000
    assert tunables.transfer_token_ttl_ms == 10_000
    assert (tunables.heartbeat_ms, tunables.heartbeat_timeout_ms) == (5_000, 15_000)
    assert (tunables.restart_max_in_window, tunables.quarantine_ms) == (3, 60_000)


def test_each_variable_overrides_its_tunable() -> None:
    for name, variable, default in tunable_variables():
        value = default + 1 if name != "heartbeat_ms" else 6_000
        tunables = Tunables.from_environment({variable: str(value)})
        assert getattr(tunables, name) == value


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("FABRIC_HOST_QUARANTINE_MS", "soon", "must be a whole number, got 'soon'"),
        ("FABRIC_HOST_TRANSFER_TOKEN_TTL_MS", "10", "must be 1000..300000, got 10"),
        ("FABRIC_HOST_HEARTBEAT_TIMEOUT_MS", "4000", "must be longer than"),
    ],
)
def test_bad_values_stop_with_the_variable_named(variable: str, raw: str, message: str) -> None:
    with pytest.raises(TunableError, match=variable) as caught:
        Tunables.from_environment({variable: raw})
    assert message in str(caught.value)
