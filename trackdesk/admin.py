"""Admin behaviour every app's model admins share."""

from django.contrib import messages


class DeactivateInsteadOfDeleteMixin:
    """When rows still refer to the object, Django's delete page lists them and refuses; this
    adds what to do instead, so history (clicks, conversions, the delivery log) is never lost."""

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if protected:
            name = self.model._meta.verbose_name
            self.message_user(
                request,
                f"This {name} is still referred to, so it cannot be deleted. Deactivate it "
                "instead (untick Active and save): it stops taking part and its history is kept.",
                messages.WARNING,
            )
        return deleted, counts, perms_needed, protected
