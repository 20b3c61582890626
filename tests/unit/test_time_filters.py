"""The pages' time filters: UTC text a person can read without JavaScript, inside a <time>
element whose ISO datetime and UTC title the browser's script localises."""

from __future__ import annotations

from mailhaul.web.ui.templating import ENV, relative, when

NOON = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC


def test_when_is_a_time_element_with_utc_text_iso_datetime_and_utc_title():
    assert str(when(NOON)) == (
        '<time datetime="2026-09-21T14:13:20Z" title="2026-09-21 14:13:20 UTC" '
        'data-time="when">2026-09-21 14:13:20 UTC</time>'
    )
    assert when(None) == "—"


def test_relative_words_the_distance_and_keeps_the_exact_utc_time_in_its_title():
    assert str(relative(NOON + 240, NOON)) == (
        '<time datetime="2026-09-21T14:17:20Z" title="2026-09-21 14:17:20 UTC" '
        'data-time="relative">in 4 min</time>'
    )
    assert ">3 min ago</time>" in str(relative(NOON - 180, NOON))
    assert ">now</time>" in str(relative(NOON, NOON))
    assert relative(None, NOON) == ""


def test_the_markup_survives_autoescaping_once_and_is_not_escaped_twice():
    page = ENV.from_string("{{ t | when }} {{ t | relative(now) }} {{ name }}")
    html = page.render(t=NOON, now=NOON - 60, name="<b>")
    assert html.count("<time ") == 2
    assert "&lt;time" not in html
    assert html.endswith("&lt;b&gt;")  # everything else is still escaped
