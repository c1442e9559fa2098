"""Who may watch a market on the dashboard: its operators, and superusers."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from market.rebac.selectors import rebac_check, rebac_principal


def may_operate(user: AbstractBaseUser | AnonymousUser | None, market_id: int) -> bool:
    """Whether `user` holds `operator` on the market (a superuser always does)."""
    if user is None or not user.is_authenticated:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return rebac_check(
        object=f"market:{market_id}", relation="operator", user=rebac_principal(user)
    )
