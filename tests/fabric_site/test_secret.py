"""The generated secret key: private, made once, the same for every process of a data folder."""

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from fabric_site.secret import SECRET_KEY_FILE, secret_key_in
from tests.subprocesses import REPO_ROOT


def test_the_key_is_generated_once_private_and_then_read_back(tmp_path):
    data_dir = tmp_path / "not-yet-made"

    key = secret_key_in(data_dir)

    path = data_dir / SECRET_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip() == key
    assert secret_key_in(data_dir) == key
    assert [p.name for p in data_dir.iterdir()] == [SECRET_KEY_FILE]  # nothing left aside


def test_a_key_already_there_is_never_replaced(tmp_path):
    path = tmp_path / SECRET_KEY_FILE
    path.write_text("k" * 60 + "\n")
    path.chmod(0o600)

    assert secret_key_in(tmp_path) == "k" * 60


def test_processes_starting_together_all_get_the_same_key(tmp_path):
    code = (
        "from pathlib import Path; from fabric_site.secret import secret_key_in; "
        f"print(secret_key_in(Path({str(tmp_path)!r})))"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    keys = {start.communicate(timeout=60)[0].strip() for start in starts}

    assert len(keys) == 1
    assert keys == {(tmp_path / SECRET_KEY_FILE).read_text().strip()}


def test_a_key_file_others_may_read_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / SECRET_KEY_FILE
    path.write_text("k" * 60 + "\n")
    path.chmod(0o644)

    with pytest.raises(ImproperlyConfigured, match=r"others may read it \(mode 644\).*chmod 600"):
        secret_key_in(tmp_path)
    assert path.read_text() == "k" * 60 + "\n"


@pytest.mark.parametrize("content", ["", "\n", "too-short\n"], ids=["empty", "blank", "short"])
def test_a_key_file_without_a_usable_key_is_refused_and_left_as_it_is(tmp_path, content):
    path = tmp_path / SECRET_KEY_FILE
    path.write_text(content)
    path.chmod(0o600)

    with pytest.raises(ImproperlyConfigured, match="fewer than 50; delete the file"):
        secret_key_in(tmp_path)
    assert path.read_text() == content
