"""An image request's path → what it asks for (options, source, cache key), before any I/O.

Verifying the signature and parsing the options are pure, so a path seen before (a cache hit)
is memoised together with everything derived from it that does not depend on the request's
headers: the experiment arm, whether the path is an ``aq:ml`` one (its cache key carries the
serving model version) and whether its s3:// source could have lost a versionId to the query.
A repeated path then costs two dictionary lookups and the Accept negotiation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from starlette.types import Scope

from imgproxy_py import keys
from imgproxy_py.errors import InvalidURLError
from imgproxy_py.experiments import Experiments
from imgproxy_py.options.model import ProcessingOptions
from imgproxy_py.options.parser import ClientHints, ParsedURL, Parser, split_signature
from imgproxy_py.processing.format_choice import NO_CLIENT_FORMATS, ClientFormats
from imgproxy_py.security import verify_signature
from imgproxy_py.server.memo import LRU
from imgproxy_py.server.negotiation import client_formats
from imgproxy_py.server.quality_models import QualityModelTracker
from imgproxy_py.server.scope import header, raw_path
from imgproxy_py.settings import Settings


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """What one image request resolved to before any I/O."""

    po: ProcessingOptions
    source_url: str
    client: ClientFormats
    key: str
    if_none_match: str | None
    options_text: str  # po.canonical(), once per path: the cache key and the ETag digest it
    experiment: str = ""  # "name=arm" when an experiment applies (X-Experiment, access log, metrics)
    variant: str = ""  # the client's format key plus the arm (and aq:ml's model): part of the cache key and ETag


@dataclass(slots=True)
class _Path:
    """One verified, parsed path and what follows from it alone."""

    parsed: ParsedURL
    options_text: str  # parsed.options.canonical(): digested by the cache key and the ETag
    negotiates: bool  # the result's format depends on the Accept header
    ml: bool  # aq:ml: the serving model version is part of the key
    lost_version: bool  # a plain s3:// source without '?': a request query may have eaten its versionId
    # client formats key → (variant, cache key, model version it was made for)
    keys: dict[str, tuple[str, str, str]] = field(default_factory=dict)


class ImageResolver:
    """Signature check, parse, experiment arm and cache key of an image path (memoised per path)."""

    def __init__(
        self,
        settings: Settings,
        parser: Parser,
        settings_fingerprint: str,
        *,
        default_autoquality: str = "",
        experiments: Experiments | None = None,
        quality_models: QualityModelTracker | None = None,
    ) -> None:
        self.settings = settings
        self.parser = parser
        self.fingerprint = settings_fingerprint
        self.default_autoquality = default_autoquality  # the configured aq method (IMGPROXY_AUTOQUALITY_METHOD)
        self.experiments = experiments
        self.quality_models = quality_models
        self._paths: LRU[str, _Path] = LRU(8192)
        # Accept header → the formats it allows and their key: browsers send a handful of
        # distinct Accept values, so a request on a negotiating URL does not parse one again
        # (the one memo of that derivation; negotiation.py keeps none).
        self._accepts: LRU[str, tuple[ClientFormats, str]] = LRU(1024)
        self._client_hints = settings.options.client_hints

    def resolve(self, scope: Scope) -> ImageRequest:
        """Verify and parse the path (or take both from the memo); raises the request's 4xx."""
        memo_key, hints = self._memo_key(scope)
        path = self._paths.get(memo_key)
        if path is None:
            path = self._parse(scope, hints)
            if not path.parsed.options.expires:  # an expiring URL must be re-checked every time
                self._paths.put(memo_key, path)
        return self._request(scope, path)

    def resolve_cached(self, scope: Scope) -> ImageRequest | None:
        """``resolve`` for a path verified and parsed before; None for any other (no parsing here)."""
        path = self._paths.get(self._memo_key(scope)[0])
        return None if path is None else self._request(scope, path)

    def _memo_key(self, scope: Scope) -> tuple[str, ClientHints | None]:
        raw = raw_path(scope)
        if not self._client_hints:
            return raw, None
        hints = ClientHints.from_headers(
            header(scope, b"sec-ch-dpr") or header(scope, b"dpr"),
            header(scope, b"sec-ch-width") or header(scope, b"width"),
        )
        return (raw, None) if hints is None else (f"{raw}\x00{hints.key()}", hints)

    def _parse(self, scope: Scope, hints: ClientHints | None) -> _Path:
        settings = self.settings
        signature, path = split_signature(raw_path(scope), settings.server.path_prefix)
        verify_signature(settings.security, signature, path)
        parsed = self.parser.parse(path, hints)
        if self.experiments is not None and not parsed.options.raw:
            parsed = self._with_arm(path, hints, parsed, self.experiments)
        po = parsed.options
        opts = settings.options
        method = po.autoquality.method
        return _Path(
            parsed=parsed,
            options_text=po.canonical(),
            negotiates=po.format is None or opts.enforce_webp or opts.enforce_avif or opts.enforce_jxl,
            ml=self.quality_models is not None
            and (method == "ml" or (not method and self.default_autoquality == "ml")),
            lost_version=parsed.source_url.startswith("s3://")
            and "?" not in parsed.source_url
            and "/plain/" in raw_path(scope),
        )

    def _with_arm(self, path: str, hints: ClientHints | None, parsed: ParsedURL, experiments: Experiments) -> ParsedURL:
        """The URL parsed again with its experiment arm's options appended (after the signature
        check: the arm is not part of the signed path, so signed URLs stay valid)."""
        assignment = experiments.assign(parsed.source_url, parsed.presets)
        if assignment is None:
            return parsed
        if assignment.segments:
            parsed = self.parser.parse(path, hints, assignment.segments)
        return dataclasses.replace(parsed, experiment=assignment.label)

    def _request(self, scope: Scope, path: _Path) -> ImageRequest:
        if path.lost_version and scope.get("query_string"):
            _refuse_lost_version()
        parsed = path.parsed
        if path.negotiates:
            accept = header(scope, b"accept") or ""
            formats = self._accepts.get(accept)
            if formats is None:
                client = client_formats(accept, self.settings.options)
                formats = (client, client.key())
                self._accepts.put(accept, formats)
            client, client_key = formats
        else:
            client, client_key = NO_CLIENT_FORMATS, _NO_CLIENT_KEY
        model = self.quality_models.cache_version() if path.ml and self.quality_models is not None else ""
        known = path.keys.get(client_key)
        if known is None or known[2] != model:  # a promotion changes aq:ml results' keys
            variant = f"{client_key}|x:{parsed.experiment}" if parsed.experiment else client_key
            if model:
                variant += f"|m:{model}"
            known = (variant, keys.cache_key(path.options_text, variant, parsed.source_url, self.fingerprint), model)
            path.keys[client_key] = known
        return ImageRequest(
            po=parsed.options,
            source_url=parsed.source_url,
            client=client,
            key=known[1],
            if_none_match=header(scope, b"if-none-match"),
            experiment=parsed.experiment,
            variant=known[0],
            options_text=path.options_text,
        )


_NO_CLIENT_KEY = NO_CLIENT_FORMATS.key()


def _refuse_lost_version() -> None:
    """``plain/s3://bucket/key?<versionId>`` with the '?' unescaped: the version arrived as the
    request's query, which is not part of the image path; serving the latest version instead
    would be silently wrong."""
    raise InvalidURLError(
        "a plain s3:// source's '?' before the versionId must be percent-encoded as %3F; "
        "unescaped, it starts the request's query and the version is lost"
    )
