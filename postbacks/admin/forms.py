"""The admin's postback form: statuses as checkboxes with one "value to send" row each, the
offers box labelled for the scope, body fields for POST, the placeholder picker and live preview
under the URL field, relation checks."""

import json

from django import forms
from django.contrib.admin.widgets import AdminRadioSelect
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from conversions.models import ConversionStatus
from postbacks.models import BodyFormat, Postback, Scope, TrackingSettings
from postbacks.placeholders import CATALOG
from postbacks.rendering import postback_values
from postbacks.validation import STATUS_MAP_VALUE_MAX, validate_postback_config

RELATIONS = ("offers", "conversion_types")
MONOSPACE = "font-family: monospace; width: 100%; box-sizing: border-box"
# One Offers box, two meanings: its label and help follow the scope (here and in the browser).
OFFERS_TEXT = {
    Scope.GLOBAL: (
        "Excluded offers",
        "Global scope: the postback fires for every offer except these. Leave empty for all.",
    ),
    Scope.OFFERS: (
        "Included offers",
        "Offer scope: the postback fires for these offers only (pick at least one).",
    ),
}
STATUS_VALUE_PREFIX = "status_value_"
STATUS_VALUES_HELP = (
    "What the {status} placeholder sends for each status picked above, e.g. 1 for approved "
    "and 2 for rejected. Blank: the status name itself."
)


class PlaceholderPicker(forms.Textarea):
    """The URL textarea, then the placeholder chips and the live preview (static/postbacks/)."""

    allow_revenue = False
    # The portal points these at its own preview view and leaves out the links into the admin.
    preview_endpoint = None
    settings_link = True

    class Media:
        css = {"all": ["postbacks/postback_form.css"]}
        js = ["postbacks/postback_form.js"]

    def render(self, name, value, attrs=None, renderer=None):
        textarea = super().render(name, value, attrs, renderer)
        # One block: the admin lays a field's parts out side by side otherwise.
        return format_html(
            '<div class="pb-url-widget">{}{}{}</div>',
            textarea,
            picker_html(self.allow_revenue, settings_link=self.settings_link),
            preview_html(self.preview_endpoint),
        )


