"""``workbench lab``: open JupyterLab on the quickstart notebook (token authentication on)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
QUICKSTART = "01_quickstart.ipynb"


def register(subparsers) -> None:
    """Add the ``lab`` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser("lab", help="open JupyterLab on the quickstart notebook with the bundled sample")
    p.add_argument("--port", type=int, default=None, help="port (default: JupyterLab's, 8888 or the next free)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    p.add_argument("--notebook-dir", default=str(NOTEBOOKS), help="folder to serve (default: the repo's notebooks/)")
    p.set_defaults(func=run_lab)


def lab_command(notebook_dir, *, port: int | None = None, no_browser: bool = False) -> list:
    """The ``jupyter lab`` command line (token authentication stays on: no token override)."""
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={notebook_dir}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers often run as root; JupyterLab refuses it otherwise
    if port:
        cmd.append(f"--port={port}")
    if no_browser:
        cmd.append("--no-browser")
    quickstart = Path(notebook_dir) / QUICKSTART
    if quickstart.exists():  # the page JupyterLab opens on (a file given as an argument opens the Launcher)
        cmd.append(f"--LabApp.default_url=/lab/tree/{QUICKSTART}")
    return cmd


def run_lab(args) -> int:
    from ..errors import WorkbenchError
    from .._optional import require

    require("jupyterlab", "workbench lab", "ui")
    folder = Path(args.notebook_dir)
    if not folder.is_dir():
        raise WorkbenchError(f"Notebook folder '{folder}' does not exist.")
    return subprocess.call(lab_command(folder, port=args.port, no_browser=args.no_browser), cwd=folder)
