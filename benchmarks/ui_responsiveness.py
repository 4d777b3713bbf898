"""UI responsiveness on the bundled sample, through the app's own code paths (no browser).

Budgets (issue 12), each printed as measured / budget (below 1.00 = within budget):
  1. select another layer: table + histogram + graph ring + per-layer chart redraw  < 100 ms
  2. one live-threshold update while dragging: preview (one emulation run on a few
     samples) + the panel's redraw of the line and the text                          < 300 ms
     (also against the floor measured in the same run: a plain FP32 ONNX Runtime run of
     the same samples, the least any output-based preview can cost)
  3. graph view first draw: graph facts, layout, figure, JSON for the browser         < 1.5 s
  4. a plan change + rebuild + evaluation of the written TensorRT file on every evaluation
     sample (issue 20), through the Rebuild button                                    < 1.5 s
     one node to FP16 at 10 %, 30 %, 50 %, 70 % and 90 % of the INT8 nodes in graph order:
     the rebuild reuses what did not change (evaluate/reuse.py), so the cost follows the
     share of the graph after the change; each position is printed, and the full
     evaluation of the same file for comparison
Also: the settled preview (more samples, once the slider rests), the graph draw of a
synthetic 700-node transformer-like model (all nodes and quantizable only).

Run: python benchmarks/ui_responsiveness.py [--calib-samples N] [--eval-samples N] [--repeat K]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

BUDGET_SELECT_S = 0.100
BUDGET_PREVIEW_S = 0.300
BUDGET_GRAPH_S = 1.5
BUDGET_REBUILD_S = 1.5


def _ms(xs) -> str:
    return f"median {1000 * statistics.median(xs):.0f} ms, max {1000 * max(xs):.0f} ms"


def _ratio(xs, budget: float) -> str:
    return f"{statistics.median(xs) / budget:.2f} of the budget ({1000 * budget:.0f} ms)"


def synthetic_graph(blocks: int = 40):
    """Nodes, edges and op types of a transformer-like graph (~21 nodes per block)."""
    nodes, edges, ops = ["input"], [], {"input": "Identity"}
    prev = "input"

    def add(name, op, *ins):
        nodes.append(name)
        ops[name] = op
        edges.extend((i, name) for i in ins)
        return name
    for b in range(blocks):
        q, k, v = (add(f"b{b}_{n}", "MatMul", prev) for n in "qkv")
        qt, kt, vt = (add(f"b{b}_{n}t", "Transpose", add(f"b{b}_{n}r", "Reshape", x)) for n, x in zip("qkv", (q, k, v)))
        s = add(f"b{b}_s", "MatMul", qt, kt)
        o = add(f"b{b}_o", "MatMul", add(f"b{b}_sm", "Softmax", s), vt)
        p = add(f"b{b}_p", "MatMul", add(f"b{b}_or", "Reshape", add(f"b{b}_ot", "Transpose", o)))
        a = add(f"b{b}_a", "Add", p, prev)
        ln = add(f"b{b}_ln", "LayerNormalization", a)
        f2 = add(f"b{b}_f2", "MatMul", add(f"b{b}_g", "Gelu", add(f"b{b}_f1", "MatMul", ln)))
        prev = add(f"b{b}_a2", "Add", f2, ln)
    return nodes, edges, ops


def graph_draw_seconds(nodes, edges, ops, keep=None) -> float:
    """Layout + figure + browser JSON of a graph (what the graph panel does on first draw)."""
    from workbench.ui import graph_plot
    from workbench.ui.graph_layout import layered_layout
    from workbench.ui.plotview import _json

    t = time.perf_counter()
    layout = layered_layout(nodes, edges, keep=keep)
    fig = graph_plot.graph_figure(layout, op_types=ops, precisions={n: "INT8" for n in layout.nodes})
    _json(fig.to_plotly_json())
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib-samples", type=int, default=None, help="default: all 64")
    ap.add_argument("--eval-samples", type=int, default=None, help="default: all 41")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--method", default="mse")
    args = ap.parse_args()

    from workbench.evaluate.evaluator import first_samples
    from workbench.ui.app import Workbench
    from workbench.ui.panels.graph import GraphPanel

    with tempfile.TemporaryDirectory() as project:
        t = time.perf_counter()
        wb = Workbench.sample(calib_samples=args.calib_samples, eval_samples=args.eval_samples,
                              project=project, blocking=True, method=args.method)
        wb.widget
        wb.calibrate()
        print(f"calibration ({wb.session.stats.num_samples} samples): {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        wb.rebuild()  # the first build also runs the FP32 reference once
        print(f"first rebuild incl. FP32 reference: {time.perf_counter() - t:.2f} s")
        if wb.error:
            raise SystemExit(wb.error)
        s = wb.session

        # 1. layer switch
        nodes = [n for n in s.layer_table()["node"] if s.tensor_of(n) in s.stats.collectors]
        select = []
        for i in range(args.repeat * 4):
            node = nodes[(i * 7 + 3) % len(nodes)]
            t = time.perf_counter()
            wb.select(node)
            select.append(time.perf_counter() - t)
        print(f"1. select another layer: {_ms(select)} -> {_ratio(select, BUDGET_SELECT_S)}")

        # 2. live threshold: the throttled call the panel makes for each drag step
        h = wb.panels["histogram"]
        wb.select(nodes[len(nodes) // 3])
        d = h.data
        t = time.perf_counter()
        h._preview((d["tensor"], d["chosen"] * 0.9), False)  # first use builds the emulation model
        warm = time.perf_counter() - t
        drag, settled = [], []
        for i in range(args.repeat * 2):
            amax = d["chosen"] * (0.5 + 0.07 * i)
            t = time.perf_counter()
            h._preview((d["tensor"], amax), False)
            drag.append(time.perf_counter() - t)
        for i in range(max(2, args.repeat // 2)):
            t = time.perf_counter()
            h._preview((d["tensor"], d["chosen"] * (0.8 + 0.05 * i)), True)
            settled.append(time.perf_counter() - t)
        samples = h.last_preview["samples"] if h.last_preview else 0
        n_drag = s.preview_samples()
        feeds, _ = first_samples(s.evaluator.batches, n_drag)
        runner = s.evaluator.runner(s.model_info.model)
        floor = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            for feed in feeds:
                runner.infer(feed)
            floor.append(time.perf_counter() - t)
        runner.close()
        print(f"2. live threshold update while dragging ({n_drag} samples): {_ms(drag)} -> "
              f"{_ratio(drag, BUDGET_PREVIEW_S)}; {statistics.median(drag) / statistics.median(floor):.2f}x a plain "
              f"FP32 run of the same samples ({_ms(floor)}); first preview incl. building the emulation model "
              f"{warm:.2f} s")
        print(f"   settled preview ({samples} samples, once the slider rests): {_ms(settled)}")

        # 3. graph view first draw on the sample (a new panel: nothing cached)
        graph = []
        for _ in range(args.repeat):
            panel = GraphPanel(wb.panels["graph"].ctx)
            t = time.perf_counter()
            panel.redraw(relayout=True)
            graph.append(time.perf_counter() - t)
        n = len(panel.layout.nodes)
        print(f"3. graph view first draw ({n} nodes): {_ms(graph)} -> {_ratio(graph, BUDGET_GRAPH_S)}")
        syn_nodes, syn_edges, ops = synthetic_graph()
        quantizable = {x for x, op in ops.items() if op in ("MatMul", "Add")}
        full = [graph_draw_seconds(syn_nodes, syn_edges, ops) for _ in range(3)]
        part = [graph_draw_seconds(syn_nodes, syn_edges, ops, keep=quantizable) for _ in range(3)]
        print(f"   synthetic {len(syn_nodes)}-node graph: all nodes {_ms(full)} -> {_ratio(full, BUDGET_GRAPH_S)}; "
              f"{len(quantizable)} quantizable only {_ms(part)} -> {_ratio(part, BUDGET_GRAPH_S)}")

        # 4. plan change + rebuild + evaluation of the written file (issue 20)
        from workbench.export import build_quantized

        int8 = s.plan.int8_nodes()
        rebuild, full = [], []
        for share in (0.1, 0.3, 0.5, 0.7, 0.9):
            node = int8[int(share * len(int8))]
            t = time.perf_counter()
            s.set_precision(node, "fp16")
            wb.rebuild()
            rebuild.append(time.perf_counter() - t)
            if wb.error:
                raise SystemExit(wb.error)
            reuse = s.state.eval_reuse.last
            proto = build_quantized(s.model_info, s.ranges, s.plan, variant="trt")
            t = time.perf_counter()
            s.evaluator.evaluate_model(proto, layers=s.evaluator.layers_for(s.plan))
            full.append(time.perf_counter() - t)
            print(f"   change at {share:.0%} of the INT8 nodes ({node}): {rebuild[-1]:.2f} s "
                  f"({reuse['nodes_run']} of {reuse['nodes']} nodes run, {reuse['rows_reused']} per-layer rows "
                  f"reused); a full evaluation of the same file {full[-1]:.2f} s")
        print(f"4. plan change + rebuild + evaluation of the TensorRT file ({s.evaluator.num_samples} eval samples): "
              f"median {statistics.median(rebuild):.2f} s, max {max(rebuild):.2f} s -> "
              f"{statistics.median(rebuild) / BUDGET_REBUILD_S:.2f} of the budget ({BUDGET_REBUILD_S} s); "
              f"full evaluations median {statistics.median(full):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
