"""Separating the legacy business: moving a global database into home jurisdictions.

One module per concern (docs/migration.md):

* ``legacy``: a "global platform" database generated with Faker and a seed
  (SQLite or PostgreSQL), for tests, the bench and the demo.
* ``source``: reading, deleting and compacting a legacy database, and the
  batch journal kept inside it.
* ``mapping``: the mapping file (which table and column hold each field, the
  owning-subject column of each table, the home rule).
* ``plan``: classifying every source column and row; the plan split per home.
* ``evidence``: the ``migration`` and ``legacy-deletion`` entries, their
  digests and Merkle roots (pure).
* ``homes``: one home's store, keys and log, opened in this process.
* ``run``: the resumable batch loop (``bordergate migrate run``).
* ``verify``: recounting the source and recomputing the homes' evidence.

Nothing here may write a raw legacy id or a value into a log (promise 7), nor
delete a source row before its home copy is durable and logged.
"""
