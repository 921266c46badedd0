"""docs/config.md and the README stay true: their example deployment files are what
`load_config` accepts (production for docs/config.md, development for the README's
short one), and the schema example is what the schema check accepts (issue 16's gap
"docs/config.md examples not executed"; multi-line inline tables in both examples
were not TOML 1.0 and failed `config_syntax`)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from bordergate.config import load_config
from bordergate.profile import Profile
from bordergate.residency.schema import FieldClass, parse_schema
from bordergate.tlog.cosignature import CosignatureSigner
from bordergate.tlog.note import Signer

DOC = Path(__file__).parents[1] / "docs" / "config.md"
README = Path(__file__).parents[1] / "README.md"


def _toml_blocks(path: Path = DOC) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", path.read_text(), re.S)


def _with_real_keys(text: str) -> str:
    """The example with each elided key (``NAME+1234abcd+AQ...``, ``NAME+...``) made
    a real verifier key of that name (TEST-ONLY keys, generated here)."""
    text = re.sub(r'"([A-Za-z0-9_.-]+)\+[0-9a-f]{8}\+A[A-Za-z]\.\.\."',
                  lambda m: f'"{Signer.generate(m[1]).verifier().key_string}"', text)
    return re.sub(r'vkey = "([A-Za-z0-9_.-]+)\+\.\.\."', lambda m: 'vkey = "' + (
        CosignatureSigner.generate(m[1], lambda: 0).verifier().key_string) + '"', text)


def test_the_example_deployment_file_loads_under_production(tmp_path: Path) -> None:
    """The documented deployment file is TOML 1.0 as written, and with real keys in
    place of the elided ones it is a valid production deployment: profile
    production, jurisdiction us with its key service, log operator, witnesses,
    roster and reviewers as the comments describe."""
    example = _toml_blocks()[0]
    tomllib.loads(example)  # as written: a reader copying it gets no syntax error
    (tmp_path / "bordergate.toml").write_text(_with_real_keys(example))
    deployment = load_config(tmp_path / "bordergate.toml")
    assert deployment.profile is Profile.PRODUCTION
    us = deployment.jurisdiction("us")
    assert us.key_service is not None and us.sequencer is not None
    assert us.log.sequencer is not None
    assert us.log.sequencer.custodian_credential_file is not None
    assert len(us.log.witnesses) == 1 and us.log.quorum == 1


def test_the_schema_example_is_a_valid_schema() -> None:
    """The documented classified field parses as a schema with the class, type,
    length and DSP category its comments give."""
    schema = parse_schema(_toml_blocks()[1], source="docs/config.md")
    email = schema.collection("users").field("email")
    assert email.field_class is FieldClass.PROTECTED
    assert email.required and email.max_length == 254
    assert email.dsp_category is not None


def test_the_readme_deployment_file_loads(tmp_path: Path) -> None:
    """The README's short deployment file is TOML 1.0 as written and, with real keys
    for its reviewers, a valid development deployment with the log operator's
    service and table it shows."""
    (example,) = _toml_blocks(README)
    tomllib.loads(example)
    (tmp_path / "bordergate.toml").write_text(_with_real_keys(example))
    deployment = load_config(tmp_path / "bordergate.toml")
    assert deployment.profile is Profile.DEVELOPMENT
    us = deployment.jurisdiction("us")
    assert us.sequencer is not None and us.log.sequencer is not None
    assert len(us.reviewers) == 2 and us.required_approvals == 2
