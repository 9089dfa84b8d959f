"""URL signatures: the imgproxy docs' examples, key rotation, trusted and malformed signatures.

Spec: ../shared/reference/imgproxy.md §1.2, §1.5 and imgproxy's security/signature.go.
"""

from __future__ import annotations

import pytest

from imgproxy_py.errors import ForbiddenError, SignatureError
from imgproxy_py.options.parser import split_signature
from imgproxy_py.security import compute_signature, sign_path, verify_signature
from imgproxy_py.settings import SecuritySettings, Settings

# Example B (examples/signature.py in imgproxy's repo)
KEY_HEX = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881"
SALT_HEX = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5"
PATH_B = "/rs:fit:300:300/plain/http://img.example.com/pretty/image.jpg"
SIG_B = "m3k5QADfcKPDj-SDI2AIogZbC3FlAXszuwhtWXYqavc"
SIG_B_8 = "m3k5QADfcKM"

# Example A (docs: usage/signing_url.mdx): key "secret", salt "hello"
PATH_A = "/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png"
SIG_A = "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8"

# A second, unrelated pair for rotation tests
KEY2_HEX = "00112233445566778899aabbccddeeff"
SALT2_HEX = "ffeeddccbbaa99887766554433221100"


def security(**env: str) -> SecuritySettings:
    return Settings.from_env(env).security


SIGNED_B = security(IMGPROXY_KEY=KEY_HEX, IMGPROXY_SALT=SALT_HEX)
UNSIGNED = security()


def test_example_b_full_signature() -> None:
    key, salt = bytes.fromhex(KEY_HEX), bytes.fromhex(SALT_HEX)
    assert compute_signature(key, salt, PATH_B) == SIG_B
    assert compute_signature(key, salt, PATH_B.lstrip("/")) == SIG_B  # "/" is re-added
    verify_signature(SIGNED_B, SIG_B, PATH_B)
    verify_signature(SIGNED_B, SIG_B, PATH_B.lstrip("/"))


def test_example_b_truncated_signature() -> None:
    key, salt = bytes.fromhex(KEY_HEX), bytes.fromhex(SALT_HEX)
    assert compute_signature(key, salt, PATH_B, 8) == SIG_B_8
    settings = security(IMGPROXY_KEY=KEY_HEX, IMGPROXY_SALT=SALT_HEX, IMGPROXY_SIGNATURE_SIZE="8")
    verify_signature(settings, SIG_B_8, PATH_B)
    with pytest.raises(SignatureError):
        verify_signature(settings, SIG_B, PATH_B)  # the full signature is too long for size 8
    with pytest.raises(SignatureError):
        verify_signature(SIGNED_B, SIG_B_8, PATH_B)  # and the short one too short for 32


def test_example_a_key_and_salt_as_hex() -> None:
    # hex is case-insensitive: "68656C6C6F" as written in the docs
    settings = security(IMGPROXY_KEY="736563726574", IMGPROXY_SALT="68656C6C6F")
    assert settings.keys == (b"secret",)
    assert settings.salts == (b"hello",)
    assert compute_signature(b"secret", b"hello", PATH_A) == SIG_A
    verify_signature(settings, SIG_A, PATH_A)


def test_signed_path_is_the_re_normalised_path() -> None:
    """A CDN turning ':' into %3A and '//' into '/' must not break the signature (§1.2 step 6)."""
    mangled = f"/{SIG_B}/rs%3Afit%3A300%3A300/plain/http:/img.example.com/pretty/image.jpg"
    signature, path = split_signature(mangled)
    assert (signature, path) == (SIG_B, PATH_B)
    verify_signature(SIGNED_B, signature, path)


def test_key_rotation_any_configured_pair_verifies() -> None:
    settings = security(IMGPROXY_KEY=f"{KEY_HEX},{KEY2_HEX}", IMGPROXY_SALT=f"{SALT_HEX},{SALT2_HEX}")
    key2, salt2 = bytes.fromhex(KEY2_HEX), bytes.fromhex(SALT2_HEX)
    sig2 = compute_signature(key2, salt2, PATH_B)
    assert sig2 != SIG_B
    verify_signature(settings, SIG_B, PATH_B)
    verify_signature(settings, sig2, PATH_B)
    with pytest.raises(SignatureError):
        verify_signature(SIGNED_B, sig2, PATH_B)  # not configured there
    # pairs are not mixed: key 1 with salt 2 is not a valid pair
    crossed = compute_signature(bytes.fromhex(KEY_HEX), salt2, PATH_B)
    with pytest.raises(SignatureError):
        verify_signature(settings, crossed, PATH_B)


def test_trusted_signatures_are_accepted_for_any_path() -> None:
    settings = security(
        IMGPROXY_KEY=KEY_HEX, IMGPROXY_SALT=SALT_HEX, IMGPROXY_TRUSTED_SIGNATURES="trusted-one, trusted_two"
    )
    verify_signature(settings, "trusted-one", PATH_B)
    verify_signature(settings, "trusted_two", "/w:1/plain/http://other.example.com/x.png")
    for untrusted in ("trusted", "trusted-one2", "Trusted-one"):
        with pytest.raises(SignatureError):
            verify_signature(settings, untrusted, PATH_B)


