"""The workbench session: all the state of one quantization job, as a plain Python object.

``Session`` (in :mod:`.core`) is assembled from small parts: state and events (:mod:`.state`),
views for tables and plots (:mod:`.views`), builds and searches (:mod:`.builds`), exports
(:mod:`.exports`) and project save/load (:mod:`.project`). Nothing here imports widgets.

Layer 12, the session. May import every layer below (graph ... search); never ui or cli.
"""
from __future__ import annotations

from ..outputs.names import EXPORT_KINDS
from ..sample import sample_paths
from .core import Session
from .state import Build, CalibrationSettings, DataSettings, Event

__all__ = ["Session", "Build", "CalibrationSettings", "DataSettings", "Event", "EXPORT_KINDS", "sample_paths"]
