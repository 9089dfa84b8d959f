"""IMGPROXY_EXPERIMENTS as read; the experiments package validates it."""

from __future__ import annotations

from dataclasses import dataclass

from imgproxy_py.errors import SettingsError
from imgproxy_py.settings.env import _Env


@dataclass(frozen=True, slots=True)
class ExperimentSettings:
    """IMGPROXY_EXPERIMENTS as read: the definitions' text, parsed and validated by imgproxy_py.experiments."""

    text: str = ""  # inline JSON, or the file's content
    syntax: str = "json"  # json | yaml (a .yaml/.yml file)
    origin: str = ""  # where it came from, for error messages ("IMGPROXY_EXPERIMENTS" or the file path)

    @classmethod
    def from_env(cls, env: _Env) -> ExperimentSettings:
        """IMGPROXY_EXPERIMENTS: inline JSON (starts with ``{``), else the path of a JSON or YAML file,
        read here so a missing file stops start-up; the definitions are validated by the experiments package."""
        value = env.raw("IMGPROXY_EXPERIMENTS")
        if value is None:
            return cls()
        if value.startswith("{"):
            return cls(value, "json", "IMGPROXY_EXPERIMENTS")
        try:
            with open(value, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"IMGPROXY_EXPERIMENTS: cannot read {value!r}: {exc}") from None
        syntax = "yaml" if value.lower().endswith((".yaml", ".yml")) else "json"
        return cls(text, syntax, f"IMGPROXY_EXPERIMENTS ({value})")