class HeaderLinesField(forms.CharField):
    """The postback's headers as "Name: value" lines, stored as [{"name", "value"}, ...]."""

    widget = forms.Textarea(attrs={"rows": 3, "style": MONOSPACE})

    def __init__(self, **kwargs):
        super().__init__(required=False, strip=False, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(f"{h.get('name')}: {h.get('value')}" for h in value)
        return value

    def to_python(self, value):
        return parse_header_lines(super().to_python(value) or "")


def parse_header_lines(text: str) -> list[dict]:
    """ "Name: value" per line (blank lines skipped) → [{"name", "value"}, ...]."""
    headers = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValidationError(
                f"Line {number}: write one header per line as Name: value, e.g. X-Api-Key: abc."
            )
        headers.append({"name": name.strip(), "value": value.strip()})
    return headers


def status_value_name(status: str) -> str:
    return STATUS_VALUE_PREFIX + status


STATUS_VALUE_FIELDS = [status_value_name(status) for status in ConversionStatus.values]


def status_map_from(data, statuses) -> dict:
    """The status map from the per-status rows: picked statuses with a value, in status order."""
    picked = set(statuses or ())
    map_ = {}
    for status in ConversionStatus.values:
        value = (data.get(status_value_name(status)) or "").strip()
        if status in picked and value:
            map_[status] = value
    return map_


# One text row per status ("Approved → 1"). Declared on a base class so the admin, which builds
# the form from the fieldsets' names, knows them; rows of unpicked statuses are hidden inputs.
StatusValueFields = type(
    "StatusValueFields",
    (forms.Form,),
    {
        status_value_name(status): forms.CharField(
            label=label,
            required=False,
            widget=forms.TextInput(attrs={"placeholder": status, "data-status": status}),
        )
        for status, label in ConversionStatus.choices
    },
)


def label_offers_for_scope(field, scope) -> None:
    """The offers box means "excluded" under global scope and "included" under offer scope:
    label and help for `scope`, and both texts on the widget for postback_form.js, which
    relabels the box as the scope is switched (the postback form and the assistant's form)."""
    field.label, field.help_text = OFFERS_TEXT.get(scope, OFFERS_TEXT[Scope.GLOBAL])
    widget = getattr(field.widget, "widget", field.widget)  # inside the admin's wrapper
    widget.attrs["data-scope-texts"] = json.dumps(
        {key: {"label": label, "help": text} for key, (label, text) in OFFERS_TEXT.items()}
    )


class PostbackForm(StatusValueFields, forms.ModelForm):
    statuses = forms.MultipleChoiceField(
        label="Conversion statuses",
        choices=ConversionStatus.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one conversion status."},
        help_text="Fires when a conversion is created in, or changes to, one of these statuses.",
    )
    body_format = forms.ChoiceField(
        choices=BodyFormat.choices,
        initial=BodyFormat.FORM,
        required=False,  # a GET postback has no body: the default then
        widget=AdminRadioSelect(attrs={"class": "radiolist inline"}),
    )
    headers = HeaderLinesField(
        label="Request headers",
        help_text="One per line as Name: value, e.g. X-Api-Key: 3f9c…; values may use "
        "placeholders and are sent as written (not URL-encoded). Signed with the body when "
        "signing is on.",
    )

    class Meta:
        model = Postback
        fields = [
            "name",
            "affiliate",
            "active",
            "scope",
            "offers",
            "conversion_types",
            "statuses",
            "currency",
            "method",
            "url",
            "body_format",
            "body_template",
            "headers",
        ]
        widgets = {
            "url": PlaceholderPicker(attrs={"rows": 3, "style": MONOSPACE}),
            "body_template": forms.Textarea(attrs={"rows": 6, "style": MONOSPACE}),
        }
        error_messages = {
            "url": {"required": "Enter the postback URL."},
            "conversion_types": {"required": "Pick at least one conversion type."},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._label_offers_for_scope()
        self._set_up_status_values()
        if "url" in self.fields:
            self.fields[
                "url"
            ].widget.allow_revenue = TrackingSettings.load().allow_revenue_parameters
            self.fields["url"].help_text = format_html(
                "Values are URL-encoded when sent.<details><summary>All placeholders and their "
                "meaning</summary>{}</details>",
                placeholder_help(),
            )

    def _current(self, name: str, default=None):
        """A field's value as the page shows it: as posted, else as saved or preset."""
        if self.is_bound:
            if name == "statuses":
                getlist = getattr(self.data, "getlist", None)
                return getlist(name) if getlist else self.data.get(name) or []
            return self.data.get(name, default)
        return self.initial.get(name, getattr(self.instance, name, default))

    def _label_offers_for_scope(self) -> None:
        field = self.fields.get("offers")
        if field is None:
            return
        label_offers_for_scope(field, self._current("scope", Scope.GLOBAL))

    def _set_up_status_values(self) -> None:
        saved = self.instance.status_map if isinstance(self.instance.status_map, dict) else {}
        picked = set(self._current("statuses") or ())
        for status in ConversionStatus.values:
            name = status_value_name(status)
            if name not in self.fields:
                continue
            self.initial.setdefault(name, saved.get(status, ""))
            if status not in picked:
                # Kept in the page (postback_form.js shows it when the status is ticked), hidden
                # without JavaScript; the admin hides a row whose only field is hidden.
                widget = self.fields[name].widget
                self.fields[name].widget = forms.HiddenInput(attrs=widget.attrs)

    def clean_body_format(self):
        return self.cleaned_data["body_format"] or BodyFormat.FORM

    def clean(self):
        cleaned = super().clean()
        cleaned["status_map"] = self._clean_status_values(cleaned)
        self._check_config(cleaned)
        return cleaned

    def _clean_status_values(self, cleaned: dict) -> dict:
        """Each picked status's value, checked on its own row; unpicked rows are dropped."""
        picked = cleaned.get("statuses") or []
        for status in picked:
            name = status_value_name(status)
            if len(cleaned.get(name) or "") > STATUS_MAP_VALUE_MAX:
                self.add_error(name, f"At most {STATUS_MAP_VALUE_MAX} characters.")
        return status_map_from(cleaned, picked)

    def save(self, commit=True):
        self.instance.status_map = self.cleaned_data["status_map"]
        return super().save(commit)

    def _check_config(self, cleaned: dict) -> None:
        """The one validation the API runs too; each problem once, next to its field. A field
        Django already refused (e.g. required and empty) keeps Django's message only."""
        relations = {name: list(cleaned[name]) for name in RELATIONS if name in cleaned}
        values = {**postback_values(self.instance), **cleaned, **relations}
        try:
            validate_postback_config(values)
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                field = name if name in self.fields else None
                if (field and field in self.errors) or name == "status_map":
                    continue  # status values are checked row by row above
                for message in messages:
                    self.add_error(field, message)


def picker_html(allow_revenue: bool, *, settings_link: bool = True):
    """One chip per catalog placeholder; gated ones disabled, with the reason, while off."""
    reason = (
        "Turned off: needs 'Allow revenue and sale amount parameters in affiliate postbacks' "
        "under Tracking settings."
    )
    chips = format_html_join(
        "",
        '<button type="button" class="pb-chip" data-token="{}" title="{}"{}>{}</button>',
        (
            (
                p.token,
                reason if p.gated and not allow_revenue else p.description,
                " disabled" if p.gated and not allow_revenue else "",
                p.token,
            )
            for p in CATALOG
        ),
    )
    note = ""
    if not allow_revenue and not settings_link:
        note = format_html(
            '<p class="pb-gated-note">{} and {} are turned off for affiliate postbacks.</p>',
            "{revenue}",
            "{saleAmount}",
        )
    elif not allow_revenue:
        note = format_html(
            '<p class="pb-gated-note">{{revenue}} and {{saleAmount}} are disabled: turn on '
            "'Allow revenue and sale amount parameters' in the <a href=\"{}\">tracking "
            "settings</a> to use them.</p>",
            reverse("admin:postbacks_trackingsettings_changelist"),
        )
    return format_html(
        '<div class="pb-picker"><p class="pb-picker-help">Click a placeholder to insert it at '
        'the cursor in the <strong class="pb-target">URL</strong> field (click into the body '
        "template to insert there instead). Hover a placeholder for its meaning.</p>"
        '<div class="pb-chips">{}</div>{}</div>',
        chips,
        note,
    )


def preview_html(endpoint: str | None = None):
    """The live preview's frame; postback_form.js fills it from the preview view (the admin's
    unless `endpoint` names another)."""
    return format_html(
        '<div class="pb-preview" id="pb-preview" data-endpoint="{}">'
        '<div class="pb-preview-head"><strong>Preview</strong> with '
        '<select id="pb-conversion" aria-label="Conversion to preview with">'
        '<option value="">the built-in sample conversion</option></select></div>'
        '<pre class="pb-request" id="pb-request" aria-live="polite">…</pre>'
        '<ul class="pb-problems" id="pb-problems"></ul></div>',
        endpoint or reverse("admin:postbacks_postback_preview"),
    )


def placeholder_help(*, link: bool = True):
    """The placeholders a URL or body may use, from the catalog, the gated ones marked (with a
    link to the tracking setting unless `link` is off)."""
    setting = TrackingSettings.load().allow_revenue_parameters
    settings_link = format_html(
        '<a href="{}">tracking setting</a> (now {})',
        reverse("admin:postbacks_trackingsettings_changelist"),
        "on" if setting else "off",
    )
    if not link:
        settings_link = "turned " + ("on" if setting else "off") + " by the network"
    items = format_html_join(
        "",
        "<li><code>{}</code> — {}{}</li>",
        (
            (p.token, p.description, format_html(" · {}", settings_link) if p.gated else "")
            for p in CATALOG
        ),
    )
    return format_html(
        '<ul style="margin-left: 0; padding-left: 1.5em; columns: 2">{}</ul>',
        items,
    )
