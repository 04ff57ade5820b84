"""Who may see what in the portal: an affiliate user sees only their own affiliate's rows."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse

from affiliates.models import Affiliate


def affiliate_user_of(user):
    """The user's AffiliateUser, or None for anonymous, staff, users without one and users of
    a deactivated affiliate (deactivating an affiliate closes its portal too)."""
    if not user.is_authenticated or user.is_staff or user.is_superuser or not user.is_active:
        return None
    membership = getattr(user, "affiliate_user", None)
    if membership is None or not membership.affiliate.active:
        return None
    return membership


def affiliate_required(view):
    """Logged in as an affiliate user (never staff): else to the portal's login, or 404."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("portal:login"))
        membership = affiliate_user_of(request.user)
        if membership is None:
            raise Http404("No affiliate account.")
        request.affiliate = membership.affiliate
        return view(request, *args, **kwargs)

    return wrapper


def current_affiliate(request) -> Affiliate:
    """The affiliate the logged-in portal user belongs to (views under affiliate_required)."""
    affiliate = getattr(request, "affiliate", None)
    if affiliate is None:
        membership = affiliate_user_of(request.user)
        if membership is None:
            raise Http404("No affiliate account.")
        affiliate = request.affiliate = membership.affiliate
    return affiliate


def own(queryset: QuerySet, request, field: str = "affiliate") -> QuerySet:
    """The rows of queryset that belong to the current affiliate (field: a lookup path)."""
    return queryset.filter(**{field: current_affiliate(request)})


def runnable_offers(affiliate):
    """The offers an affiliate can run: every active offer (the back office has no per-
    affiliate offer list); their tracking links and their postbacks' scope choose from these."""
    from affiliates.models import Offer

    return Offer.objects.filter(active=True)
