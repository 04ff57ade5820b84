"""Token authentication that remembers, for a few seconds per process, whom a token belongs to
and what that user may do.

DRF's TokenAuthentication reads the token and its user on every request, and Django's model
permissions read the user's and their groups' permissions: three queries before the view runs,
a third of an ingest request's time. Here the user, with their permissions already read, is
kept in a `Memo` (trackdesk/memo.py) under the token for HOT_CONFIG_CACHE_SECONDS (default 5;
0 reads the database every time), and each request gets its own copy of it.

How soon a change applies: a save or delete of a token, user, group or permission, or a change
of a user's groups or permissions or of a group's permissions, made through the ORM (the admin,
the API, the shell) applies at once in the process that made it and within those seconds in
every other one. That covers revoking a token, deactivating a user and taking a role away.

Named in REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES, so it is imported while DRF loads:
the models are imported on first use, not here.
"""

import copy

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from trackdesk.memo import Memo

_memo: Memo | None = None


def _users() -> Memo:
    global _memo
    if _memo is None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group, Permission
        from django.db.models.signals import m2m_changed
        from rest_framework.authtoken.models import Token

        User = get_user_model()
        memo = Memo("API tokens", models=[Token, User, Group, Permission])
        for through in (User.groups.through, User.user_permissions.through):
            m2m_changed.connect(memo._forget, sender=through, weak=False)
        m2m_changed.connect(memo._forget, sender=Group.permissions.through, weak=False)
        _memo = memo
    return _memo


def _load(key: str):
    """(user, token) for the key, the user's permissions read once; None for no such token."""
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None:
        return None
    if token.user.is_active:
        token.user.get_all_permissions()  # fills the user's permission caches, kept with it
    return token.user, token


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's `Authorization: Token <key>`, the token's user remembered (see the module's text)."""

    def authenticate_credentials(self, key):
        found = _users().get(key, lambda: _load(key))
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user, token = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        # A request may set attributes on its user; the remembered one stays as read.
        return copy.copy(user), token
