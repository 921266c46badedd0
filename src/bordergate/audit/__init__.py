"""The auditor's room: sync and verify logs, check split-view evidence, replay decisions.

Everything here re-checks what others produced, from the log alone; it must
never write to a log or trust a value it has not verified.
"""
