"""Fixtures of the sign-in tests: cheap password hashing, and a count of password checks."""

import pytest
from django.contrib.auth.base_user import AbstractBaseUser

PASSWORD = "loom and shuttle"


@pytest.fixture
def fast_password_hashing(settings):
    """Each failed sign-in hashes a password; the default hasher takes a quarter second."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def olga(django_user_model, fast_password_hashing):
    return django_user_model.objects.create_user("olga", password=PASSWORD)


@pytest.fixture
def password_checks(monkeypatch):
    """The username of every password checked against a stored hash, in order."""
    calls = []
    check = AbstractBaseUser.check_password

    def counted(user, raw_password):
        calls.append(user.get_username())
        return check(user, raw_password)

    monkeypatch.setattr(AbstractBaseUser, "check_password", counted)
    return calls
