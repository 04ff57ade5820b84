"""API tokens for internal services: one service user per service, one token each.

A service user has no password and no admin access; its token (DRF's authtoken) is what the
service sends as `Authorization: Token <key>`, and its roles (groups) are what the token may do:
the API checks the user's model permissions. Revoking deletes the token; rotating replaces it.
"""

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token


@transaction.atomic
def issue_token(service: str, roles: Iterable = ()) -> Token:
    """A new token for the service user `service`, created (without a password) when missing,
    and the user put in the groups `roles`."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=service)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    if Token.objects.filter(user=user).exists():
        raise ValidationError(f"'{service}' already has a token: rotate or revoke that one.")
    user.groups.add(*roles)
    return Token.objects.create(user=user)


@transaction.atomic
def rotate_token(user) -> Token:
    """Replace the user's token: the old key stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


def masked(key: str) -> str:
    """Enough of a key to tell tokens apart in a list, not enough to use it."""
    return f"{key[:4]}…" if key else ""
