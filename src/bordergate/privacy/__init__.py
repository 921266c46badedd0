"""Differential privacy of exports: the noise (OpenDP) and the budgets it spends.

* :mod:`.mechanism`: every number an export releases, noised by OpenDP's
  discrete Laplace mechanism; groups kept by OpenDP's noisy threshold;
* :mod:`.budget`: epsilon in integer millionths, periods, and the budget
  store shared by every worker of a jurisdiction (spent atomically, before
  anything is released).

This package must never log, read a clock, or draw randomness other than
through OpenDP.
"""

__all__ = ["budget", "mechanism"]
