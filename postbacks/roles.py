"""Roles as groups: "Affiliate managers" configure and test postbacks; "Support staff" read
everything and retry deliveries; "Conversion API" is for the service users behind API tokens
(conversions and exchange rates in). Created by a migration; `manage.py assign_role` assigns
staff users, the token admin service users. What each may call over the API: docs/api.md.
"""

MANAGERS = "Affiliate managers"
SUPPORT = "Support staff"
SERVICE = "Conversion API"
# The staff roles assign_role knows; the service role is given with a token (apitokens admin).
ROLE_NAMES = {"managers": MANAGERS, "support": SUPPORT}

# (app, model) pairs both roles may view: everything in the back office. A model added here
# needs a migration that calls sync_roles again (as 0011_roles_endpoint_health does), or
# databases that already ran the roles migrations keep the old permissions.
VIEW_ALL = [
    ("affiliates", "affiliate"),
    ("affiliates", "offer"),
    ("conversions", "click"),
    ("conversions", "conversiontype"),
    ("conversions", "conversion"),
    ("conversions", "conversionstatuschange"),
    ("conversions", "exchangerate"),
    ("conversions", "payoutrule"),
    ("postbacks", "postback"),
    ("postbacks", "trackingsettings"),
    ("postbacks", "delivery"),
    ("postbacks", "deliveryattempt"),
    ("postbacks", "endpointhealth"),
    ("postbacks", "alert"),
    ("portal", "affiliateuser"),  # who may log in to the portal for which affiliate
    ("portal", "postbackproposal"),  # the approval queue (portal/admin.py)
]
MANAGED = [
    ("affiliates", "affiliate"),
    ("affiliates", "offer"),
    ("conversions", "payoutrule"),
    ("conversions", "exchangerate"),  # a missing rate holds postbacks back (issue 11)
    ("postbacks", "postback"),
]

ROLES = {
    MANAGERS: [
        *(f"{app}.view_{model}" for app, model in VIEW_ALL),
        *(f"{app}.{action}_{model}" for app, model in MANAGED for action in ("add", "change")),
        "postbacks.send_test_postback",
        "postbacks.acknowledge_alert",  # the alerts are theirs (postbacks/alerts.py)
        "portal.approve_postbackproposal",  # affiliates' postback changes (docs/portal.md)
        "portal.invite_affiliateuser",  # portal logins for their affiliates (portal/admin.py)
    ],
    SUPPORT: [
        *(f"{app}.view_{model}" for app, model in VIEW_ALL),
        "postbacks.retry_delivery",
    ],
    # A shop, CRM or payment backend: records conversions, changes their status, reads them
    # back, and stores the exchange rates their amounts need; it sees no configuration.
    SERVICE: [
        *(f"conversions.{action}_conversion" for action in ("view", "add", "change")),
        *(f"conversions.{action}_exchangerate" for action in ("view", "add", "change")),
    ],
}


def sync_roles(group_model, permission_model, *, missing_ok: bool = False) -> None:
    """Create the groups if missing and give each exactly its permissions (idempotent).

    Takes the models so a migration can pass its historical ones. missing_ok: skip permissions
    of models that do not exist yet at that point of the migrations (the migration that adds
    a model to ROLES syncs again, after the model's own migration).
    """
    for name, perms in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        found = [_permission(permission_model, perm, missing_ok) for perm in perms]
        group.permissions.set([perm for perm in found if perm is not None])


def sync_roles_in_migration(apps) -> None:
    """sync_roles from a data migration, with the historical models.

    Permissions are normally created after all migrations ran; the groups need them now.
    """
    from django.contrib.auth.management import create_permissions

    for app_label in ("affiliates", "conversions", "postbacks", "portal"):
        try:
            app_config = apps.get_app_config(app_label)
        except LookupError:  # an app without models yet at this point of the migrations
            continue
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_roles(
        apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), missing_ok=True
    )


def _permission(permission_model, perm: str, missing_ok: bool = False):
    app_label, codename = perm.split(".")
    found = permission_model.objects.filter(content_type__app_label=app_label, codename=codename)
    if missing_ok:
        return found.first()
    return found.get()
