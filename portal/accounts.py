"""Portal accounts: login (with the admin's django-axes lockout), logout, password change and
reset, and the invitation a manager sends from the affiliate's admin page.

Django's auth views with the portal's templates; only affiliate users (never staff) get in.
"""

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .access import affiliate_required, affiliate_user_of
from .models import AffiliateUser


class PortalAuthenticationForm(AuthenticationForm):
    """The admin's login form refuses non-staff users; this one refuses everyone else."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "no_portal": "This account has no access to the affiliate portal.",
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if affiliate_user_of(user) is None:
            raise forms.ValidationError(self.error_messages["no_portal"], code="no_portal")


class PortalPasswordResetForm(PasswordResetForm):
    """Reset links for affiliate users only; also for one who never set a password (a lost
    invitation), which Django's form leaves out."""

    def get_users(self, email):
        users = get_user_model()._default_manager.filter(
            email__iexact=email,
            is_active=True,
            is_staff=False,
            is_superuser=False,
            affiliate_user__isnull=False,
        )
        return (user for user in users if user.email.lower() == email.lower())


class LoginView(auth_views.LoginView):
    template_name = "portal/registration/login.html"
    authentication_form = PortalAuthenticationForm
    next_page = reverse_lazy("portal:overview")

    def dispatch(self, request, *args, **kwargs):
        # An affiliate user already logged in goes on; anyone else (staff) may log in as one.
        self.redirect_authenticated_user = affiliate_user_of(request.user) is not None
        return super().dispatch(request, *args, **kwargs)

    def get_default_redirect_url(self):
        return str(self.next_page)


class LogoutView(auth_views.LogoutView):  # POST only, as Django's
    next_page = reverse_lazy("portal:login")


@method_decorator(affiliate_required, name="dispatch")
class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "portal/registration/password_change.html"
    success_url = reverse_lazy("portal:password_change_done")


@method_decorator(affiliate_required, name="dispatch")
class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "portal/registration/password_change_done.html"


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "portal/registration/password_reset.html"
    email_template_name = "portal/registration/password_reset_email.txt"
    subject_template_name = "portal/registration/password_reset_subject.txt"
    form_class = PortalPasswordResetForm
    success_url = reverse_lazy("portal:password_reset_done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "portal/registration/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The one-time link of a reset or an invitation: set a password (the token dies with the
    password it was made for, so the link works once)."""

    template_name = "portal/registration/password_set.html"
    success_url = reverse_lazy("portal:password_reset_complete")

    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        return user if user is not None and affiliate_user_of(user) is not None else None


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "portal/registration/password_reset_complete.html"


# --- Invitations -------------------------------------------------------------------------------


class InvitationError(Exception):
    """A message for the manager: the invitation was not sent."""


def invite(affiliate, email: str, *, invited_by=None, request=None) -> AffiliateUser:
    """Create a portal user for `affiliate` (not staff, no password yet) and e-mail them a
    one-time link to set their password. The username is the e-mail address."""
    email = get_user_model().objects.normalize_email(email.strip())
    User = get_user_model()
    if User.objects.filter(username__iexact=email).exists():
        raise InvitationError(f"A user named {email} exists already.")
    with transaction.atomic():
        user = User(username=email, email=email, is_staff=False, is_superuser=False)
        user.set_unusable_password()
        user.save()
        membership = AffiliateUser.objects.create(
            user=user, affiliate=affiliate, invited_by=invited_by
        )
    send_invitation(membership, request=request)
    return membership


def send_invitation(membership: AffiliateUser, request=None) -> None:
    user = membership.user
    link = absolute(
        reverse(
            "portal:password_reset_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        ),
        request,
    )
    context = {
        "affiliate": membership.affiliate,
        "user": user,
        "link": link,
        "login_url": absolute(reverse("portal:login"), request),
    }
    send_mail(
        f"Your affiliate portal account for {membership.affiliate}",
        render_to_string("portal/registration/invitation_email.txt", context),
        None,
        [user.email],
    )


def absolute(path: str, request=None) -> str:
    """A link for an e-mail: on SITE_URL, else PUBLIC_BASE_URL, else the request's host."""
    base = settings.SITE_URL or settings.PUBLIC_BASE_URL
    if base:
        return f"{base}{path}"
    return request.build_absolute_uri(path) if request is not None else path
