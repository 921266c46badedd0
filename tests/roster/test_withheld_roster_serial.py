"""A roster version whose document is withheld still raises the serial bar (review
finding 6): after the identity authority signed serial 3 (say, removing an approver)
and the log holds it, a version at or below serial 3 never comes into force, at the
gateway (which fails closed on the withheld version) or at the auditor (promise 4:
decisions are judged under the roster the authority vouches for last)."""

from __future__ import annotations

from bordergate.entries import encode_entry
from bordergate.gateway.roster_in_force import RosterInForce
from bordergate.roster import RosterAuthority, roster_path, sign_roster
from bordergate.roster.publication import roster_entry
from tests.approvers import AUTHORITY, roster_of
from tests.audit.scenario import APPROVER1, APPROVER2, PARENT, T0, EntryFactory, apr
from tests.audit.test_hostile_entries import (
    INSPECTORS,
    PublishedRosters,
    _approval_story,
    inspect,
)

V1 = roster_of("us", [APPROVER1, APPROVER2, PARENT], serial=1)
V2 = roster_of("us", [APPROVER1, APPROVER2, PARENT], serial=2)  # still lists dave
V3 = roster_of("us", [APPROVER1, PARENT], serial=3)  # removes dave; document withheld


class Objects:
    def __init__(self) -> None:
        self.published = {roster_path(v.digest): v.document for v in (V1, V2)}

    def read_object(self, path: str) -> bytes | None:
        return self.published.get(path)


def test_gateway_never_takes_a_version_below_a_withheld_newer_one() -> None:
    """Promise 4 (the roster in force is the authority's latest word): serial 3 logged
    with its document withheld fails the gateway closed; serial 2 logged after it is
    refused too (`roster_serial_not_increasing`), so the removed approver's keys never
    come back."""
    rif = RosterInForce(RosterAuthority.from_key_strings(
        "us", [AUTHORITY.verifier().key_string]), Objects())
    rif.apply(0, [roster_entry(sign_roster(V1, AUTHORITY), T0),
                  roster_entry(sign_roster(V3, AUTHORITY), T0 + 1)])
    assert rif.approver_keys("dave") == ()
    rif.apply(2, [roster_entry(sign_roster(V2, AUTHORITY), T0 + 2)])
    assert rif.approver_keys("dave") == ()
    assert rif.roster is not None and rif.roster.serial == 1  # still failed closed
    assert rif.highest_signed == 3


@INSPECTORS
def test_auditor_never_takes_a_version_below_a_withheld_newer_one(reference: bool) -> None:
    """Promise 4: the auditor counts the serial of a version whose signature verifies
    but whose document is withheld: serial 2 logged after it is `roster_invalid` and
    never in force, so grants naming it do not count."""
    f = EntryFactory()
    a = apr(321)
    entries = [encode_entry("roster", T0, sign_roster(V1, AUTHORITY).entry_body()),
               encode_entry("roster", T0 + 0.1, sign_roster(V3, AUTHORITY).entry_body()),
               encode_entry("roster", T0 + 0.2, sign_roster(V2, AUTHORITY).entry_body()),
               *_approval_story(f, a, T0 + 1, (V2.digest, V2.digest), V2.digest)]
    found = inspect(entries, reference=reference, factory=f, rosters=PublishedRosters(V1, V2))
    assert {("roster_invalid", 1), ("roster_invalid", 2), ("approval_signature_invalid", 4),
            ("approval_signature_invalid", 5), ("approval_not_granted", 6)} <= set(found)
