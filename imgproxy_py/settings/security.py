"""Signatures and the source/result limits (imgproxy's security settings)."""

from __future__ import annotations

from dataclasses import dataclass

from imgproxy_py.errors import SettingsError
from imgproxy_py.settings.env import _Env

# The source and result limits' defaults, written once: SecuritySettings' fields and the
# IMGPROXY_* reads below use these names, and so should any other layer that needs a default.
DEFAULT_MAX_SRC_RESOLUTION = 50_000_000  # pixels, all frames of an animation together (imgproxy: 50 MP)
# IMGPROXY_MAX_SRC_FILE_SIZE when unset (imgproxy: no cap). 64 MiB is several times a real
# photo at the default 50 MP resolution limit (a 50 MP JPEG at quality 95 is ~25 MB) and
# small enough that a few endless sources at once cannot take the process's memory (issue 16).
# 0 set explicitly still means "no cap".
DEFAULT_MAX_SRC_FILE_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_ANIMATION_FRAMES = 100
DEFAULT_MAX_ANIMATION_FRAME_RESOLUTION = 0  # pixels per frame; 0: frames of an animation count together
DEFAULT_MAX_RESULT_DIMENSION = 0  # pixels per side; 0: no limit
DEFAULT_MAX_RESULT_RESOLUTION = 100_000_000  # pixels of a result, all frames together
_MP = 1_000_000  # the *_RESOLUTION variables are in megapixels


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    keys: tuple[bytes, ...] = ()
    salts: tuple[bytes, ...] = ()
    signature_size: int = 32
    trusted_signatures: frozenset[str] = frozenset()
    max_src_resolution: int = DEFAULT_MAX_SRC_RESOLUTION
    max_src_file_size: int = DEFAULT_MAX_SRC_FILE_SIZE  # bytes; 0: no cap
    max_animation_frames: int = DEFAULT_MAX_ANIMATION_FRAMES
    max_animation_frame_resolution: int = DEFAULT_MAX_ANIMATION_FRAME_RESOLUTION
    max_result_dimension: int = DEFAULT_MAX_RESULT_DIMENSION
    max_result_resolution: int = DEFAULT_MAX_RESULT_RESOLUTION
    allow_security_options: bool = False

    @property
    def signing_enabled(self) -> bool:
        return bool(self.keys) and bool(self.salts)

    @classmethod
    def from_env(cls, env: _Env) -> SecuritySettings:
        keys = env.hex_list("IMGPROXY_KEY")
        salts = env.hex_list("IMGPROXY_SALT")
        if len(keys) != len(salts):
            raise SettingsError("IMGPROXY_KEY, IMGPROXY_SALT: the key and salt lists must have the same length")
        if any(not k for k in keys) or any(not s for s in salts):
            raise SettingsError("IMGPROXY_KEY, IMGPROXY_SALT: empty values are not allowed")
        return cls(
            keys=keys,
            salts=salts,
            signature_size=env.get_int("IMGPROXY_SIGNATURE_SIZE", 32, min_value=1, max_value=32),
            trusted_signatures=frozenset(env.get_list("IMGPROXY_TRUSTED_SIGNATURES")),
            max_src_resolution=round(
                env.get_float("IMGPROXY_MAX_SRC_RESOLUTION", DEFAULT_MAX_SRC_RESOLUTION / _MP, min_value=0.000001) * _MP
            ),
            max_src_file_size=env.get_int("IMGPROXY_MAX_SRC_FILE_SIZE", DEFAULT_MAX_SRC_FILE_SIZE, min_value=0),
            max_animation_frames=env.get_int(
                "IMGPROXY_MAX_ANIMATION_FRAMES", DEFAULT_MAX_ANIMATION_FRAMES, min_value=1
            ),
            max_animation_frame_resolution=round(
                env.get_float(
                    "IMGPROXY_MAX_ANIMATION_FRAME_RESOLUTION", DEFAULT_MAX_ANIMATION_FRAME_RESOLUTION / _MP, min_value=0
                )
                * _MP
            ),
            max_result_dimension=env.get_int(
                "IMGPROXY_MAX_RESULT_DIMENSION", DEFAULT_MAX_RESULT_DIMENSION, min_value=0
            ),
            max_result_resolution=round(
                env.get_float("IMGPROXY_MAX_RESULT_RESOLUTION", DEFAULT_MAX_RESULT_RESOLUTION / _MP, min_value=0.000001)
                * _MP
            ),
            allow_security_options=env.get_bool("IMGPROXY_ALLOW_SECURITY_OPTIONS", False),
        )
