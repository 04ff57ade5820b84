"""The assistant on postback templates copied from trackers' and networks' public documentation:
fixed values stay exactly as written, every token is mapped to the right placeholder or is a
problem that names its parameter, and no parameter is dropped.

Each case carries the page it was copied from. Templates are copied as documented; where a case
says so, only the host was replaced by an example host (the page shows a placeholder host), or
an HTML entity the page's renderer mangled ("&curren" shown as "¤", "&para" as "¶") was
restored to the "&currency" / "&param" the URL has.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from postbacks.assistant.analysis import analyse


@dataclass(frozen=True)
class Case:
    source: str
    pasted: str
    template: str
    ok: bool
    problems: tuple = ()  # parameters (or path tokens) a problem must name


CASES = [
    Case(
        "https://doc.voluum.com/en/submitting_postback_url.html",
        "https://voluum_dedicated_domain.com/postback?cid=REPLACE&payout=OPTIONAL&txid=OPTIONAL",
        "https://voluum_dedicated_domain.com/postback?cid={affS1}&payout={payout}"
        "&txid={transactionId}",
        ok=True,
    ),
    Case(
        # "&currency" and "&param1" restored (the page renders them as "¤cy" and "¶m1").
        "https://doc.voluum.com/en/tracking_conversions_postback.html",
        "https://track.radantus.com/postback?cid={}&payout={}&txid={}&currency={}&et={}"
        "&param1={}&param2={}&param3={}&param4={}&param5={}",
        "https://track.radantus.com/postback?cid={affS1}&payout={payout}&txid={transactionId}"
        "&currency={currency}&et={conversionType}&param1=%7B%7D&param2=%7B%7D&param3=%7B%7D"
        "&param4=%7B%7D&param5=%7B%7D",
        ok=False,
        problems=("param1", "param2", "param3", "param4", "param5"),
    ),
    Case(
        # "&currency" restored (the page renders it as "¤cy").
        "https://docs.keitaro.io/en/conversions/postback.html",
        "https://example.com/key/postback?status=lead&payout=10&currency=EUR",
        "https://example.com/key/postback?status=lead&payout=10&currency=EUR",
        ok=False,  # no click id in the example: nothing could be attributed
    ),
    Case(
        "https://support.tune.com/hc/en-us/articles/4413247665431-Receiving-Conversions-via-Postback-URL",
        "http://examplenetwork.go2cloud.org/aff_lsr?offer_id=26&transaction_id=TRANSACTION_ID",
        "http://examplenetwork.go2cloud.org/aff_lsr?offer_id=26&transaction_id={affS1}",
        ok=True,
    ),
    Case(
        "https://docs.tracklysms.com/guides/offers/tune-integration",
        "https://app.tracklysms.com/api/postbacks/tune?click_id={aff_sub}&payout={payout}",
        "https://app.tracklysms.com/api/postbacks/tune?click_id={affS1}&payout={payout}",
        ok=True,
    ),
    Case(
        "https://docs.tracklysms.com/integrations/tune",
        "https://app.tracklysms.com/api/postbacks/tune?click_id={aff_sub}&payout={payout}"
        "&conversion_id={transaction_id}",
        "https://app.tracklysms.com/api/postbacks/tune?click_id={affS1}&payout={payout}"
        "&conversion_id={conversionId}",
        ok=True,
    ),
    Case(
        "https://help-center.affisereach.com/en/articles/6121755-set-up-a-postback-s2s",
        "https://psb1.reachaff.com/postbacks?click_id={click_id}&advertiser_id=62"
        "&secure=43Isdfr3Fsf",
        "https://psb1.reachaff.com/postbacks?click_id={affS1}&advertiser_id=62&secure=43Isdfr3Fsf",
        ok=True,
    ),
    Case(
        "http://help.scaleo.io/article/484-ultimate-postbacks-add-change-conversion",
        "https://workspace.scaletrk.com/track/conv?click_id=974efaa86716e372442ab44c8a3f563b"
        "&token=344387eb&goal_id=1673&conv_status=pending&aff_param1=AP12&firstname=John"
        "&lastname=Smith&sub_id1=SID1",
        "https://workspace.scaletrk.com/track/conv?click_id=974efaa86716e372442ab44c8a3f563b"
        "&token=344387eb&goal_id=1673&conv_status=pending&aff_param1=AP12&firstname=John"
        "&lastname=Smith&sub_id1=SID1",
        ok=False,
        problems=("click_id", "aff_param1", "sub_id1"),
    ),
    Case(
        "https://help.scaleo.io/article/483-custom-statuses-for-conversions",
        "https://workspace.scaletrk.com/track/conv?click_id=974efaa86716e372442ab44c8a3f563b"
        "&goal_alias=sale&conv_status=ok&trash_status=spam,duplicate"
        "&approved_status=ok,approved&pending_status=wait,check&token=344387eb",
        "https://workspace.scaletrk.com/track/conv?click_id=974efaa86716e372442ab44c8a3f563b"
        "&goal_alias=sale&conv_status=ok&trash_status=spam,duplicate"
        "&approved_status=ok,approved&pending_status=wait,check&token=344387eb",
        ok=False,
        problems=("click_id",),
    ),
    Case(
        "https://help.scaleo.io/article/483-custom-statuses-for-conversions",
        "https://workspace.scaletrk.com/track/conv-change?click_id=974efaa86716e372442ab44c8a3f563b"
        "&conv_status=spam&trash_status=spam,duplicate&approved_status=ok,approved",
        "https://workspace.scaletrk.com/track/conv-change?click_id=974efaa86716e372442ab44c8a3f563b"
        "&conv_status=spam&trash_status=spam,duplicate&approved_status=ok,approved",
        ok=False,
        problems=("click_id",),
    ),
    Case(
        "https://docs.bemob.com/en/monetizer-settings",
        "http://yourdomain.com/postback?cid={clickID}&payout={amount}&txid={transactionID}"
        "&status=OPTIONAL",
        "http://yourdomain.com/postback?cid={affS1}&payout={payout}&txid={transactionId}"
        "&status={status}",
        ok=True,
    ),
    Case(
        "https://docs.bemob.com/en/offerrum-settings",
        "http://yourdomain.com/postback?cid=REPLACE&payout=OPTIONAL&txid=OPTIONAL&status=OPTIONAL",
        "http://yourdomain.com/postback?cid={affS1}&payout={payout}&txid={transactionId}"
        "&status={status}",
        ok=True,
    ),
    Case(
        "https://docs.bemob.com/en/offerrum-settings",
        "http://yourdomain.com/postback?cid={subid1}&payout={summ_approved}&txid={lead_id}"
        "&status={status}",
        "http://yourdomain.com/postback?cid={affS1}&payout={payout}&txid={transactionId}"
        "&status={status}",
        ok=True,
    ),
    Case(
        # "&currency" restored (the page renders it as "¤cy").
        "https://targetcircle.com/?p=2106",
        "https://p.trackmytarget.com/?tmt_data={tmt_data}&type={type}&event_sid={event_sid}"
        "&id={id}&amount={amount}&currency={currency}&code={code}",
        "https://p.trackmytarget.com/?tmt_data=%7Btmt_data%7D&type={conversionType}"
        "&event_sid=%7Bevent_sid%7D&id=%7Bid%7D&amount={payout}&currency={currency}"
        "&code=%7Bcode%7D",
        ok=False,
        problems=("tmt_data", "event_sid", "id", "code"),
    ),
    Case(
        # Host replaced: the page writes https://DOMAIN/.
        "https://help.funnelflux.pro/en/article/tracking-conversions-1vtfnp5/",
        "https://funnelflux.example/pb/?hit=REPLACE&tx=REPLACE&rev=REPLACE",
        "https://funnelflux.example/pb/?hit=REPLACE&tx=REPLACE&rev=REPLACE",
        ok=False,
        problems=("hit", "tx", "rev"),
    ),
    Case(
        "https://kintura.com/docs/presets/pairings/clickadu/clickbooth",
        "http://track.kintura.io/conversion?cid={subid2}&payout={payout}&txid={transid}",
        "http://track.kintura.io/conversion?cid={affS1}&payout={payout}&txid={transactionId}",
        ok=True,
    ),
    Case(
        "https://kintura.com/docs/presets/pairings/content.ad/linktrust",
        "http://track.kintura.io/conversion?cid=[=SID=]&payout=[=AffiliateCommission=]"
        "&txid=[=_TransID=]",
        "http://track.kintura.io/conversion?cid={affS1}&payout={payout}&txid={transactionId}",
        ok=True,
    ),
    Case(
        "https://kintura.com/docs/presets/pairings/tonic/adsup",
        "http://track.kintura.io/conversion?cid={aff_click_id}&txid={transaction_id}"
        "&payout={payout}",
        "http://track.kintura.io/conversion?cid={affS1}&txid={transactionId}&payout={payout}",
        ok=True,
    ),
    Case(
        "https://kintura.com/docs/presets/pairings/advertizer/trafficcompany",
        "http://track.kintura.io/conversion?cid={click_id}&txid={unique_id}&payout={reward}",
        "http://track.kintura.io/conversion?cid={affS1}&txid={transactionId}&payout={payout}",
        ok=True,
    ),
    Case(
        "https://kintura.com/docs/presets/pairings/advertizer/trafficcompany",
        "http://postback.advertizer.com/pb.php?clickid={externalid}&amount={payout}"
        "&advertiser_id=REPLACE&key=REPLACE",
        "http://postback.advertizer.com/pb.php?clickid={affS1}&amount={payout}"
        "&advertiser_id=REPLACE&key=REPLACE",
        ok=False,
        problems=("advertiser_id", "key"),
    ),
    Case(
        "https://kintura.com/docs/presets/pairings/clickadu/clickbooth",
        "http://sconvtrk.com/conversion/REPLACE/?visitor_id={externalid}",
        "http://sconvtrk.com/conversion/REPLACE/?visitor_id={affS1}",
        ok=False,
        problems=("REPLACE",),
    ),
    Case(
        "https://kintura.com/docs/presets/pairings/tonic/adsup",
        "https://tnccv.com/conversion/postback?value={payout}&clickid={externalid}",
        "https://tnccv.com/conversion/postback?value={payout}&clickid={affS1}",
        ok=True,
    ),
    Case(
        "https://kintura.com/docs/presets/pairings/rich-push.co/clickpromise",
        "http://rtb.adx1.com/log?action=conversion&key={externalid}&price={payout}",
        "http://rtb.adx1.com/log?action=conversion&key={affS1}&price={payout}",
        ok=True,
    ),
    Case(
        "https://docs.altercpa.top/en/trackers/binom/",
        "https://your-binom.com/postback?clickid={click}&goal=approve",
        "https://your-binom.com/postback?clickid={affS1}&goal=approve",
        ok=True,
    ),
    Case(
        # Host replaced: the page writes https://{trackingDomain}/.
        "https://docs.tagada.io/developer-tools/tracking/binom.md",
        "https://binom.example/click.php?cnv_id={clickId}&payout={payout}"
        "&cnv_status={conversionType}&cnv_currency={currency}",
        "https://binom.example/click.php?cnv_id={affS1}&payout={payout}"
        "&cnv_status={conversionType}&cnv_currency={currency}",
        ok=True,
    ),
    Case(
        "https://help.redtrack.io/knowledgebase/kb/basic-setup-9785/supported-dynamic-parameters/%d1%81lick-id-parameter/",
        "http://your.dedicated.tracking.domain.com/postback?clickid={affiliate_network_parameter}",
        "http://your.dedicated.tracking.domain.com/postback?clickid={affS1}",
        ok=True,
    ),
    Case(
        "https://vnative.com/support/network/affiliates-panel/setting-affiliate-callbackpostback/adding-optional-parameters-postback-pixel-tracking-url/",
        "https://track.vnative.com/acquisition?click_id={click_id}&sub1=XYZ&sub2=123",
        "https://track.vnative.com/acquisition?click_id={affS1}&sub1=XYZ&sub2=123",
        ok=False,
        problems=("sub1",),
    ),
    Case(
        "https://help.offershub.com/knowledge-base/postback-url-macros",
        "http://demo.go2oh.net/postback?clickid=100395358e3e295b8c2ac7898f843eda78e3&event_id=1",
        "http://demo.go2oh.net/postback?clickid=100395358e3e295b8c2ac7898f843eda78e3&event_id=1",
        ok=False,
        problems=("clickid",),
    ),
    Case(
        "https://theoryrd.com/docs/set-up-a-postback",
        "https://trk.theoryrd.com/api/postback?key=YOUR_NETWORK_KEY&click_id={CLICK_ID}"
        "&order_id={ORDER_ID}&revenue={AMOUNT}",
        "https://trk.theoryrd.com/api/postback?key=YOUR_NETWORK_KEY&click_id={affS1}"
        "&order_id={transactionId}&revenue={payout}",
        ok=False,
        problems=("key",),
    ),
    Case(
        "https://trcker.io/docs/setting-up-postbacks",
        "https://app.trcker.io/api/postback/your-brand/offer-slug?click_id={click_id}"
        "&amount={amount}",
        "https://app.trcker.io/api/postback/your-brand/offer-slug?click_id={affS1}&amount={payout}",
        ok=True,
    ),
    Case(
        "https://soknomedia.atlassian.net/wiki/spaces/SK/pages/2663251981/Postback+URLs+Server+to+Server+Tracking",
        "https://upx.provenpixel.com/postback.php?clk=CLICK_ID",
        "https://upx.provenpixel.com/postback.php?clk={affS1}",
        ok=True,
    ),
]


def _pairs(url: str) -> list[tuple[str, str]]:
    query = urlsplit(url).query
    return [tuple(pair.partition("=")[::2]) for pair in query.split("&") if pair]


def test_at_least_twenty_documented_templates_from_distinct_pages():
    assert len(CASES) >= 20
    assert len({case.source for case in CASES}) >= 20


@pytest.mark.parametrize("case", CASES, ids=lambda case: urlsplit(case.pasted).hostname)
def test_documented_template_is_proposed_as_documented(case, settings):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    analysis = analyse(case.pasted)

    assert analysis.postback["url"] == case.template
    assert analysis.ok is case.ok, analysis.problems
    for name in case.problems:
        assert any(f"'{name}'" in problem for problem in analysis.problems), (
            name,
            analysis.problems,
        )


@pytest.mark.parametrize("case", CASES, ids=lambda case: urlsplit(case.pasted).hostname)
def test_documented_template_keeps_every_parameter_and_every_fixed_value(case):
    analysis = analyse(case.pasted)
    pasted, proposed = _pairs(case.pasted), _pairs(analysis.postback["url"])

    # Nothing dropped, nothing added, the order kept ("###" or "#x#" is never a fragment).
    assert [name for name, _ in proposed] == [name for name, _ in pasted]
    for (name, before), (_, after) in zip(pasted, proposed, strict=True):
        mapping = next(m for m in analysis.mappings if m.parameter == name)
        if mapping.state == "mapped":
            assert after == mapping.placeholder
        else:  # a fixed value, or a token we could not map: exactly as written
            assert after in (before, before.replace("{", "%7B").replace("}", "%7D")), name
        if mapping.state == "unmapped":
            assert any(f"'{name}'" in problem for problem in analysis.problems), name
