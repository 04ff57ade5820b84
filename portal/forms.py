"""The portal's postback form: the admin's postback form (same checks, picker and live
preview), with the affiliate fixed to the user's own and the offers they can run."""

from django import forms
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from affiliates.models import Offer
from postbacks.admin.forms import PostbackForm, placeholder_help
from postbacks.assistant.catalog import platform_choices
from postbacks.models import Postback

from .access import runnable_offers


def offer_choices(affiliate, postback: Postback):
    """The offers the affiliate can run, plus those the postback lists already (an offer
    turned inactive since), so saving it never drops one silently."""
    listed = Q(pk__in=postback.offers.all()) if postback.pk else Q(pk__in=[])
    return (runnable_offers(affiliate) | Offer.objects.filter(listed)).distinct().order_by("name")


class PortalPostbackForm(PostbackForm):
    class Meta(PostbackForm.Meta):
        fields = [name for name in PostbackForm.Meta.fields if name != "affiliate"]
        widgets = {
            **PostbackForm.Meta.widgets,
            "scope": forms.RadioSelect,
            "method": forms.RadioSelect,
            "offers": forms.CheckboxSelectMultiple,
            "conversion_types": forms.CheckboxSelectMultiple,
        }

    def __init__(self, *args, affiliate, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.affiliate = affiliate
        self.fields["offers"].queryset = offer_choices(affiliate, self.instance)
        url = self.fields["url"]
        url.widget.preview_endpoint = reverse("portal:postback_preview")
        url.widget.settings_link = False
        url.help_text = format_html(
            "Values are URL-encoded when sent.<details><summary>All placeholders and their "
            "meaning</summary>{}</details>",
            placeholder_help(link=False),
        )


class AssistantStartForm(forms.Form):
    """The portal assistant's first step: the affiliate's platform, or the URL it gave them."""

    platform = forms.ChoiceField(
        label="Your platform",
        required=False,
        choices=[("", "Recognise it from the pasted URL")] + platform_choices(),
    )
    url = forms.CharField(
        label="… or the postback URL your platform gave you",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For example https://trk.example.com/postback?clickid=REPLACE&payout=OPTIONAL",
    )
    keep = forms.CharField(
        label="Keep as written",
        required=False,
        max_length=500,
        help_text="Parameters to send exactly as pasted, comma-separated (e.g. status, sub1).",
    )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("url", "").strip() and not cleaned.get("platform"):
            raise forms.ValidationError("Choose your platform or paste your postback URL.")
        return cleaned
