"""Presets: ``name=opt:a:b/opt:c`` definitions parsed and validated once at start-up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from imgproxy_py.errors import ImgproxyError, SettingsError

PresetTable = dict[str, list[tuple[str, list[str]]]]


def split_option(segment: str, separator: str = ":") -> tuple[str, list[str]]:
    name, *args = segment.split(separator)
    return name, args


def parse_presets(
    definitions: Iterable[str], source: str = "IMGPROXY_PRESETS", separator: str = ":", table: PresetTable | None = None
) -> PresetTable:
    """Parse ``name=opt/opt`` strings into ``table`` (a later definition of a name wins).

    Blank lines and ``#`` comments are skipped; an invalid line raises SettingsError naming ``source``.
    """
    table = {} if table is None else table
    for line in definitions:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, body = line.partition("=")
        name = name.strip()
        if not sep or not name or not body.strip():
            raise SettingsError(f"{source}: invalid preset definition {line!r} (expected name=options)")
        options = []
        for segment in body.strip().strip("/").split("/"):
            opt_name, args = split_option(segment, separator)
            if not args:
                raise SettingsError(f"{source}: preset {name!r} has an option without arguments: {segment!r}")
            options.append((opt_name, args))
        table[name] = options
    return table


def validate_presets(
    table: PresetTable,
    source: str = "IMGPROXY_PRESETS",
    allow_security: bool = False,
    origins: Mapping[str, str] | None = None,
) -> None:
    """Apply every preset once to default options so a typo stops the server at start-up.

    Security options inside a preset need IMGPROXY_ALLOW_SECURITY_OPTIONS like anywhere else.
    """
    from imgproxy_py.options.appliers import ParseState, apply_preset
    from imgproxy_py.options.model import ProcessingOptions

    for name in table:
        try:
            apply_preset(ParseState(ProcessingOptions(), table, allow_security=allow_security), [name])
        except ImgproxyError as exc:
            origin = (origins or {}).get(name, source)
            raise SettingsError(f"{origin}: preset {name!r} is invalid: {exc.detail}") from None
