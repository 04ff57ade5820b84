"""Put a user in a role's group: `manage.py assign_role alice managers` (or `support`)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from postbacks.roles import ROLE_NAMES, sync_roles


class Command(BaseCommand):
    help = "Give a user a role: 'managers' (Affiliate managers) or 'support' (Support staff)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", choices=sorted(ROLE_NAMES))
        parser.add_argument(
            "--only", action="store_true", help="Remove the user from the other role's group."
        )

    @transaction.atomic
    def handle(self, *args, username, role, only, **options):
        User = get_user_model()
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"No user named {username!r}; create it first.") from None
        sync_roles(Group, Permission)  # recreates the groups should they have been deleted
        group = Group.objects.get(name=ROLE_NAMES[role])
        if only:
            user.groups.remove(*Group.objects.filter(name__in=ROLE_NAMES.values()))
        user.groups.add(group)
        if not user.is_staff:
            user.is_staff = True  # the admin only lets staff users in
            user.save(update_fields=["is_staff"])
        self.stdout.write(f"{username} is now in {group.name!r}.")
