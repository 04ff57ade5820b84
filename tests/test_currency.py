"""Currency conversion with stored rates, and importing the ECB reference rates."""

import zipfile
from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.template import Context, Template

from conversions.exchange import MissingRate, convert, exchange_rate
from conversions.models import ExchangeRate
from trackdesk.currencies import format_amount

pytestmark = pytest.mark.django_db

DAY = date(2026, 11, 24)


def _rate(base, quote, rate, valid_on=DAY):
    ExchangeRate.objects.create(base=base, quote=quote, rate=Decimal(rate), valid_on=valid_on)


# --- convert --------------------------------------------------------------------------------


def test_same_currency_is_returned_unchanged_without_queries(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert convert(Decimal("12.345"), "USD", "USD", DAY) == Decimal("12.345")


def test_direct_rate_multiplies():
    _rate("EUR", "USD", "1.1642")
    assert convert(Decimal("10"), "EUR", "USD", DAY) == Decimal("11.6420")


def test_inverse_rate_divides():
    _rate("EUR", "USD", "1.25")
    assert convert(Decimal("10"), "USD", "EUR", DAY) == Decimal("8")


def test_cross_rate_goes_through_the_common_base():
    _rate("EUR", "USD", "1.25")
    _rate("EUR", "GBP", "0.85")
    assert convert(Decimal("10"), "USD", "GBP", DAY) == Decimal("6.8")


def test_cross_rate_prefers_eur_when_several_bases_fit():
    _rate("EUR", "USD", "1.25")
    _rate("EUR", "GBP", "0.85")
    _rate("CHF", "USD", "1.00")
    _rate("CHF", "GBP", "1.00")
    assert exchange_rate("USD", "GBP", DAY) == Decimal("0.68")


def test_conversion_is_unrounded_with_enough_precision():
    _rate("EUR", "USD", "3")
    assert convert(Decimal("1"), "USD", "EUR", DAY) == Decimal("0.3333333333333333333333333333")


def test_latest_rate_on_or_before_the_date_is_used():
    _rate("EUR", "USD", "1.10", valid_on=date(2026, 11, 20))
    _rate("EUR", "USD", "1.15", valid_on=date(2026, 11, 23))
    _rate("EUR", "USD", "1.30", valid_on=date(2026, 11, 25))
    assert exchange_rate("EUR", "USD", DAY) == Decimal("1.15")


def test_direct_rate_wins_over_inverse_and_cross():
    _rate("USD", "GBP", "0.70")
    _rate("GBP", "USD", "2.00")
    _rate("EUR", "USD", "1.25")
    _rate("EUR", "GBP", "0.85")
    assert exchange_rate("USD", "GBP", DAY) == Decimal("0.70")


def test_missing_rate_names_the_pair_the_date_and_the_fix():
    _rate("EUR", "USD", "1.25")
    with pytest.raises(MissingRate) as raised:
        convert(Decimal("10"), "USD", "GBP", DAY)
    assert str(raised.value) == (
        "No exchange rate from USD to GBP on or before 2026-11-24; import rates "
        "(manage.py import_ecb_rates) or add one in Admin → Exchange rates."
    )


def test_rates_after_the_date_do_not_count():
    _rate("EUR", "USD", "1.25", valid_on=date(2026, 11, 25))
    with pytest.raises(MissingRate):
        convert(Decimal("10"), "EUR", "USD", DAY)


def test_a_cross_conversion_takes_few_queries(django_assert_max_num_queries):
    _rate("EUR", "USD", "1.25")
    _rate("EUR", "GBP", "0.85")
    with django_assert_max_num_queries(5):
        convert(Decimal("10"), "USD", "GBP", DAY)


# --- import_ecb_rates -----------------------------------------------------------------------


def _import(*args) -> str:
    out = StringIO()
    call_command("import_ecb_rates", *args, stdout=out)
    return out.getvalue()


def _stored() -> dict:
    return {(r.quote, r.valid_on): r.rate for r in ExchangeRate.objects.filter(base="EUR")}


def test_import_without_a_path_loads_the_bundled_daily_sample():
    output = _import()
    rates = _stored()
    assert len(rates) == 29
    assert rates["USD", DAY] == Decimal("1.1642")
    assert rates["JPY", DAY] == Decimal("178.93")
    assert "Imported 29 exchange rates (EUR base) for 1 day, 2026-11-24" in output


def test_sample_rates_convert_a_dollar_payout_to_pounds():
    _import()
    assert convert(Decimal("100"), "USD", "GBP", DAY).quantize(Decimal("0.01")) == Decimal("75.09")


def test_import_reads_the_historical_format_and_skips_blank_and_na_cells(tmp_path):
    path = tmp_path / "eurofxref-hist.csv"
    path.write_text(
        "Date,USD,JPY,CYP,GBP,\n"
        "2026-11-24,1.1642,178.93,N/A,0.87415,\n"
        "2026-11-23, 1.1600 ,,N/A,N/A,\n"
    )
    output = _import(str(path))
    assert _stored() == {
        ("USD", DAY): Decimal("1.1642"),
        ("JPY", DAY): Decimal("178.93"),
        ("GBP", DAY): Decimal("0.87415"),
        ("USD", date(2026, 11, 23)): Decimal("1.16"),
    }
    assert "Imported 4 exchange rates (EUR base) for 2 days, 2026-11-23 to 2026-11-24" in output


def test_import_again_updates_rates_instead_of_duplicating(tmp_path):
    path = tmp_path / "eurofxref.csv"
    path.write_text("Date, USD, \n24 November 2026, 1.10, \n")
    _import(str(path))
    path.write_text("Date, USD, \n24 November 2026, 1.20, \n")
    _import(str(path))
    assert _stored() == {("USD", DAY): Decimal("1.2")}


def test_import_reads_the_zip_the_ecb_serves(tmp_path):
    path = tmp_path / "eurofxref.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("eurofxref.csv", "Date, USD, \n24 November 2026, 1.10, \n")
    _import(str(path))
    assert _stored() == {("USD", DAY): Decimal("1.1")}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "first row must start with 'Date'"),
        ("Currency,Rate\nUSD,1.1\n", "first row must start with 'Date'"),
        ("Date, USD, \nyesterday, 1.10, \n", "Line 2: 'yesterday' is not a date"),
        ("Date, USD, \n24 Novembre 2026, 1.10, \n", "is not a date"),
        ("Date, USD, \n2026-11-24, abc, \n", "Line 2: 'abc' is not an exchange rate"),
        ("Date, USD, \n2026-11-24, -1, \n", "is not an exchange rate"),
        ("Date, USD, \n2026-11-24, N/A, \n", "No exchange rates found"),
    ],
)
def test_import_refuses_bad_files_with_a_clear_error(tmp_path, content, message):
    path = tmp_path / "rates.csv"
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        _import(str(path))
    assert not ExchangeRate.objects.exists()


