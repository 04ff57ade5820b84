"""The parameter names platforms use for each role (click id, payout, status ...), compared
without case, "_", "-" or "." (see lexer.norm)."""

import re

from postbacks.assistant.lexer import norm

# Common click-id parameter names, the more specific first (the order ranks candidates).
CLICK_ID_NAMES = (
    "clickid",
    "cid",
    "cnvid",
    "subid",
    "affclickid",
    "affsub",
    "sub1",
    "subid1",
    "sid",
    "s2",
    "s1",
    "clickref",
    "visitorid",
    "externalid",
    "click",
    "trackingid",
    "transactionid",
    "tid",
)
# Click-id candidates that mean a transaction id when a better click-id parameter is present.
TRANSACTION_LIKE = ("transactionid", "tid")
ROLE_NAMES = {
    "payout": (
        "payout",
        "amount",
        "amountvalue",
        "sum",
        "revenue",
        "price",
        "commission",
        "value",
        "rate",
        "affiliateearnings",
        "paymentsum",
        "money",
        "cash",
        "reward",
        "commissionamount",
    ),
    "sale_amount": ("saleamount", "total", "totalcost", "ordertotal"),
    "status": (
        "status",
        "cnvstatus",
        "convstatus",
        "conversionstatus",
        "actionstatus",
        "paymentstatus",
        "state",
        "stage",
    ),
    "transaction_id": (
        "txid",
        "txnid",
        "transaction",
        "orderid",
        "order",
        "oid",
        "actionid",
        "advsub",
        "leadid",
    ),
    "currency": ("currency", "cur", "curr", "currencycode", "cnvcurrency", "payoutcurrency"),
    "conversion_type": (
        "type",
        "event",
        "eventtype",
        "eventname",
        "et",
        "goal",
        "goalalias",
        "goalvalue",
        "conversiontype",
        "conversiontypecode",
    ),
    "conversion_id": ("conversionid", "convid"),
    "offer_id": ("offerid", "offer"),
    "timestamp": ("timestamp", "datetime", "time"),
    "delivery_id": ("rdtkeventid", "dedupeid", "idempotencykey", "deliveryid"),
}
# Parameters that name the affiliate's account on the platform, never a conversion: network,
# user, advertiser ids, keys and hashes. A value of theirs is kept as written; a token there asks
# the manager for the affiliate's own value (mapping it by name once sent transaction ids there).
ACCOUNT_NAMES = frozenset(
    {
        "nid",
        "networkid",
        "uid",
        "userid",
        "account",
        "accountid",
        "acc",
        "key",
        "apikey",
        "advkey",
        "postbackkey",
        "token",
        "securitytoken",
        "secure",
        "secret",
        "hash",
        "sig",
        "signature",
        "aid",
        "pid",
        "mid",
        "affid",
        "affiliateid",
        "advid",
        "advertiserid",
        "partnerid",
        "publisherid",
        "pubid",
        "campaignid",
        "goalid",
    }
)
_ROLE_BY_NAME = {name: role for role, names in ROLE_NAMES.items() for name in names}
# The affiliate's numbered sub ids (sub2, subid3, s4 ...), normalised; the number is group 1.
NUMBERED_SUB = re.compile(r"(?:sub|subid|affsub|s)([2-5])")


def role_of_name(name: str) -> str | None:
    """The role a parameter (or token) name suggests: "click_candidate" for a click-id name,
    "sub" for a numbered sub id, "account" for an account id or key, a ROLE_NAMES key, or None."""
    key = norm(name)
    if not key:
        return None
    if key in ACCOUNT_NAMES:
        return "account"
    if key in CLICK_ID_NAMES:
        return "click_candidate"
    if NUMBERED_SUB.fullmatch(key):
        return "sub"
    return _ROLE_BY_NAME.get(key)


def is_numbered_sub(name: str) -> bool:
    return NUMBERED_SUB.fullmatch(norm(name)) is not None
