"""Plain-language sentences the app and the report show (no widgets, no plots)."""
from __future__ import annotations

from .style import fmt_num


def ranking_note(table) -> str:
    """Plain sentences under the ranking: what it is, and why a gain can be negative."""
    if table is None:
        return ""
    n, samples = len(table), table.attrs.get("samples")
    done = table.attrs.get("complete", True)
    head = (f"{n} INT8 node(s) ranked on {samples or 'all'} evaluation samples" if done
            else f"{n} node(s) ranked so far (partial ranking: the run is going on or was cancelled)")
    neg = int((table["sqnr_gain_fp16"] < 0).sum()) if "sqnr_gain_fp16" in table else 0
    if neg:
        head += (f". {neg} node(s) have a negative FP16 gain: putting that node alone in FP16 made the output "
                 "slightly worse. Quantization errors of different layers can partly cancel, and on a few "
                 "samples a change this small is within the noise; such nodes gain nothing from FP16")
    return head + "."


def auto_message(result, n_int8_before: int) -> str:
    """What the automatic search did, in plain words."""
    t = result.target
    chosen = result.curve[result.curve["chosen"]].iloc[-1] if "chosen" in result.curve else None
    got = chosen.get(t.key) if chosen is not None else None
    value = f"{t.key.replace('_', ' ')} {fmt_num(got)}" if got is not None else ""
    k = len(result.fallback)
    names = ", ".join(result.fallback[:4]) + (", …" if k > 4 else "")
    if result.met and k == 0:
        return f"Target {t.text} is already met with every node in INT8 ({value}): nothing to move."
    if result.met:
        return (f"Target {t.text} met ({value}) with {k} node(s) out of INT8 ({names}); "
                f"{n_int8_before - k} of {n_int8_before} stay INT8. The plan is updated."
                + _file_sentence(result))
    return (f"Target {t.text} not reachable: even with every ranked node out of INT8 the search reaches "
            f"only {value or 'less'}. The plan now keeps the {k} node(s) that help most out of INT8; "
            "another range method or more calibration samples may do better." + _file_sentence(result))


def _file_sentence(result) -> str:
    """Where the figure was measured: the written TensorRT file (the claim), or only the emulation."""
    file = getattr(result, "file", None)
    if file is None:
        return " (Measured on the search's emulation only: press Rebuild to check the file.)"
    return " " + file.describe()


def flag_sentences(d: dict) -> list:
    """What the collapse guards say about the histogram's tensor (``Session.histogram()``'s
    ``flags``), in words with its numbers; [] when nothing is flagged."""
    from .style import fmt_pct

    out = []
    flags, by = d.get("flags") or (), d.get("amax_by_method") or {}
    if "clips_mass" in flags:
        out.append(f"This threshold clips {fmt_pct(d.get('calibrated_clipped', d.get('clipped')))} of the "
                   f"tensor's values (the guard flags more than 1 %): check it against the largest value "
                   f"{fmt_num(d.get('max'))}.")
    if "methods_disagree" in flags and by:
        lo, hi = min(by, key=by.get), max(by, key=by.get)
        out.append(f"The range methods disagree on this tensor: {lo} {fmt_num(by[lo])} vs {hi} {fmt_num(by[hi])} "
                   "(more than 4x apart): its histogram has a long tail or a spike.")
    if "method_loses" in flags:
        out.append(f"The '{d.get('method')}' method clips this tensor much harder than min-max "
                   f"({fmt_num(by.get(d.get('method')))} vs {fmt_num(by.get('minmax'))}) and the network's output "
                   "loses more than 3 dB with it.")
    return out
