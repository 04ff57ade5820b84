"""The admin's postback form: statuses as checkboxes, the placeholder picker and live preview
under the URL field, relation checks."""

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from conversions.models import ConversionStatus
from postbacks.models import Postback, TrackingSettings
from postbacks.placeholders import CATALOG
from postbacks.rendering import postback_values
from postbacks.validation import validate_postback_config
from trackdesk import parsers

RELATIONS = ("offers", "conversion_types")
MONOSPACE = "font-family: monospace; width: 100%; box-sizing: border-box"


class PlaceholderPicker(forms.Textarea):
    """The URL textarea, then the placeholder chips and the live preview (static/postbacks/)."""

    allow_revenue = False

    class Media:
        css = {"all": ["postbacks/postback_form.css"]}
        js = ["postbacks/postback_form.js"]

    def render(self, name, value, attrs=None, renderer=None):
        textarea = super().render(name, value, attrs, renderer)
        # One block: the admin lays a field's parts out side by side otherwise.
        return format_html(
            '<div class="pb-url-widget">{}{}{}</div>',
            textarea,
            picker_html(self.allow_revenue),
            preview_html(),
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


class PostbackForm(forms.ModelForm):
    statuses = forms.MultipleChoiceField(
        label="Conversion statuses",
        choices=ConversionStatus.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one conversion status."},
        help_text="Fires when a conversion is created in, or changes to, one of these statuses.",
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
            "status_map",
            "headers",
        ]
        widgets = {
            "url": PlaceholderPicker(attrs={"rows": 3, "style": MONOSPACE}),
            "body_template": forms.Textarea(attrs={"rows": 6, "style": MONOSPACE}),
            "status_map": forms.Textarea(attrs={"rows": 2, "style": MONOSPACE}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "status_map" in self.fields:  # deep JSON is "invalid JSON", not a RecursionError
            self.fields["status_map"].decoder = parsers.JSONDecoder
        if "url" in self.fields:
            self.fields[
                "url"
            ].widget.allow_revenue = TrackingSettings.load().allow_revenue_parameters
            self.fields["url"].help_text = format_html(
                "Values are URL-encoded when sent.<details><summary>All placeholders and their "
                "meaning</summary>{}</details>",
                placeholder_help(),
            )

    def clean(self):
        cleaned = super().clean()
        self._check_config(cleaned)
        return cleaned

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
                if field and field in self.errors:
                    continue
                for message in messages:
                    self.add_error(field, message)


def picker_html(allow_revenue: bool):
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
    if not allow_revenue:
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


def preview_html():
    """The live preview's frame; postback_form.js fills it from the preview view."""
    return format_html(
        '<div class="pb-preview" id="pb-preview" data-endpoint="{}">'
        '<div class="pb-preview-head"><strong>Preview</strong> with '
        '<select id="pb-conversion" aria-label="Conversion to preview with">'
        '<option value="">the built-in sample conversion</option></select></div>'
        '<pre class="pb-request" id="pb-request" aria-live="polite">…</pre>'
        '<ul class="pb-problems" id="pb-problems"></ul></div>',
        reverse("admin:postbacks_postback_preview"),
    )


def placeholder_help():
    """The placeholders a URL or body may use, from the catalog, the gated ones marked."""
    setting = TrackingSettings.load().allow_revenue_parameters
    settings_link = format_html(
        '<a href="{}">tracking setting</a> (now {})',
        reverse("admin:postbacks_trackingsettings_changelist"),
        "on" if setting else "off",
    )
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
