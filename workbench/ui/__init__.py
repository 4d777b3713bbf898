"""Widgets and plots over the session: ``Workbench`` (the app) and ``plots`` (figure functions).

Importing ``workbench.ui`` needs the ``ui`` extra (ipywidgets, plotly); the core never imports it.

Layer 13, the app. May import every layer below (session included); never cli.
"""
from __future__ import annotations


def __getattr__(name):
    # lazy so that ``workbench.ui.plots`` can be used without ipywidgets being imported
    if name == "Workbench":
        from .app import Workbench
        return Workbench
    raise AttributeError(f"module 'workbench.ui' has no attribute '{name}'")
