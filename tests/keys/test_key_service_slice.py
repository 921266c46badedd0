"""The key service's settings are reviewed settings (issue 13, item 3; promise 6): its
URL (who holds the KEKs), ``cache_seconds`` (how long a gateway that stops logging can
still open what it cached) and ``window_seconds`` (how old a decision may justify a
key) change what evidence means, so they are in the jurisdiction's deployment slice
and a change is named by the start-time check's diff."""

from __future__ import annotations

from pathlib import Path

from bordergate.config import load_config
from bordergate.releases.deployment_slice import KEY_SERVICE, deployment_slice, diff_settings
from tests.gateway.deployment import free_port, use_sequencer_service, write_deployment


def _with_key_service(config: Path, *, cache: int, window: int) -> None:
    text = config.read_text()
    if "[jurisdictions.us.key_service]" in text:
        text = text[:text.index("[jurisdictions.us.key_service]")] + \
            text[text.index("[jurisdictions.us.issuer]"):]
    config.write_text(text.replace(
        "[jurisdictions.us.issuer]\n",
        "[jurisdictions.us.key_service]\nurl = \"http://127.0.0.1:9\"\n"
        'credential_file = "us/us-gw-1-keys.cred"\n'
        'credentials_file = "us/key-service-gateways.txt"\n'
        'append_credential_file = "us/us-keys.cred"\n'
        f"window_seconds = {window}\ncache_seconds = {cache}\n"
        "[jurisdictions.us.issuer]\n", 1))


def test_key_service_settings_are_in_the_slice_and_each_change_is_named(
        tmp_path: Path) -> None:
    """Without a key service the slice has no key_service member (older digests hold);
    adding one, lengthening its cache lifetime or widening its window each change the
    digest, and the diff names key_service with both values."""
    config = write_deployment(tmp_path)
    use_sequencer_service(config, free_port())
    bare = deployment_slice(load_config(config), "us")
    assert KEY_SERVICE not in bare.settings
    _with_key_service(config, cache=10, window=30)
    keyed = deployment_slice(load_config(config), "us")
    assert keyed.settings[KEY_SERVICE] == {"url": "http://127.0.0.1:9", "cache_seconds": 10,
                                           "window_seconds": 30}
    assert diff_settings(bare, keyed) == [
        'key_service: absent -> {"cache_seconds":10,"url":"http://127.0.0.1:9",'
        '"window_seconds":30}']
    for cache, window in ((300, 30), (10, 600)):
        _with_key_service(config, cache=cache, window=window)
        changed = deployment_slice(load_config(config), "us")
        assert changed.digest != keyed.digest
        assert [line.split(":")[0] for line in diff_settings(keyed, changed)] == [KEY_SERVICE]
