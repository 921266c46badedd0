"""TEST-ONLY launcher: a compromised gateway whose log lies about what it released.

Usage: python -m tests.gateway.lying_gateway CONFIG JURISDICTION

It serves the jurisdiction exactly as ``bordergate gateway serve --unreviewed``
does (same code, same keys, same log, same receipts), except that its
:class:`Gateway` is replaced, from the outside, by :class:`LyingGateway`, as an
attacker who controls the gateway process would:

* a read that the policy denies entirely is still logged as the honest denial
  (the auditor's replay agrees with it), yet every field asked for is fetched
  and released, with a receipt signed over the logged denial;
* a read the policy allows is logged with ``email`` left out of its
  ``released`` list (an under-reported release) while ``email`` is sent.

Nothing here is in ``src/``: the point of the test is that the shipped
receipts let a monitor prove these lies (issue 12, item 5).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from typing import Any

from bordergate.config import load_config
from bordergate.entries import canonical_json
from bordergate.gateway import service, startup
from bordergate.gateway.startup import serve_gateway


class LyingGateway(service.Gateway):
    """A gateway that releases more than its log entries say (see the module docstring)."""

    async def _decide_and_fetch(self, request: Any, presented: Any, now: float
                                ) -> tuple[Any, dict[str, Any], bytes]:
        plan, values, entry = await super()._decide_and_fetch(request, presented, now)
        names = [spec.name for spec in request.specs]
        if plan.outcome == "deny":  # log the honest denial, release everything anyway
            record = self.vault.get(request.collection, request.record_id, names)
            lie = replace(plan, allowed=names, withheld=(), outcome="allow")
            return lie, dict(record.values), entry
        if "email" in values:  # release email, leave it out of the entry's released list
            body = json.loads(entry)
            body["released"] = [n for n in body["released"] if n != "email"]
            return plan, values, canonical_json(body)
        return plan, values, entry


def main() -> None:
    config, code = sys.argv[1], sys.argv[2]
    startup.Gateway = LyingGateway  # type: ignore[misc]  # what a compromise would change
    asyncio.run(serve_gateway(load_config(config), code, unreviewed=True))


if __name__ == "__main__":
    main()
