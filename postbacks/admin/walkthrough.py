"""The postback walkthrough page: the affiliate's tracking link, a simulated click, a test
conversion through the conversion service, and the delivery it fires, each step done only when
its row exists. The click and the conversion are real rows made by the same services as real
traffic; the forms here check every value the page sends back.
"""

import secrets
from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from affiliates.links import tracking_url
from affiliates.models import Offer
from conversions import services
from conversions.models import (
    MONEY,
    Click,
    Conversion,
    ConversionStatus,
    ConversionType,
    StatusChangeSource,
    validate_exact_digits,
)
from postbacks.admin.html import recent_deliveries
from postbacks.models import Delivery, Postback, Scope

TEMPLATE = "admin/postbacks/walkthrough.html"
WALKTHROUGH_USER_AGENT = "Postback walkthrough (admin)"
PAYOUT_MESSAGE = "The payout must be a number such as 12.50, or blank."


@dataclass
class Step:
    title: str
    done: bool


# --- The page -------------------------------------------------------------------------------


def walkthrough_view(request, object_id: int, model_admin):
    postback = get_object_or_404(Postback.objects.select_related("affiliate"), pk=object_id)
    if not model_admin.has_view_or_change_permission(request, postback):
        raise PermissionDenied
    can_act = model_admin.has_send_test_permission(request)
    if request.method == "POST":
        if not can_act:
            raise PermissionDenied
        return _take_step(request, postback)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Walkthrough: {postback}",
        "postback": postback,
        "original": postback,
        "can_act": can_act,
        "sample_click_id": sample_click_id(),
        "conversion_types": postback.conversion_types.all(),
        "statuses": ConversionStatus.choices,
        "default_status": postback.statuses[0] if postback.statuses else "approved",
        **_progress(request, postback),
    }
    return TemplateResponse(request, TEMPLATE, context)


def _progress(request, postback: Postback) -> dict:
    """Where the walkthrough stands: each step is done only when its row exists."""
    query = ProgressForm(request.GET, postback=postback)
    query.is_valid()  # a value that is not one of this postback's rows is left out
    click = query.cleaned_data.get("click")
    conversion = query.cleaned_data.get("conversion")
    offers = list(offers_in_scope(postback))
    offer = query.cleaned_data.get("offer") or (click.offer if click else None)
    offer = offer or (offers[0] if offers else None)
    deliveries = deliveries_for(postback, conversion)
    delivery = deliveries.first()
    reason = why_no_delivery(postback, conversion) if conversion else ""
    field = postback.affiliate.click_field
    return {
        "offers": offers,
        "offer": offer,
        "click_field": field,
        "click_id": click_id_of(click, field) if click else "",
        "tracking_url": tracking_url(postback.affiliate, offer, request) if offer else "",
        "click": click,
        "conversion": conversion,
        "delivery": delivery,
        "reason": reason,
        "deliveries": recent_deliveries(
            deliveries, show="postback", conversion__id__exact=conversion.pk
        )
        if conversion
        else "",
        # The page reloads itself until the delivery is there and finished.
        "waiting": bool(conversion and not reason)
        and (delivery is None or not delivery.is_finished),
        "steps": [
            Step("Tracking link", offer is not None),
            Step("Simulated click", click is not None),
            Step("Test conversion", conversion is not None),
            Step("Delivery", delivery is not None),
        ],
    }


def _take_step(request, postback: Postback):
    step = StepForm(request.POST)
    if not step.is_valid():
        return HttpResponseBadRequest("Unknown walkthrough step.")
    here = reverse("admin:postbacks_postback_walkthrough", args=[postback.pk])
    take = _click_step if step.cleaned_data["action"] == "click" else _conversion_step
    return take(request, postback, here)


def _click_step(request, postback: Postback, here: str):
    form = ClickStepForm(request.POST, postback=postback)
    if not form.is_valid():
        messages.error(request, "Choose an offer in the postback's scope and a click ID.")
        return redirect(here)
    offer = form.cleaned_data["offer"]
    click = simulate_click(postback, offer, form.cleaned_data["click_id"])
    return redirect(f"{here}?{urlencode({'click': click.pk, 'offer': offer.pk})}")


def _conversion_step(request, postback: Postback, here: str):
    form = ConversionStepForm(request.POST, postback=postback)
    if not form.is_valid():
        if set(form.errors) - {"payout"}:
            messages.error(request, "Simulate a click first, then pick a type and a status.")
            return redirect(here)
        messages.error(request, form.errors["payout"][0])
        return redirect(f"{here}?{urlencode({'click': form.cleaned_data['click'].pk})}")
    data = form.cleaned_data
    conversion = create_test_conversion(
        data["click"], data["conversion_type"], data["status"], data["payout"]
    )
    return redirect(f"{here}?{urlencode({'click': data['click'].pk, 'conversion': conversion.pk})}")


