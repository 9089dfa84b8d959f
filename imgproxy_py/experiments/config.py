"""IMGPROXY_EXPERIMENTS definitions: a schema (pydantic) and their validation at start-up.

pydantic gives precise, located error messages ("experiments.0.arms.1.share: ...") for a
hand-written file; an invalid definition raises SettingsError, which stops start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imgproxy_py.errors import ImgproxyError, SettingsError
from imgproxy_py.settings import ExperimentSettings

# Names end up in a response header, Prometheus labels and log lines: keep them plain.
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Arm(_Strict):
    name: Name
    # Option segments appended to the URL's own options, as in a URL: "q:80" or "q:70/sh:0.5"; "" for none.
    options: str = Field(default="", max_length=1000)
    share: float = Field(gt=0, le=100)  # percent of the experiment's URLs

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(s for s in self.options.strip("/").split("/") if s)


class PresetScope(_Strict):
    preset: Name  # URLs that apply this preset (directly, in another preset, or as `default`)


class PrefixScope(_Strict):
    source_prefixes: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)


class Experiment(_Strict):
    name: Name
    enabled: bool = True
    scope: Literal["all"] | PresetScope | PrefixScope = "all"
    arms: list[Arm] = Field(min_length=2, max_length=20)

    @field_validator("arms")
    @classmethod
    def _arms(cls, arms: list[Arm]) -> list[Arm]:
        names = [arm.name for arm in arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        total = sum(arm.share for arm in arms)
        if abs(total - 100) > 1e-6:
            raise ValueError(f"arm shares must add up to 100, they add up to {total:g}")
        return arms

    def in_scope(self, source_url: str, presets: Sequence[str]) -> bool:
        scope = self.scope
        if scope == "all":
            return True
        if isinstance(scope, PresetScope):
            return scope.preset in presets
        assert isinstance(scope, PrefixScope)
        return source_url.startswith(tuple(scope.source_prefixes))


class ExperimentsFile(_Strict):
    experiments: list[Experiment] = Field(max_length=100)

    @model_validator(mode="after")
    def _unique(self) -> ExperimentsFile:
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment names must be unique, got {names}")
        return self


def load_experiments(
    conf: ExperimentSettings, check_options: Callable[[Sequence[str]], None] | None = None
) -> ExperimentsFile | None:
    """Parse and validate the definitions (None when IMGPROXY_EXPERIMENTS is unset).

    ``check_options`` (the URL parser's) applies each arm's options once, so a typo in an arm
    stops start-up rather than answering 404 to a share of the traffic.
    """
    if not conf.text.strip():
        return None
    origin = conf.origin or "IMGPROXY_EXPERIMENTS"
    try:
        data = yaml.safe_load(conf.text) if conf.syntax == "yaml" else _json(conf.text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SettingsError(f"{origin}: not valid {conf.syntax.upper()}: {exc}") from None
    try:
        parsed = ExperimentsFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise SettingsError(f"{origin}: invalid experiments: {problems}") from None
    if check_options is not None:
        for experiment in parsed.experiments:
            for arm in experiment.arms:
                try:
                    check_options(arm.segments)
                except ImgproxyError as exc:
                    raise SettingsError(
                        f"{origin}: experiment {experiment.name!r} arm {arm.name!r}: invalid options "
                        f"{arm.options!r}: {exc.detail}"
                    ) from None
    return parsed


def _json(text: str) -> object:
    import json

    return json.loads(text)
