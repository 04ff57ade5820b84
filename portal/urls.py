"""The affiliate portal's pages, under /portal/ (namespace "portal").

Every view here is wrapped in access.affiliate_required (or is one of the account pages that
work without a login); tests/test_portal_isolation.py walks this list.
"""

from django.urls import path

from . import accounts, assistant, postbacks, views

app_name = "portal"

urlpatterns = [
    # Accounts (portal/accounts.py): Django's auth views with the portal's templates.
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", accounts.LogoutView.as_view(), name="logout"),
    path("password/", accounts.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", accounts.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        accounts.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password/set/<uidb64>/<token>/",
        accounts.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password/set/done/",
        accounts.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("account/", views.account, name="account"),
    # Pages (portal/views.py)
    path("", views.overview, name="overview"),
    path("conversions/", views.conversions, name="conversions"),
    path("log/", views.log, name="log"),
    path("log/<uuid:uid>/", views.delivery, name="delivery"),
    path("postbacks/<int:pk>/test/", views.test_send, name="test_send"),
    # Postbacks, assistant and changes (portal/postbacks.py, portal/assistant.py)
    path("postbacks/", postbacks.postback_list, name="postbacks"),
    path("postbacks/add/", postbacks.postback_add, name="postback_add"),
    path("postbacks/preview/", postbacks.postback_preview, name="postback_preview"),
    path("postbacks/<int:pk>/", postbacks.postback_edit, name="postback_edit"),
    path(
        "postbacks/<int:pk>/deactivate/",
        postbacks.postback_deactivate,
        name="postback_deactivate",
    ),
    path("assistant/", assistant.assistant, name="assistant"),
    path("changes/", postbacks.changes, name="changes"),
]
