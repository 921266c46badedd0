"""Key backends are chosen by configuration; an unreachable backend is Unavailable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bordergate.errors import ConfigError, Unavailable
from bordergate.keys.backend import open_key_backend, parse_key_backend
from tests.keys.conftest import SOFTHSM_LIBRARY, TOKEN_LABEL, TOKEN_PIN, SoftHsm


def test_file_backend_from_config(tmp_path: Path) -> None:
    """Behaviour: {backend="file", path=...} opens a key file relative to the config dir."""
    settings = parse_key_backend({"backend": "file", "path": "keys.kek"}, base_dir=tmp_path)
    backend = open_key_backend(settings, jurisdiction="us", create=True)
    assert backend.kind == "file" and (tmp_path / "keys.kek").exists()


def test_pkcs11_backend_from_config(softhsm: SoftHsm, jurisdiction: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Behaviour: {backend="pkcs11", ...} opens the token; the PIN comes from the environment."""
    spec = parse_key_backend({"backend": "pkcs11", "library": SOFTHSM_LIBRARY,
                              "token": TOKEN_LABEL, "pin_env": "TEST_PIN_VAR"})
    with pytest.raises(ConfigError) as info:
        open_key_backend(spec, jurisdiction=jurisdiction)
    assert info.value.code == "key_backend_config" and "TEST_PIN_VAR" in str(info.value)
    monkeypatch.setenv("TEST_PIN_VAR", TOKEN_PIN)
    backend = open_key_backend(spec, jurisdiction=jurisdiction)
    assert backend.kind == "pkcs11"
    backend.close()


def test_pkcs11_pin_variable_defaults_to_the_cli_one() -> None:
    """Configuration (issue 16 item 4): a pkcs11 table without pin_env reads the PIN
    from BORDERGATE_PKCS11_PIN, the variable `bordergate keys --pin-env` defaults to
    and docs/config.md names."""
    from bordergate.keys.backend import DEFAULT_PIN_ENV, Pkcs11Settings

    spec = parse_key_backend({"backend": "pkcs11", "library": SOFTHSM_LIBRARY,
                              "token": TOKEN_LABEL})
    assert isinstance(spec, Pkcs11Settings)
    assert spec.pin_env == DEFAULT_PIN_ENV == "BORDERGATE_PKCS11_PIN"
    assert DEFAULT_PIN_ENV in (Path(__file__).parents[2] / "docs/config.md").read_text()


@pytest.mark.parametrize(("spec", "key"), [
    ({"backend": "vault"}, "keys.backend"), ({"backend": "file"}, "keys.path"),
    ({"backend": "pkcs11", "library": "x"}, "keys.token"),
    ({"path": "k.kek", "token": "t"}, "keys.token")],
    ids=["unknown", "file-without-path", "pkcs11-incomplete", "pkcs11-key-on-file"])
def test_bad_backend_config(spec: dict[str, object], key: str) -> None:
    """Behaviour: an unknown or incomplete key-backend table is a ConfigError naming the
    key, found when the settings are parsed (at load), before any backend is opened."""
    with pytest.raises(ConfigError) as info:
        parse_key_backend(spec)
    assert info.value.code == "key_backend_config" and str(info.value).startswith(key)


def test_unreachable_token_is_unavailable(softhsm: SoftHsm, tmp_path: Path) -> None:
    """Behaviour: a missing PKCS#11 module or token is Unavailable (503), not a crash."""
    from bordergate.keys.backends.hsm import Pkcs11Backend

    with pytest.raises(Unavailable) as info:
        Pkcs11Backend(library=SOFTHSM_LIBRARY, token_label="no-such-token", pin=TOKEN_PIN,
                      jurisdiction="us")
    assert info.value.code == "key_backend_unavailable"
    with pytest.raises(Unavailable):
        Pkcs11Backend(library=str(tmp_path / "missing.so"), token_label=TOKEN_LABEL,
                      pin=TOKEN_PIN, jurisdiction="us")
