"""A local file read on the worker thread that processes it: the access log and the spans as before.

The image endpoint reads a local source inside the processing job (one hand-over per cold
miss, server/image_endpoint.py ``_read_and_transform``); what a request records must not
depend on it: the download and processing spans, the source size (also when processing
fails), and no processing span for a file that was never read.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ClientFactory

PHOTO = "2569067123_aca715a2ee_o.jpg"


def _access_lines(out: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, filter(None, out.splitlines())) if line.get("msg") == "request"]


async def test_local_misses_log_spans_and_source_size_as_any_download(
    client_factory: ClientFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    async with client_factory(IMGPROXY_LOG_FORMAT="json") as client:
        miss = await client.get(f"/_/rs:fit:120:0/plain/local:///{PHOTO}@jpg")
        assert miss.status_code == 200 and miss.headers["x-cache"] == "MISS"
        assert (await client.get("/_/rs:fit:120:0/plain/local:///no-such-file.jpg@jpg")).status_code == 404
        broken = await client.get("/_/rs:fit:120:0/plain/local:///corrupt-header.jpg@jpg")
        assert 400 <= broken.status_code < 500
    ok, missing, corrupt = _access_lines(capfd.readouterr().out)[-3:]

    assert {"queue", "downloading_source_image", "processing_image"} <= set(ok["spans_ms"])
    assert ok["source_bytes"] > 100_000 and 0 < ok["result_bytes"] < ok["source_bytes"]

    assert missing["status"] == 404 and missing["error"] == "download"
    assert "downloading_source_image" in missing["spans_ms"]
    assert "processing_image" not in missing["spans_ms"]  # nothing was read, nothing processed
    assert not missing.get("source_bytes")

    assert corrupt["source_bytes"] > 0  # read, then refused by the decoder: its size is still logged
    assert "processing_image" in corrupt["spans_ms"]
