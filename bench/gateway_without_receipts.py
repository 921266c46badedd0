"""BENCH-ONLY launcher: ``bordergate gateway serve`` with receipts switched off.

Usage: python bench/gateway_without_receipts.py gateway serve --config F ...

The gateway is the shipped one except that ``Gateway._attach_receipt`` and
``Gateway._attach_read_receipt`` are replaced, from the outside, by no-ops, so
that ``bench_gateway.py --compare-receipts`` can measure what signing receipts
costs in the same run.
No switch in ``src/`` turns receipts off.
"""

from __future__ import annotations

import sys
from typing import Any

from bordergate.cli import main
from bordergate.gateway import service


def _no_receipt(self: Any, body: dict[str, Any], *args: Any, **kwargs: Any) -> None:
    return None


async def _no_read_receipt(self: Any, body: dict[str, Any], *args: Any, **kwargs: Any) -> None:
    return None


if __name__ == "__main__":
    service.Gateway._attach_receipt = _no_receipt  # type: ignore[method-assign]
    service.Gateway._attach_read_receipt = _no_read_receipt  # type: ignore[method-assign]
    sys.argv = ["bordergate", *sys.argv[1:]]
    main()
