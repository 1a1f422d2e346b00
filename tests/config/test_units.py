import pytest

from wsgi_gateway.config.units import Rate, parse_duration, parse_rate


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("5m", 300), ("1h", 3600), ("30d", 30 * 86400), ("2w", 14 * 86400),
    ("250ms", 0.25), ("1.5m", 90), (" 10 s ", 10), (12, 12), (0.5, 0.5), ("0s", 0),
    ("0", 0), (" 0.0 ", 0),  # zero needs no unit: `keys rotate --grace 0` (issue 10)
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "10 parsecs", "-5s", "1e3s", True, None, [1]])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("text, rate", [
    ("100/s", Rate(100, 1)), ("1000/1d", Rate(1000, 86400)), ("5/30s", Rate(5, 30)),
    ("100000/30d", Rate(100000, 30 * 86400)), ("10 / m", Rate(10, 60)),
])
def test_rates(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["100", "/s", "0/s", "10/0s", "ten/s", 100, "1.5/s"])
def test_bad_rates(text):
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)
