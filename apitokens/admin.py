"""Admin → Auth Token → Tokens: issue, rotate and revoke service tokens; a key is shown once."""

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from . import services


class IssueTokenForm(forms.ModelForm):
    service = forms.SlugField(
        max_length=150,
        help_text="A name for the calling service, e.g. shop or crm. A service user without "
        "password or admin access is created under this name.",
    )
    # Required: the API checks the token user's permissions, so a token without a role could
    # call nothing.
    roles = forms.ModelMultipleChoiceField(
        queryset=Group.objects.order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        help_text="What the token may do. Conversion API: record conversions, change their "
        "status, store exchange rates. Affiliate managers: also add and change affiliates, "
        "offers and postbacks. Each role's permissions: Users → Groups.",
    )

    class Meta:
        model = TokenProxy
        fields = []

    def clean_service(self):
        service = self.cleaned_data["service"]
        if TokenProxy.objects.filter(user__username=service).exists():
            raise forms.ValidationError(f"'{service}' already has a token: rotate or revoke it.")
        return service

    def save(self, commit=True):
        token = services.issue_token(self.cleaned_data["service"], self.cleaned_data["roles"])
        return TokenProxy.objects.get(key=token.key)


admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class ServiceTokenAdmin(TokenAdmin):
    list_display = ["user", "key_start", "created"]
    readonly_fields = ["user", "key_start", "created", "rotate"]
    fields = ["user", "key_start", "created", "rotate"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = IssueTokenForm
            kwargs["fields"] = ["service", "roles"]
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        return self.fields if obj else ["service", "roles"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def has_change_permission(self, request, obj=None):
        return False  # a token is issued, rotated or revoked, never edited

    def save_model(self, request, obj, form, change):
        pass  # the form's save() issued the token, with its service user

    def save_related(self, request, form, formsets, change):
        pass

    def response_add(self, request, obj, post_url_continue=None):
        return self._show_key(request, obj, "API token issued")

    @admin.display(description="key")
    def key_start(self, token):
        return services.masked(token.key)

    @admin.display(description="rotate")
    def rotate(self, token):
        url = reverse("admin:authtoken_tokenproxy_rotate", args=[token.user_id])
        return format_html('<a class="button" href="{}">Replace with a new key…</a>', url)

    def get_urls(self):
        rotate = self.admin_site.admin_view(self.rotate_view)
        return [
            path("<path:object_id>/rotate/", rotate, name="authtoken_tokenproxy_rotate"),
            *super().get_urls(),
        ]

    def rotate_view(self, request, object_id):
        if not (self.has_add_permission(request) and self.has_delete_permission(request)):
            raise PermissionDenied
        token = self.get_object(request, unquote(object_id))
        if token is None:
            raise Http404("No token for this user.")
        if request.method == "POST":
            new = services.rotate_token(token.user)
            self.log_change(request, TokenProxy.objects.get(key=new.key), "Rotated the key.")
            return self._show_key(request, new, "API token rotated")
        context = {**self.admin_site.each_context(request), "token": token, "opts": self.opts}
        context["title"] = f"Rotate the API token of {token.user}"
        return TemplateResponse(request, "apitokens/rotate.html", context)

    def _show_key(self, request, token, title):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "token": token,
            "opts": self.opts,
            "changelist_url": reverse("admin:authtoken_tokenproxy_changelist"),
        }
        return TemplateResponse(request, "apitokens/key_shown.html", context)
