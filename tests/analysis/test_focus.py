"""The crop geometry around faces (pure logic): which window, how it moves, what it keeps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgproxy_py.analysis.detector import Detection
from imgproxy_py.analysis.focus import (
    Box,
    View,
    extend_position,
    focus_window,
    keep_whole,
    kept_share,
    pixel_boxes,
    turned,
    within,
)


def test_focus_window_keeps_every_face_that_fits() -> None:
    boxes = [Box(100, 100, 150, 160, 3.0), Box(300, 110, 340, 160, 2.0)]
    left, top = focus_window(1000, 400, 300, 200, boxes) or (0, 0)
    assert all(kept_share(b, left, top, 300, 200) == 1.0 for b in boxes)


def test_focus_window_prefers_the_heaviest_when_not_all_fit() -> None:
    small, big = Box(10, 10, 40, 40, 1.0), Box(800, 100, 900, 220, 50.0)
    left, top = focus_window(1000, 400, 200, 200, [big, small]) or (0, 0)
    assert kept_share(big, left, top, 200, 200) == 1.0
    assert kept_share(small, left, top, 200, 200) == 0.0


def test_focus_window_without_faces_is_none() -> None:
    assert focus_window(100, 100, 50, 50, []) is None


def test_keep_whole_moves_a_cut_face_inside() -> None:
    face = Box(180, 20, 260, 120)
    left, top = keep_whole(100, 0, 600, 200, 120, 200, [face])
    assert kept_share(face, left, top, 120, 200) == 1.0
    assert left == 140  # the smallest move


def test_keep_whole_leaves_a_face_too_big_for_the_window() -> None:
    face = Box(0, 0, 300, 300)
    assert keep_whole(50, 50, 400, 400, 100, 100, [face]) == (50, 50)


def test_keep_whole_never_cuts_a_face_that_was_whole() -> None:
    whole, cut = Box(100, 0, 180, 80, 10.0), Box(190, 0, 260, 80, 1.0)
    left, top = keep_whole(90, 0, 400, 100, 120, 100, [whole, cut])
    assert kept_share(whole, left, top, 120, 100) == 1.0


@given(
    st.integers(0, 300),
    st.integers(20, 200),
    st.integers(0, 700),
)
def test_keep_whole_result_stays_inside_and_holds_a_fitting_face(face_x: int, face_w: int, left: int) -> None:
    img_w, crop_w = 1000, 300
    face = Box(face_x, 10, face_x + face_w, 60)
    new_left, _ = keep_whole(left, 0, img_w, 100, crop_w, 100, [face])
    assert 0 <= new_left <= img_w - crop_w
    share = kept_share(face, new_left, 0, crop_w, 100)
    assert share in (0.0, 1.0) or face_w > crop_w


def test_within_and_turned_follow_the_image() -> None:
    face = Detection(0.5, 0.25, 0.1, 0.2, 0.9)
    (inside,) = within([face], View(0.5, 0.0, 0.5, 0.5))
    assert (round(inside.x, 6), round(inside.y, 6), round(inside.w, 6), round(inside.h, 6)) == (0.0, 0.5, 0.2, 0.4)
    assert within([face], View(0.0, 0.0, 0.4, 1.0)) == []
    (r90,) = turned([face], 90)  # clockwise: the left edge becomes the top
    assert (round(r90.x, 6), round(r90.y, 6), round(r90.w, 6), round(r90.h, 6)) == (0.55, 0.5, 0.2, 0.1)
    (back,) = turned(turned([face], 90), 270)
    assert (round(back.x, 6), round(back.y, 6)) == (0.5, 0.25)
    (mirrored,) = turned([face], 0, flip_h=True)
    assert round(mirrored.x, 6) == 0.4


def test_class_weights_scale_and_drop_boxes() -> None:
    small = Detection(0.0, 0.0, 0.1, 0.1, 0.9, "face")
    large = Detection(0.5, 0.5, 0.3, 0.3, 0.9, "face")
    plain = pixel_boxes([small, large], 100, 100)
    doubled = pixel_boxes([small, large], 100, 100, class_weights={"face": 2.0})
    assert [b.weight * 2 for b in plain] == pytest.approx([b.weight for b in doubled])
    assert pixel_boxes([small, large], 100, 100, class_weights={"all": 0.0}) == []
    assert len(pixel_boxes([small], 100, 100, class_weights={"all": 0.0, "face": 1.0})) == 1


def test_extend_position_centres_the_faces_on_the_canvas() -> None:
    face = Box(10, 20, 30, 40)  # centre (20, 30) in a 100×100 image
    assert extend_position(300, 300, 100, 100, [face]) == (130, 120)
    assert extend_position(150, 100, 100, 100, [face]) == (50, 0)  # as far as the canvas allows
    assert extend_position(300, 300, 100, 100, []) is None
