"""The portal's records: which affiliate a user belongs to, and changes waiting for approval."""

from django.conf import settings
from django.db import models

from affiliates.models import Affiliate


class AffiliateUser(models.Model):
    """A portal login: exactly one affiliate per user, several users per affiliate.

    The user is never staff (the invitation creates it without staff rights, and the portal's
    views refuse staff users), so it cannot open /admin/.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="affiliate_user"
    )
    affiliate = models.ForeignKey(Affiliate, on_delete=models.CASCADE, related_name="portal_users")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    invited = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "portal user"
        permissions = [("invite_affiliateuser", "Can invite affiliate users to the portal")]

    def __str__(self) -> str:
        return f"{self.user} ({self.affiliate})"


class ProposalState(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Replaced or withdrawn"


class PostbackProposal(models.Model):
    """An affiliate's new postback, or a change to one's request (URL, method, body, headers,
    currency, status values), waiting for a manager (portal/moderation.py). The live postback
    keeps firing unchanged until it is approved; a new one does not exist until then."""

    affiliate = models.ForeignKey(
        Affiliate, on_delete=models.CASCADE, related_name="postback_proposals"
    )
    # Blank for a new postback until it is approved (then the postback it created).
    postback = models.ForeignKey(
        "postbacks.Postback",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="proposals",
    )
    is_new = models.BooleanField("new postback", default=False)
    # The proposed settings: the request fields for a change; everything for a new postback
    # (offers and conversion types as ids).
    values = models.JSONField(default=dict)
    # The live request fields when it was proposed: approving refuses once they changed.
    base = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=10, choices=ProposalState.choices, default=ProposalState.PENDING
    )
    reason = models.TextField("reason", blank=True, help_text="Shown to the affiliate.")
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    proposed_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-proposed_at", "-id"]
        indexes = [models.Index(fields=["state", "proposed_at"])]
        permissions = [("approve_postbackproposal", "Can approve or reject postback changes")]
        verbose_name = "postback change to approve"
        verbose_name_plural = "postback changes to approve"

    def __str__(self) -> str:
        name = self.values.get("name") or (self.postback and self.postback.name) or "postback"
        return f"{'New postback' if self.is_new else 'Change to'} “{name}”"