def test_import_of_a_missing_file_says_it_cannot_read_it(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        _import(str(tmp_path / "nope.csv"))


def test_import_of_a_binary_file_says_it_cannot_read_it(tmp_path):
    path = tmp_path / "rates.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\x81")
    with pytest.raises(CommandError, match="Cannot read"):
        _import(str(path))


# --- format_amount: how people read an amount ------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("4.200000", "USD", "4.20 USD"),
        ("12.5", "USD", "12.50 USD"),
        ("1250.000000", "JPY", "1,250 JPY"),
        ("0.1", "BHD", "0.100 BHD"),
        ("1234567.5", "EUR", "1,234,567.50 EUR"),
        ("12.5", "", "12.50"),
    ],
)
def test_format_amount_uses_the_currencys_minor_units_and_thousands(amount, currency, shown):
    assert format_amount(Decimal(amount), currency) == shown


def test_format_amount_never_rounds_money_away():
    assert format_amount(Decimal("4.123456"), "USD") == "4.123456 USD"
    assert format_amount(Decimal("1250.5"), "JPY") == "1,250.5 JPY"


def test_format_amount_without_code_and_for_no_amount():
    assert format_amount(Decimal("1250"), "JPY", code=False) == "1,250"
    assert format_amount(None, "USD") == ""


def test_money_template_filter():
    template = Template("{% load money %}{{ a|money:c }} / {{ a|amount:c }}")
    assert (
        template.render(Context({"a": Decimal("1250.000000"), "c": "JPY"})) == "1,250 JPY / 1,250"
    )
