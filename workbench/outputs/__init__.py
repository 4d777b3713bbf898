"""Layer 1, result files: how every output is written.

Owns: the names of a result's files (``names``: one stem, one suffix per kind), the output guard
(no output may be an input, ``guard``), writer locks (``locks``) and the transaction that stages
every file of a result and commits them together (``writer.ResultWriter``).
May import: ``workbench.errors``, ``workbench._io``.
"""
from .names import EXPORT_KINDS, ExportKind, export_path, stem_of
from .writer import ResultWriter, check_outputs, input_paths, write_text_result

__all__ = ["EXPORT_KINDS", "ExportKind", "ResultWriter", "check_outputs", "export_path", "input_paths",
           "stem_of", "write_text_result"]
