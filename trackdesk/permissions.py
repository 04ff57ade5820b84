"""Who may call which API view: Django model permissions for every method, reads included,
and named permissions for views that are not one model's rows. The role table: docs/api.md.

Kept apart from trackdesk/api.py: REST_FRAMEWORK names a class here, and DRF imports it while
its own views module is still loading, so this module may import nothing of DRF but
rest_framework.permissions.
"""

from rest_framework.permissions import BasePermission, DjangoModelPermissions

VIEW = "%(app_label)s.view_%(model_name)s"
ADD = "%(app_label)s.add_%(model_name)s"
CHANGE = "%(app_label)s.change_%(model_name)s"


class ModelPermissions(DjangoModelPermissions):
    """Django's model permissions on every method, reads included (DRF's own lets any
    authenticated user read): GET, HEAD and OPTIONS need view, POST add, PUT and PATCH change,
    DELETE delete. The default for every API view (REST_FRAMEWORK in settings)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": [VIEW],
        "HEAD": [VIEW],
        "OPTIONS": [VIEW],
    }


class StoreModelPermissions(ModelPermissions):
    """For a POST that stores: it adds a row or replaces the one with the same key (an exchange
    rate for the same day), so it needs add and change."""

    perms_map = {**ModelPermissions.perms_map, "POST": [ADD, CHANGE]}


class RequiredPermissions(BasePermission):
    """For a view that is not one model's list and rows: an authenticated user holding every
    permission in `required`, whatever the method. Build one with `requires(...)`."""

    required: tuple[str, ...] = ()

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perms(self.required))


def requires(*perms: str) -> type[RequiredPermissions]:
    """A permission class for `permission_classes`: the caller needs all of `perms`."""
    return type(f"Requires({', '.join(perms)})", (RequiredPermissions,), {"required": perms})
