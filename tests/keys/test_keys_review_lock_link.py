"""Keys review: the key file's lock is never opened through a planted link.

The promise (bordergate.keys.backends.keyfile: the key file backend writes
nowhere but its key file and its lock): ``<file>.lock`` was opened with
``O_CREAT`` following symbolic links, so whoever could write the key directory
(a shared operator group) planted ``kek.json.lock`` as a link and the next
``keys init``, rotation or ``gateway init`` (often root) created the link's
target, an empty file anywhere (``/etc/nologin`` stops every other login).

TEST-ONLY key files, in the test's temporary directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bordergate.errors import Unavailable
from bordergate.keys.backends.keyfile import LocalKeyFile


def test_a_link_planted_at_the_lock_is_not_followed(tmp_path: Path) -> None:
    """The key file backend creates nothing outside its own two files: with its lock
    replaced by a link, creating the key file fails closed
    (``key_backend_unavailable``) and the link's target is not created."""
    target = tmp_path / "elsewhere" / "nologin"
    target.parent.mkdir()
    (tmp_path / "us.kek.lock").symlink_to(target)
    with pytest.raises(Unavailable) as refused:
        LocalKeyFile(tmp_path / "us.kek", jurisdiction="us", create=True)
    assert refused.value.code == "key_backend_unavailable"
    assert not target.exists()
