"""The portal in the admin.

Moderation (P2): "Postback changes to approve", the queue of affiliates' proposals with the
live and proposed settings side by side, Approve and Reject (portal/moderation.py).

Invitations: the affiliate's admin page, extended here (affiliates may not import portal),
lists its portal users and has an "Invite a portal user" page for managers with
portal.invite_affiliateuser.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from affiliates.admin import AffiliateAdmin
from affiliates.models import Affiliate
from postbacks.admin.html import change_link
from trackdesk.admin import ReadOnlyAdminMixin

from . import moderation
from .accounts import InvitationError, invite
from .models import AffiliateUser, PostbackProposal, ProposalState

INVITE_PERMISSION = "portal.invite_affiliateuser"


class InviteForm(forms.Form):
    email = forms.EmailField(
        label="E-mail",
        help_text="Also the username. They get a link to set their password (it works once).",
    )


class AffiliateWithPortalAdmin(AffiliateAdmin):
    readonly_fields = [*AffiliateAdmin.readonly_fields, "portal_users"]
    fieldsets = [
        *AffiliateAdmin.fieldsets,
        ("Affiliate portal", {"fields": ["portal_users"]}),
    ]

    def get_urls(self):
        invite_url = path(
            "<int:object_id>/invite/",
            self.admin_site.admin_view(self.invite_view),
            name="affiliates_affiliate_invite",
        )
        return [invite_url, *super().get_urls()]

    def has_invite_permission(self, request) -> bool:
        return request.user.has_perm(INVITE_PERMISSION)

    def get_object(self, request, object_id, from_field=None):
        affiliate = super().get_object(request, object_id, from_field)
        if affiliate is not None:
            affiliate._may_invite = self.has_invite_permission(request)
        return affiliate

    @admin.display(description="Portal users")
    def portal_users(self, affiliate):
        users = affiliate.portal_users.select_related("user").order_by("user__username")
        listed = format_html_join(
            "", "<li>{} ({})</li>", ((m.user.get_username(), _state(m.user)) for m in users)
        )
        invite_link = ""
        if getattr(affiliate, "_may_invite", False):
            invite_link = format_html(
                '<p><a class="button" href="{}">Invite a portal user</a></p>',
                reverse("admin:affiliates_affiliate_invite", args=[affiliate.pk]),
            )
        if not users:
            return format_html("<p>No portal users yet.</p>{}", invite_link)
        return format_html("<ul>{}</ul>{}", listed, invite_link)

    def invite_view(self, request, object_id):
        if not self.has_invite_permission(request):
            raise PermissionDenied
        affiliate = get_object_or_404(Affiliate, pk=object_id)
        form = InviteForm(request.POST or None, initial={"email": affiliate.email})
        if request.method == "POST" and form.is_valid():
            try:
                membership = invite(
                    affiliate, form.cleaned_data["email"], invited_by=request.user, request=request
                )
            except InvitationError as exc:
                form.add_error("email", str(exc))
            else:
                messages.success(
                    request,
                    f"Invitation sent to {membership.user.email}: they set their password with "
                    "the link in it and log in at /portal/.",
                )
                return redirect("admin:affiliates_affiliate_change", affiliate.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Invite a portal user for {affiliate}",
            "opts": self.model._meta,
            "original": affiliate,
            "form": form,
        }
        return TemplateResponse(request, "admin/portal/invite.html", context)


def _state(user) -> str:
    if not user.is_active:
        return "inactive"
    return "password set" if user.has_usable_password() else "invited, no password yet"


admin.site.unregister(Affiliate)
admin.site.register(Affiliate, AffiliateWithPortalAdmin)


@admin.register(AffiliateUser)
class AffiliateUserAdmin(admin.ModelAdmin):
    """Who may log in to the portal for which affiliate. Invite from the affiliate's page;
    deactivate the user (Users) to take a login away."""

    list_display = ["user", "affiliate", "invited", "invited_by"]
    list_select_related = ["user", "affiliate", "invited_by"]
    list_filter = ["affiliate"]
    search_fields = ["user__username", "user__email", "affiliate__name"]
    readonly_fields = ["user", "affiliate", "invited", "invited_by"]

    def has_add_permission(self, request):
        return False  # an invitation creates them

    def has_change_permission(self, request, obj=None):
        return False


APPROVE_PERMISSION = "portal.approve_postbackproposal"


class ProposalStateFilter(admin.SimpleListFilter):
    """Waiting for approval unless another state is picked: the queue opens on the work."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [*ProposalState.choices, ("all", "All")]

    def value(self):
        return super().value() or ProposalState.PENDING

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value == "all" else queryset.filter(state=value)

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


@admin.register(PostbackProposal)
class PostbackProposalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The approval queue. Read-only rows; the decision is the Approve and Reject buttons on a
    proposal's page, for users with portal.approve_postbackproposal."""

    list_display = ["__str__", "affiliate", "proposed_by", "proposed_at", "state", "decided_by"]
    list_select_related = ["affiliate", "postback", "proposed_by", "decided_by"]
    list_filter = [ProposalStateFilter, "is_new"]
    search_fields = ["affiliate__name", "postback__name"]
    fields = [
        "affiliate",
        "live_postback",
        "is_new",
        "state",
        "proposed_by",
        "proposed_at",
        "decided_by",
        "decided_at",
        "reason",
    ]
    readonly_fields = fields
    change_form_template = "admin/portal/postbackproposal/change_form.html"

    def get_urls(self):
        def wrap(view):
            return self.admin_site.admin_view(view)

        return [
            path(
                "<int:object_id>/approve/",
                wrap(self.approve_view),
                name="portal_postbackproposal_approve",
            ),
            path(
                "<int:object_id>/reject/",
                wrap(self.reject_view),
                name="portal_postbackproposal_reject",
            ),
            *super().get_urls(),
        ]

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm(APPROVE_PERMISSION)

    @admin.display(description="Postback")
    def live_postback(self, proposal):
        return change_link(proposal.postback) if proposal.postback_id else "-"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        proposal = self.get_object(request, object_id)
        extra = {}
        if proposal is not None:
            # Secret-looking values stay masked for whoever may not change postbacks.
            mask = not request.user.has_perm("postbacks.change_postback")
            extra = {
                "diff_rows": moderation.diff_rows(proposal, mask=mask),
                "may_decide": self.has_approve_permission(request)
                and proposal.state == ProposalState.PENDING,
                "proposal": proposal,
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def approve_view(self, request, object_id):
        proposal = self._decidable(request, object_id)
        try:
            postback = moderation.approve(proposal, request.user)
        except moderation.ModerationError as error:
            messages.error(request, str(error))
            return redirect("admin:portal_postbackproposal_change", proposal.pk)
        messages.success(request, format_html("Approved: {} is live.", change_link(postback)))
        return redirect("admin:portal_postbackproposal_changelist")

    def reject_view(self, request, object_id):
        proposal = self._decidable(request, object_id)
        try:
            moderation.reject(proposal, request.user, request.POST.get("reason", ""))
        except moderation.ModerationError as error:
            messages.error(request, str(error))
            return redirect("admin:portal_postbackproposal_change", proposal.pk)
        messages.success(request, f"Rejected {proposal}; the affiliate sees your reason.")
        return redirect("admin:portal_postbackproposal_changelist")

    def _decidable(self, request, object_id) -> PostbackProposal:
        if request.method != "POST" or not self.has_approve_permission(request):
            raise PermissionDenied
        return get_object_or_404(PostbackProposal, pk=object_id)
