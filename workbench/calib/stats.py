"""Calibration statistics on disk, keyed by fingerprints of the model and the data.

A statistics file (``.npz``) holds each tensor's collector arrays plus a JSON header with the
model fingerprint, the data fingerprint and the sample count. Loading it for another model or
another data set raises :class:`~workbench.errors.StaleError` instead of silently reusing it.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

import numpy as np

from .._io import atomic_write_bytes
from .collector import HistogramCollector
from ..errors import StaleError, WorkbenchError

FORMAT_VERSION = 1


@dataclass
class Statistics:
    """Per-tensor histogram collectors plus what they were computed from.

    Attributes:
        collectors: tensor name -> HistogramCollector (in graph order).
        model_fingerprint / data_fingerprint: see ModelInfo.fingerprint / CalibrationData.fingerprint.
        num_samples: calibration samples seen.
        seconds: wall time of the collection.
        data_description: a human-readable description of the data.
        extended: the same statistics continued over the samples held out from them (so over
            every calibration sample), or None. A search chooses each tensor's method on the
            held-out samples with these statistics; the chosen method is then read from the
            extended ones (:func:`workbench.search.candidates.refit`).
        peaks: tensor name -> (max |x|, index of the sample holding it, from 0 in the data's
            order), recorded by the calibration pass for tensors with a batch axis; None when
            unknown (statistics saved before peaks were recorded). A range search adds those
            samples to its held-out ones (:func:`workbench.search.holdout.extreme_samples`).
    """

    collectors: dict
    model_fingerprint: str
    data_fingerprint: str
    num_samples: int
    seconds: float = 0.0
    data_description: str = ""
    extended: "Statistics | None" = None
    peaks: dict | None = None

    def nonfinite_tensors(self) -> dict:
        """Tensor name -> collector for tensors that saw NaN or Inf."""
        return {n: c for n, c in self.collectors.items() if c.nan_count or c.inf_count}

    def check(self, model_fingerprint: str | None = None, data_fingerprint: str | None = None,
              source: str = "statistics") -> None:
        """Raise StaleError when the statistics belong to another model or data set."""
        if model_fingerprint is not None and model_fingerprint != self.model_fingerprint:
            raise StaleError(
                f"The {source} were computed for another model (fingerprint "
                f"{self.model_fingerprint[:12]}, this model is {model_fingerprint[:12]}); recalibrate."
            )
        if data_fingerprint is not None and data_fingerprint != self.data_fingerprint:
            raise StaleError(
                f"The {source} were computed on other calibration data or preprocessing (fingerprint "
                f"{self.data_fingerprint[:12]}, this data is {data_fingerprint[:12]}); recalibrate."
            )

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write an ``.npz`` atomically (collector arrays + a JSON header); an existing file is
        refused unless ``overwrite``."""
        from ..validate import check_new_file

        path = check_new_file(path, "The statistics file", overwrite=overwrite)
        header = {
            "format": FORMAT_VERSION,
            "model_fingerprint": self.model_fingerprint,
            "data_fingerprint": self.data_fingerprint,
            "num_samples": self.num_samples,
            "seconds": self.seconds,
            "data_description": self.data_description,
            "tensors": list(self.collectors),
        }
        if self.peaks is not None:
            header["peaks"] = _peaks_to_json(self.peaks)
        ext = self.extended
        if ext is not None:
            header["extended"] = {"data_fingerprint": ext.data_fingerprint, "num_samples": ext.num_samples,
                                  "seconds": ext.seconds, "data_description": ext.data_description,
                                  "tensors": list(ext.collectors)}
            if ext.peaks is not None:
                header["extended"]["peaks"] = _peaks_to_json(ext.peaks)
        arrays = {"__header__": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        for prefix, stats in (("t", self), ("e", ext)):
            for i, collector in enumerate(stats.collectors.values() if stats is not None else ()):
                for key, value in collector.to_arrays().items():
                    arrays[f"{prefix}{i}/{key}"] = np.asarray(value)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike, model_fingerprint: str | None = None,
             data_fingerprint: str | None = None) -> "Statistics":
        """Read a statistics file; with fingerprints given, refuse a stale one (StaleError)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["__header__"]).decode())
                per_tensor: dict[tuple, dict] = {}
                for key in z.files:
                    if key == "__header__":
                        continue
                    idx, field_name = key.split("/", 1)
                    per_tensor.setdefault((idx[0], int(idx[1:])), {})[field_name] = z[key]
        except FileNotFoundError:
            raise WorkbenchError(f"Statistics file '{path}' does not exist.") from None
        except Exception as exc:
            raise WorkbenchError(f"'{path}' is not a workbench statistics file ({exc}).") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
            found = header.get("format") if isinstance(header, dict) else None
            raise WorkbenchError(f"'{path}' has statistics format {found}, "
                                 f"this workbench reads format {FORMAT_VERSION}.")
        try:
            def read(prefix: str, head: dict) -> "Statistics":
                collectors = {name: HistogramCollector.from_arrays(per_tensor.get((prefix, i), {}), name=name)
                              for i, name in enumerate(head["tensors"])}
                return cls(collectors, header["model_fingerprint"], head["data_fingerprint"],
                           int(head["num_samples"]), float(head.get("seconds", 0.0)), head.get("data_description", ""),
                           peaks=_peaks_from_json(head.get("peaks")))

            stats = read("t", header)
            if isinstance(header.get("extended"), dict):
                stats.extended = read("e", header["extended"])
        except WorkbenchError as exc:
            raise WorkbenchError(f"Statistics file '{path}' is corrupt: {exc}; recalibrate to rewrite it.") from None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise WorkbenchError(f"Statistics file '{path}' is corrupt or incomplete "
                                 f"({type(exc).__name__}: {exc}); recalibrate to rewrite it.") from None
        stats.check(model_fingerprint, data_fingerprint, source=f"statistics in '{path}'")
        return stats


def _peaks_to_json(peaks: dict) -> dict:
    """``Statistics.peaks`` as JSON: ``{tensor: [max |x|, sample index]}``."""
    return {str(name): [float(absmax), int(index)] for name, (absmax, index) in peaks.items()}


def _peaks_from_json(raw) -> dict | None:
    """Inverse of :func:`_peaks_to_json`; None when the file has no peaks (written before they
    were recorded). A malformed entry raises ValueError (reported as a corrupt file)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"'peaks' must map tensor names to [max |x|, sample index], got {type(raw).__name__}")
    peaks = {}
    for name, entry in raw.items():
        if not isinstance(entry, list) or len(entry) != 2:
            raise ValueError(f"peak of tensor '{name}' must be [max |x|, sample index], got {entry!r:.60}")
        peaks[name] = (float(entry[0]), int(entry[1]))
    return peaks