def _flip_char(sig: str, index: int) -> str:
    replacement = "A" if sig[index] != "A" else "B"
    return sig[:index] + replacement + sig[index + 1 :]


WRONG = [
    _flip_char(SIG_B, 0),
    _flip_char(SIG_B, 20),
    SIG_B[:-1],  # one byte short
    SIG_B + "A",  # one byte too many
    compute_signature(bytes.fromhex(KEY_HEX), bytes.fromhex(SALT_HEX), "/rs:fit:300:301/plain/x"),
    compute_signature(bytes.fromhex(KEY_HEX), b"", PATH_B),  # salt missing
    compute_signature(bytes.fromhex(SALT_HEX), bytes.fromhex(KEY_HEX), PATH_B),  # key and salt swapped
]


@pytest.mark.parametrize("signature", WRONG)
def test_wrong_signature_is_forbidden(signature: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify_signature(SIGNED_B, signature, PATH_B)
    assert isinstance(info.value, ForbiddenError)
    assert info.value.status_code == 403
    assert info.value.public_message == "Forbidden"


def test_signature_for_another_path_is_forbidden() -> None:
    with pytest.raises(SignatureError):
        verify_signature(SIGNED_B, SIG_B, PATH_B + "@png")
    with pytest.raises(SignatureError):
        verify_signature(SIGNED_B, SIG_B, PATH_B.replace("300:300", "300%3A300"))


MALFORMED = [
    "",
    "not base64!",
    "m3k5QADfcKPDj+SDI2AIogZbC3FlAXszuwhtWXYqavc",  # '+' is standard, not URL-safe, base64
    "m3k5QADfcKPDj/SDI2AIogZbC3FlAXszuwhtWXYqavc",
    "abcde",  # length ≡ 1 (mod 4) cannot be base64
    "rs:fit:300:300",  # an option where the signature belongs
    "insecure",
    # RawURLEncoding: padding is not part of the alphabet
    SIG_B + "=",
    SIG_B_8 + "=",
    "=",
]


@pytest.mark.parametrize("signature", MALFORMED)
def test_malformed_signature_is_forbidden(signature: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify_signature(SIGNED_B, signature, PATH_B)
    assert info.value.status_code == 403


def test_padded_truncated_signature_is_rejected() -> None:
    settings = security(IMGPROXY_KEY=KEY_HEX, IMGPROXY_SALT=SALT_HEX, IMGPROXY_SIGNATURE_SIZE="8")
    verify_signature(settings, SIG_B_8, PATH_B)
    with pytest.raises(SignatureError):
        verify_signature(settings, SIG_B_8 + "=", PATH_B)


@pytest.mark.parametrize("signature", ["insecure", "unsafe", "_", "x", SIG_B, "not base64!", "abc+/=="])
def test_signing_disabled_accepts_any_segment(signature: str) -> None:
    assert not UNSIGNED.signing_enabled
    verify_signature(UNSIGNED, signature, PATH_B)


@pytest.mark.parametrize("signature", ["rs:fit:300:300", "w:100", ":", "a:"])
def test_signing_disabled_rejects_an_option_in_the_signature_place(signature: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify_signature(UNSIGNED, signature, PATH_B)
    assert info.value.status_code == 403
    assert "processing option" in info.value.public_message


def test_signing_needs_both_key_and_salt() -> None:
    assert SIGNED_B.signing_enabled
    assert not SecuritySettings(keys=(b"k",)).signing_enabled
    assert not SecuritySettings(salts=(b"s",)).signing_enabled


@pytest.mark.parametrize("path", [PATH_B, PATH_B.lstrip("/"), PATH_A, "/w:1/plain/http://x.com/ünïcode.jpg"])
def test_sign_path_round_trip(path: str) -> None:
    signed = sign_path(SIGNED_B, path)
    normalised = path if path.startswith("/") else "/" + path
    assert signed.endswith(normalised)
    signature, rest = split_signature(signed)
    assert rest == normalised
    verify_signature(SIGNED_B, signature, rest)


def test_sign_path_uses_the_first_pair_and_the_signature_size() -> None:
    assert sign_path(SIGNED_B, PATH_B) == f"/{SIG_B}{PATH_B}"
    settings = security(
        IMGPROXY_KEY=f"{KEY_HEX},{KEY2_HEX}",
        IMGPROXY_SALT=f"{SALT_HEX},{SALT2_HEX}",
        IMGPROXY_SIGNATURE_SIZE="8",
    )
    assert sign_path(settings, PATH_B) == f"/{SIG_B_8}{PATH_B}"


def test_sign_path_without_keys_uses_a_placeholder() -> None:
    signed = sign_path(UNSIGNED, PATH_B)
    assert signed == f"/insecure{PATH_B}"
    signature, rest = split_signature(signed)
    verify_signature(UNSIGNED, signature, rest)
