"""Layer 11, searches: choices made by scoring candidate plans.

Owns: the hold-out rule (``holdout``), plan scoring on the emulation (``scoring``), auto ranges
(``autorange``) and their guards (``range_checks``), sensitivity ranking and automatic mixed
precision (``sensitivity``), the judgement of a search's result on the file it writes
(``file_check``), and where a sweep's independent evaluations run (``executor``: in-process,
local worker processes, dask).
May import: every lower layer (graph, data, backends, calib, precision, export, imported, evaluate,
improve); never session, cli or ui.
"""
