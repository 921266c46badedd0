"""The gateway's roster in force (gateway/roster_in_force.py), on in-memory objects.

Issue 12 item 3: attributes come from the verified version in force; a logged
version that does not verify, is not published, or goes back in serial makes the
gateway fail closed (``roster_unavailable``) instead of deciding under a list
that may have removed someone; a later good version restores service.
"""

from __future__ import annotations

import pytest

from bordergate.entries import encode_entry, format_time
from bordergate.errors import Unauthenticated, Unavailable
from bordergate.gateway.roster_in_force import RosterInForce
from bordergate.policy.entities import Principal
from bordergate.roster import Roster, RosterAuthority, RosterPrincipal, roster_path, sign_roster
from bordergate.roster.publication import roster_entry
from tests.roster.test_document import authority_signer

ALICE = Principal("alice", "ttus", "local", "us", frozenset({"engineer"}))
WEI = Principal("wei", "parentco", "parent", "cn", frozenset({"engineer"}))


class Objects:
    """The in-memory twin of the log storage's content-addressed objects."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def read_object(self, path: str) -> bytes | None:
        return self.objects.get(path)


def version(serial: int, people: list[Principal]) -> Roster:
    return Roster.build(jurisdiction="us", serial=serial, issued=format_time(0.0),
                        principals=[RosterPrincipal(p.id, p.org, p.org_kind, p.location,
                                                    p.roles) for p in people])


def published(objects: Objects, roster: Roster, *, signer_name: str = "us-identity") -> bytes:
    objects.objects[roster_path(roster.digest)] = roster.document
    return roster_entry(sign_roster(roster, authority_signer(signer_name)), 1.0)


def rosters() -> tuple[RosterInForce, Objects]:
    objects = Objects()
    authority = RosterAuthority.from_key_strings(
        "us", [authority_signer().verifier().key_string])
    return RosterInForce(authority, objects), objects


def test_vouch_takes_the_rosters_attributes() -> None:
    """The roster's principal and the entry member naming the version; a relabelled or
    unlisted token is refused with its code; nothing is served before a version."""
    state, objects = rosters()
    with pytest.raises(Unavailable) as err:
        state.vouch(ALICE)
    assert err.value.code == "roster_unavailable"
    first = version(1, [ALICE, WEI])
    state.apply(0, [encode_entry("key-event", 0.0, {"kind": "x", "kek_version": 1}),
                    published(objects, first)])
    assert state.version == 1 and state.next_index == 2
    assert state.approver_keys("alice") == ()
    principal, member = state.vouch(ALICE)
    assert principal == ALICE and member == {"roster": first.digest}
    with pytest.raises(Unauthenticated) as caught:
        state.vouch(Principal("wei", "ttus", "local", "us", frozenset({"engineer"})))
    assert caught.value.code == "roster_claims_mismatch"
    with pytest.raises(Unauthenticated) as caught:
        state.vouch(Principal("mallory", "ttus", "local", "us"))
    assert caught.value.code == "principal_not_in_roster"


@pytest.mark.parametrize("bad", ["foreign-key", "unpublished", "serial-back", "malformed"])
def test_a_version_that_does_not_verify_fails_closed(bad: str) -> None:
    """A logged version signed by another key, not published, with a serial not above
    the one in force, or a malformed roster entry stops service (roster_unavailable)
    until a good version."""
    state, objects = rosters()
    state.apply(0, [published(objects, version(2, [ALICE]))])
    if bad == "foreign-key":
        entry = published(objects, version(3, [ALICE, WEI]), signer_name="cn-identity")
    elif bad == "unpublished":
        entry = roster_entry(sign_roster(version(3, [WEI]), authority_signer()), 1.0)
    elif bad == "serial-back":
        entry = published(objects, version(1, [ALICE, WEI]))
    else:
        entry = b'{"type":"roster","v":1}'
    state.apply(1, [entry])
    with pytest.raises(Unavailable) as err:
        state.vouch(ALICE)
    assert err.value.code == "roster_unavailable"
    good = version(4, [WEI])
    state.apply(2, [published(objects, good)])
    assert state.vouch(WEI)[1] == {"roster": good.digest}
    with pytest.raises(Unauthenticated):
        state.vouch(ALICE)
