"""Admin behaviour every app's model admins share: read-only records, and deactivating instead
of deleting."""

from django.contrib.admin.actions import delete_selected
from django.contrib.admin.utils import model_ngettext, unquote
from django.db import models
from django.db.models import Exists, OuterRef
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.html import strip_tags

REFUSAL_TEMPLATE = "admin/deactivate_instead.html"
# Rows referring to one object are counted up to this many ("1,000+ deliveries"): a postback
# with millions of deliveries gets its delete page as fast as one with a few.
COUNT_CAP = 1000
# A bulk delete lists at most this many of the objects it refuses.
LISTED = 20


class ReadOnlyAdminMixin:
    """A record the admin shows and never edits (the postback log, alerts, proposals): no add,
    change or delete; its own actions (retry, acknowledge, approve) have their own permissions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DeactivateInsteadOfDeleteMixin:
    """Objects that history refers to (clicks, conversions, the postback log) are deactivated,
    never deleted, so nothing that happened is lost.

    The delete page, for one object or the bulk action, says one thing when rows still refer to
    the object, or when the user may not delete it: it is not deleted, why, and a button that
    deactivates it instead. Objects nothing refers to may still be deleted by whoever has the
    permission (a postback added by mistake). The list gets Activate / Deactivate actions.
    """

    actions = ["activate", "deactivate"]
    # What deactivating does, in the model admin's own words (shown on the refusal page).
    inactive_means = "An inactive {name} stops taking part."

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None or not self.has_view_or_change_permission(request, obj):
            return super().delete_view(request, object_id, extra_context)
        if not self.has_delete_permission(request, obj):
            return self.refuse_deletion(request, [obj], references={}, status=403)
        references = self.references([obj])
        if references:
            return self.refuse_deletion(request, [obj], references=references)
        return super().delete_view(request, object_id, extra_context)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            _, name, description = actions["delete_selected"]
            actions["delete_selected"] = (_delete_selected_unless_referred_to, name, description)
        return actions

    def render_delete_form(self, request, context):
        # Reached when nothing refers to the object with a protected key. Should deleting it
        # still need rows the user may not delete (an alert, a proposal) or that a deeper key
        # protects, the page says the same one thing, not "your account doesn't have
        # permission to delete ...".
        blocked = blocking_rows(context)
        if blocked:
            obj = context["object"]
            return self.refuse_deletion(request, [obj], references={obj: blocked})
        return super().render_delete_form(request, context)

    def references(self, objs) -> dict:
        """{object: ["12 deliveries", "1,000+ clicks"]} for each of `objs` that rows of other
        tables refer to with a protected foreign key; objects nothing refers to are left out.
        One query finds which are referred to; the counts are capped, for at most LISTED."""
        relations = [
            rel
            for rel in self.model._meta.related_objects
            if rel.one_to_many and rel.on_delete in (models.PROTECT, models.RESTRICT)
        ]
        if not relations:
            return {}
        flags = {
            f"_ref_{i}": Exists(
                rel.related_model._base_manager.filter(**{rel.field.name: OuterRef("pk")})
            )
            for i, rel in enumerate(relations)
        }
        found = {}
        rows = self.model._base_manager.filter(pk__in=[obj.pk for obj in objs]).annotate(**flags)
        by_pk = {obj.pk: obj for obj in objs}
        for row in rows.order_by("pk"):
            used = [rel for i, rel in enumerate(relations) if getattr(row, f"_ref_{i}")]
            if used:
                found[by_pk.get(row.pk, row)] = used
        return {
            obj: [_count_of(rel, obj) for rel in used] if n < LISTED else []
            for n, (obj, used) in enumerate(found.items())
        }

    def refuse_deletion(self, request, objs, *, references: dict, status: int = 200):
        """The one page that says why the objects stay, and offers to deactivate them."""
        opts = self.model._meta
        referred = [obj for obj in references if isinstance(obj, self.model)] or objs
        to_deactivate = [obj for obj in referred if getattr(obj, "active", False)]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Cannot delete {model_ngettext(opts, len(objs))}",
            "subtitle": None,
            "opts": opts,
            "objects": objs,
            "single": objs[0] if len(objs) == 1 else None,
            "references": list(references.items())[:LISTED],
            "more": max(len(references) - LISTED, 0),
            "inactive_means": self.inactive_means.format(name=opts.verbose_name),
            "to_deactivate": to_deactivate if self.has_change_permission(request) else [],
            "already_inactive": not to_deactivate,
            "media": self.media,
        }
        return TemplateResponse(request, REFUSAL_TEMPLATE, context, status=status)

    def set_active(self, request, obj, active: bool) -> None:
        """Activate or deactivate one object; model admins add what else that means."""
        obj.active = active
        obj.save()
        self.log_change(request, obj, "Activated." if active else "Deactivated.")

    def _set_active_on(self, request, queryset, active: bool):
        changed = list(queryset.filter(active=not active))
        for obj in changed:
            self.set_active(request, obj, active)
        word = "Activated" if active else "Deactivated"
        self.message_user(
            request, f"{word} {len(changed)} {model_ngettext(self.model._meta, len(changed))}."
        )
        back_to = request.POST.get("_back_to_change")
        if back_to and len(changed) == 1:  # from the refusal page: back to the object
            return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", back_to)
        return None

    def activate(self, request, queryset):
        return self._set_active_on(request, queryset, True)

    activate.allowed_permissions = ["change"]
    activate.short_description = "Activate selected %(verbose_name_plural)s"

    def deactivate(self, request, queryset):
        return self._set_active_on(request, queryset, False)

    deactivate.allowed_permissions = ["change"]
    deactivate.short_description = "Deactivate selected %(verbose_name_plural)s"


def _delete_selected_unless_referred_to(modeladmin, request, queryset):
    """Django's bulk delete, after the same refusal as the delete page when history refers to
    one of the selected objects."""
    objs = list(queryset)
    references = modeladmin.references(objs)
    if references:
        return modeladmin.refuse_deletion(request, objs, references=references)
    response = delete_selected(modeladmin, request, queryset)
    blocked = blocking_rows(getattr(response, "context_data", None) or {})
    if blocked:  # as on the delete page (render_delete_form)
        return modeladmin.refuse_deletion(
            request, objs, references={"Deleting them would also delete": blocked}
        )
    return response


def blocking_rows(context) -> list[str]:
    """What Django's delete page would list as stopping the deletion: the kinds of rows the
    user may not delete, and protected rows further down."""
    lacking = sorted(str(name) for name in context.get("perms_lacking") or ())
    protected = [strip_tags(str(row)) for row in context.get("protected") or ()]
    return lacking + protected[:LISTED]


def _count_of(rel, obj) -> str:
    rows = rel.related_model._base_manager.filter(**{rel.field.name: obj})
    n = rows.values("pk")[: COUNT_CAP + 1].count()
    # Named by the relation ("deliveries", "clicks"): plain nouns, whatever the pages are called.
    plural = rel.get_accessor_name().replace("_", " ")
    name = plural if n != 1 else plural[:-3] + "y" if plural.endswith("ies") else plural[:-1]
    return f"{COUNT_CAP:,}+ {name}" if n > COUNT_CAP else f"{n:,} {name}"
