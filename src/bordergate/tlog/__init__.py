"""The verifiable log: RFC 9162 Merkle trees published as C2SP tlog-tiles.

Pure formats (``merkle``, ``note``, ``checkpoint``, ``tiles``), storage behind
one small interface (``storage``), the single-writer ``sequencer``, witnesses
and the read-side ``client``.  This package must never know about users,
policies, jurisdictions or HTTP frameworks beyond serving its own files.
"""
