"""The user a role-granting command names: found, or created when a password is given."""

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management.base import CommandError


def user_named(username: str, password: str | None) -> AbstractBaseUser:
    """The user called `username`; a new one with `password` if none is, else CommandError.

    Call it inside the command's transaction, so that a user created for a grant that is
    then refused is not kept.
    """
    users = get_user_model()
    user = users.objects.filter(username=username).first()
    if user is not None:
        return user
    if not password:
        raise CommandError(f"No user named {username}; give --password to create one.")
    return users.objects.create_user(username=username, password=password)
