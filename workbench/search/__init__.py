"""Layer 11, searches: choices made by scoring candidate plans.

Owns: the hold-out rule (``holdout``), plan scoring on the emulation (``scoring``), auto ranges
(``autorange``) and their guards (``range_checks``), sensitivity ranking and automatic mixed
precision (``sensitivity``).
May import: every lower layer (graph, data, backends, calib, precision, export, imported, evaluate,
improve); never session, cli or ui.
"""
