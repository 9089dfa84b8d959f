"""local:// is confined to its root: no escape by .., encoded dots, symlinks or special files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imgproxy_py.errors import SourceError
from imgproxy_py.sources.base import FetchLimits
from imgproxy_py.sources.local import LocalSource


@pytest.fixture
def jail(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.jpg").write_bytes(b"\xff\xd8\xffinside")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", root / "link-out")
    os.symlink(root / "sub" / "ok.jpg", root / "link-in.jpg")
    os.mkfifo(root / "fifo")
    return root


@pytest.mark.parametrize(
    "url",
    [
        "local:///../secret.txt",
        "local:///sub/../../secret.txt",
        "local:///%2e%2e/secret.txt",
        "local:///link-out",
        "local:///sub",
        "local:///fifo",
        "local:///nope.jpg",
        "local:///sub/ok.jpg%00.png",
    ],
)
async def test_escapes_and_specials_are_refused(jail: Path, url: str) -> None:
    source = LocalSource(str(jail))
    with pytest.raises(SourceError) as info:
        await source.fetch(url, FetchLimits(timeout=2))
    assert info.value.status_code == 404


async def test_inside_paths_and_inner_symlinks_work(jail: Path) -> None:
    source = LocalSource(str(jail))
    for url in ("local:///sub/ok.jpg", "local:///link-in.jpg", "local:///sub/./ok.jpg"):
        image = await source.fetch(url, FetchLimits(timeout=2))
        assert image.data == b"\xff\xd8\xffinside"
