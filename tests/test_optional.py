"""The core must import and work without the optional extras (ui, trt) installed."""
import subprocess
import sys
import textwrap

import pytest

from workbench._optional import require
from workbench.errors import WorkbenchError

BLOCK = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('ipywidgets', 'plotly', 'tensorrt', 'jupyterlab', 'anywidget', 'IPython'):
                raise ImportError(f'blocked {name}')
    sys.meta_path.insert(0, Block())
""")


def test_core_imports_and_runs_without_ui_and_tensorrt(tmp_path):
    script = BLOCK + textwrap.dedent(f"""
        import numpy as np
        sys.path.insert(0, {str((__import__('pathlib').Path(__file__).parent))!r})
        import tiny_models
        import workbench
        from workbench import (ModelInfo, open_data, collect_statistics, compute_ranges, PrecisionPlan,
                               build_quantized, Evaluator, Session)
        import workbench.cli, workbench.backends, workbench.backends.trt, workbench.search.sensitivity
        folder = {str(tmp_path)!r}
        for i in range(4):
            np.save(folder + f'/{{i}}.npy', np.random.rand(3, 16, 16).astype(np.float32))
        info = ModelInfo(tiny_models.small_cnn(size=16))
        data = open_data(folder, info)
        ranges = compute_ranges(collect_statistics(info, data, progress=False))
        res = Evaluator(info, data).evaluate(PrecisionPlan.default(info), ranges)
        assert res.summary()['cosine'] > 0.9
        try:
            from workbench import Workbench
        except workbench.WorkbenchError as e:
            print('UI-ERROR', e)
        except ImportError as e:
            print('UI-IMPORTERROR', e)
        print('CORE-OK')
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "CORE-OK" in r.stdout, r.stderr
    # the app itself says which extra to install
    assert "UI-ERROR" in r.stdout and "pip install 'workbench[ui]'" in r.stdout, r.stdout


def test_require_names_feature_and_extra():
    with pytest.raises(WorkbenchError, match=r"The 'TensorRT engine build' feature requires the 'tensorrt' "
                                             r"package. Install it with pip install 'workbench\[trt\]'"):
        require("tensorrt_surely_missing_pkg", "TensorRT engine build", "trt", package="tensorrt")
    assert require("json", "JSON", "core").dumps([1]) == "[1]"
