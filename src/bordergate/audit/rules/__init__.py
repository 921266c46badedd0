"""The auditor's rules, one function per finding kind, one module per family.

* :mod:`.wellformed`: the entries themselves (malformed, time order, personal data);
* :mod:`.decisions`: replay and the recorded input (promise 4);
* :mod:`.dataflows`: what crossed a border, reached the parent, left in an export
  (promises 1, 2);
* :mod:`.privacy`: differentially private exports, budgets recomputed from the log;
* :mod:`.approvals`: the approval life cycle and every use of an approval;
* :mod:`.statements`: the approver's own signature on every approval change;
* :mod:`.releases`: reviewed releases and the release each decision names (promise 6);
* :mod:`.tokens`: no read decided for a bearer token after its ``token-revoke`` entry;
* :mod:`.rosters`: every recorded principal as the roster version it names vouches;
* :mod:`.appenders`: the append credential each entry names, allowed its type;
* :mod:`.migration`: a legacy migration's entries agree with each other;
* :mod:`.versions`: which checks apply to which entry format version (the one table,
  with the hooks later rules plug into), and a version that goes back;
* :mod:`.keyaccess`: every data key the key service released, matched to its decision.

Every rule is written once, here: the reference inspector
(:mod:`bordergate.audit.inspection`) calls them entry by entry, the accelerated
one (:mod:`bordergate.audit._accelerated`) calls the same functions, caching what
follows from an entry's shape.  A rule reports through the
:class:`~.context.RuleContext` it is given and never reads a log or a clock.
"""

__all__ = ["appenders", "approvals", "context", "dataflows", "decisions", "keyaccess",
           "migration", "privacy", "releases", "rosters", "statements", "tokens", "versions",
           "wellformed"]