# --- Forms: what the page sends back --------------------------------------------------------


class ProgressForm(forms.Form):
    """The page's query string: the rows made so far, only this postback's own."""

    click = forms.ModelChoiceField(Click.objects.none(), required=False)
    conversion = forms.ModelChoiceField(Conversion.objects.none(), required=False)
    offer = forms.ModelChoiceField(Offer.objects.none(), required=False)

    def __init__(self, data, *, postback: Postback):
        super().__init__(data)
        self.fields["click"].queryset = clicks_of(postback)
        self.fields["offer"].queryset = offers_in_scope(postback)
        self.fields["conversion"].queryset = Conversion.objects.filter(
            affiliate=postback.affiliate
        ).select_related("conversion_type")

    def clean(self):
        cleaned = super().clean()
        conversion, click = cleaned.get("conversion"), cleaned.get("click")
        if conversion is not None and (click is None or conversion.click_id != click.pk):
            del cleaned["conversion"]  # only a conversion of the click shown is a step done
        return cleaned


class StepForm(forms.Form):
    action = forms.ChoiceField(choices=[("click", "Simulate a click"), ("conversion", "Convert")])


class ClickStepForm(forms.Form):
    offer = forms.ModelChoiceField(Offer.objects.none())
    click_id = forms.CharField(max_length=255)

    def __init__(self, data, *, postback: Postback):
        super().__init__(data)
        self.fields["offer"].queryset = offers_in_scope(postback)


class ConversionStepForm(forms.Form):
    click = forms.ModelChoiceField(Click.objects.none())
    conversion_type = forms.ModelChoiceField(ConversionType.objects.none())
    status = forms.ChoiceField(choices=ConversionStatus.choices)
    payout = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=MONEY["max_digits"],
        decimal_places=MONEY["decimal_places"],
        validators=[validate_exact_digits],
        error_messages={"invalid": PAYOUT_MESSAGE, "min_value": PAYOUT_MESSAGE},
    )

    def __init__(self, data, *, postback: Postback):
        super().__init__(data)
        self.fields["click"].queryset = clicks_of(postback)
        self.fields["conversion_type"].queryset = postback.conversion_types.all()


# --- The steps ------------------------------------------------------------------------------


def offers_in_scope(postback: Postback):
    """Active offers this postback covers: the ones its tracking link can be tested with."""
    listed = postback.offers.values("pk")
    offers = Offer.objects.filter(active=True).order_by("name")
    if postback.scope == Scope.OFFERS:
        return offers.filter(pk__in=listed)
    return offers.exclude(pk__in=listed)


def clicks_of(postback: Postback):
    return Click.objects.filter(affiliate=postback.affiliate).select_related("offer")


def sample_click_id() -> str:
    return f"test-click-{secrets.token_hex(4)}"


def click_id_of(click: Click, field: str) -> str:
    """The affiliate's click ID on `click`, from the affS field it travels in."""
    return getattr(click, f"aff_s{field[-1]}")


def simulate_click(postback: Postback, offer: Offer, click_id: str) -> Click:
    """A click on the affiliate's tracking link, with `click_id` as their click ID in the field
    their links carry it in (Affiliate.click_field)."""
    return services.record_click(
        offer=offer,
        affiliate=postback.affiliate,
        params={postback.affiliate.click_field: click_id},
        user_agent=WALKTHROUGH_USER_AGENT,
    )


def create_test_conversion(
    click: Click, conversion_type: ConversionType, status: str, payout: Decimal | None
) -> Conversion:
    """A conversion for the click, through the conversion service: it fires postbacks as a
    real one would."""
    conversion, _ = services.create_conversion(
        services.ConversionInput(
            affiliate=click.affiliate,
            offer=click.offer,
            click=click,
            conversion_type=conversion_type,
            status=status,
            payout=payout,
            currency=click.offer.default_currency,
            transaction_id=f"walkthrough-{secrets.token_hex(6)}",
        ),
        source=StatusChangeSource.ADMIN,
    )
    return conversion


def deliveries_for(postback: Postback, conversion: Conversion | None):
    if conversion is None:
        return Delivery.objects.none()
    return Delivery.objects.filter(postback=postback, conversion=conversion, is_test=False)


def why_no_delivery(postback: Postback, conversion: Conversion) -> str:
    """Why this conversion did not fire the postback, in words, or "" when it should have."""
    reasons = []
    if not postback.active:
        reasons.append("the postback is inactive")
    if not postback.conversion_types.filter(pk=conversion.conversion_type_id).exists():
        reasons.append(f"it does not fire for conversion type {conversion.conversion_type}")
    if not postback.fires_on_status(conversion.status):
        reasons.append(f"it does not fire for status {conversion.get_status_display()}")
    if not postback.covers_offer(conversion.offer_id):
        reasons.append(f"its scope does not include offer {conversion.offer}")
    return "; ".join(reasons)
