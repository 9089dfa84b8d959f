"""EXIF orientation: every Landscape_N / Portrait_N comes out upright and like orientation 1.

The fixtures store one picture with each of the eight EXIF orientations (2–8 carry an sRGB
profile and 1 does not, and each is a separate JPEG encode, so outputs differ by ~2-3
mean levels even when correct; a wrong rotation or mirror costs 30+).
"""

from __future__ import annotations

import pytest

from tests.processing.process_helpers import fixture_bytes, has_field, run_image
from tests.support import load, mean_abs_diff

UPRIGHT = 5.0  # same picture, same orientation
DIFFERENT = 15.0  # rotated or mirrored

ORIENTATIONS = range(1, 9)
# Upright sizes (§1: orientations 5..8 swap width and height).
UPRIGHT_SIZE = {"Landscape": (600, 450), "Portrait": (450, 600)}


@pytest.mark.parametrize("kind", ["Landscape", "Portrait"])
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_auto_rotate_makes_every_orientation_upright(kind: str, orientation: int) -> None:
    _, reference = run_image(fixture_bytes(f"{kind}_1.jpg"), "")
    assert (reference.width, reference.height) == UPRIGHT_SIZE[kind]
    _, out = run_image(fixture_bytes(f"{kind}_{orientation}.jpg"), "")
    assert (out.width, out.height) == UPRIGHT_SIZE[kind]
    assert mean_abs_diff(out, reference) < UPRIGHT


@pytest.mark.parametrize("kind", ["Landscape", "Portrait"])
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_resize_is_computed_in_the_upright_frame(kind: str, orientation: int) -> None:
    # fit 300×200 on an upright 600×450 → 267×200; on 450×600 → 150×200 (§1: sizes are
    # taken after the orientation swap, so a stored 450×600 Landscape_6 also gives 267×200).
    expected = (267, 200) if kind == "Landscape" else (150, 200)
    _, reference = run_image(fixture_bytes(f"{kind}_1.jpg"), "rs:fit:300:200")
    _, out = run_image(fixture_bytes(f"{kind}_{orientation}.jpg"), "rs:fit:300:200")
    assert (out.width, out.height) == expected
    assert mean_abs_diff(out, reference) < UPRIGHT


@pytest.mark.parametrize("kind", ["Landscape", "Portrait"])
@pytest.mark.parametrize("orientation", range(2, 9))
def test_without_auto_rotate_the_stored_pixels_come_out(kind: str, orientation: int) -> None:
    _, reference = run_image(fixture_bytes(f"{kind}_1.jpg"), "ar:0/rs:fit:300:300")
    _, out = run_image(fixture_bytes(f"{kind}_{orientation}.jpg"), "ar:0/rs:fit:300:300")
    upright_w, upright_h = UPRIGHT_SIZE[kind]
    stored = (upright_h, upright_w) if orientation >= 5 else (upright_w, upright_h)
    scale = 300 / max(stored)
    assert (out.width, out.height) == (round(stored[0] * scale), round(stored[1] * scale))
    assert mean_abs_diff(out, reference) > DIFFERENT


@pytest.mark.parametrize("kind", ["Landscape", "Portrait"])
@pytest.mark.parametrize("orientation", range(2, 9))
@pytest.mark.parametrize("crop", ["c:200:150:nowe", "c:200:150:soea:30:20", "c:0.5:0.5:noea/rs:fit:100:100"])
def test_crop_gravity_is_in_the_upright_frame(kind: str, orientation: int, crop: str) -> None:
    """The crop runs before the rotation, with the gravity turned to match (§3.2)."""
    _, reference = run_image(fixture_bytes(f"{kind}_1.jpg"), crop)
    _, out = run_image(fixture_bytes(f"{kind}_{orientation}.jpg"), crop)
    assert (out.width, out.height) == (reference.width, reference.height)
    assert mean_abs_diff(out, reference) < UPRIGHT


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_kept_metadata_does_not_rotate_twice(orientation: int) -> None:
    """With sm:0 the EXIF is kept, but the orientation tag must no longer say "rotate"."""
    result, out = run_image(fixture_bytes(f"Landscape_{orientation}.jpg"), "sm:0")
    assert (out.width, out.height) == (600, 450)
    assert has_field(out, "exif-data")
    if has_field(out, "orientation"):
        assert int(out.get("orientation")) == 1
    # A viewer that honours EXIF (libvips autorot) must see the same upright image.
    assert (load(result.data).autorot().width, load(result.data).autorot().height) == (600, 450)
