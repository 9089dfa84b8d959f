"""Accept parsing: explicit media ranges with q-values (q=0 is "not acceptable")."""

from __future__ import annotations

import pytest

from imgproxy_py.server.negotiation import accepted_types, client_formats
from imgproxy_py.settings import OptionSettings

AUTO = OptionSettings(auto_webp=True, auto_avif=True)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("image/webp", {"image/webp"}),
        ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", {"image/avif", "image/webp"}),
        ("image/webp;q=0", set()),
        ("image/webp; q=0.000, image/avif;q=0.5", {"image/avif"}),
        ("IMAGE/WEBP;Q=0.2", {"image/webp"}),
        ("image/webp;level=1;q=0", set()),
        ("image/webp;q=bogus", set()),
        ("image/webp;q=2", set()),
        ("image/webpx,image/avif-sequence", set()),  # a substring test says yes to both
        ("image/*,*/*", set()),  # as imgproxy: wildcards never pick a modern format
        ("", set()),
    ],
)
def test_accepted_types(accept: str, expected: set[str]) -> None:
    assert accepted_types(accept) == expected


def test_q_zero_webp_is_not_chosen_even_with_enforce() -> None:
    enforce = OptionSettings(enforce_webp=True)
    assert not client_formats("image/webp;q=0, */*", enforce).enforce_webp
    assert client_formats("image/webp;q=0.1, */*", enforce).enforce_webp
    refused = client_formats("image/avif;q=0,image/webp", AUTO)
    assert refused.webp and not refused.avif
