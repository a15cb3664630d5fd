"""One-off conversion of thedoppler's Cannon pickles into a safetensors array file.

Run as ``python -m specclip_sim.convert WHEEL OUTPUT SHA256`` (``specclip_sim.source`` does this
once, in a subprocess, after checking that the wheel's sha256 is SHA256, which the file records). The pickles are plain protocol-3 pickles of dicts of
numpy arrays; they are read with an unpickler that accepts only the four numpy globals needed to
rebuild arrays and scalars, so neither ``dill`` nor thedoppler is imported and no foreign code can
run. The label scaling is recomputed as thedoppler's Cannon (``thecannon.CannonModel.__init__``)
does on load: fiducials = median of the training labels, scales = their 2.5-97.5 percentile range.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "thedoppler"
VERSION = "1.1.32"
WHEEL = "thedoppler-1.1.32-py2.py3-none-any.whl"
WHEEL_SHA256 = "aa876b477f5e10db68101fabd5a8e597a067f46045483a0993e11148e5dadef7"
FORMAT = "specclip-sim-cannon"
FORMAT_VERSION = 1
MODELS = ("coolstars", "hotdwarfs")
MEMBER = "doppler/data/cannongrid_3000_18000_{}_norm_cubic_model.pkl"

_ALLOWED = {
    (module, name): value
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")  # numpy 1 and numpy 2 spellings
    for name, value in (("_reconstruct", np.ndarray.__reduce__(np.zeros(0))[0]), ("scalar", np.int64(0).__reduce__()[0]))
}
_ALLOWED.update({("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype})


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a foreign pickle") from None


def _exponents(vectorizer: tuple, n_labels: int) -> np.ndarray:
    """The (terms, labels) integer exponent matrix of a thecannon PolynomialVectorizer, constant first."""
    name, kwargs = vectorizer
    if name != "PolynomialVectorizer":
        raise ValueError(f"unsupported vectorizer {name!r}")
    rows = [np.zeros(n_labels, dtype=np.int64)]
    for term in kwargs["terms"]:
        row = np.zeros(n_labels, dtype=np.int64)
        for index, order in term:
            if float(order) != int(order):
                raise ValueError(f"non-integer exponent {order} in a Cannon term")
            row[index] += int(order)
        rows.append(row)
    return np.stack(rows)


def _polynomial(state: dict, prefix: str) -> dict[str, np.ndarray]:
    labels = np.asarray(state["training_set_labels"])
    return {
        f"{prefix}theta": np.asarray(state["theta"]).T.astype(np.float32),
        f"{prefix}wavelength": np.asarray(state["dispersion"], dtype=np.float64),
        f"{prefix}exponents": _exponents(state["vectorizer"], labels.shape[1]),
        f"{prefix}fiducials": np.asarray(np.percentile(labels, 50, axis=0), dtype=np.float64),
        f"{prefix}scales": np.asarray(np.ptp(np.percentile(labels, [2.5, 97.5], axis=0), axis=0), dtype=np.float64),
        f"{prefix}training_labels": labels.astype(np.float32),
    }


def convert(wheel: Path, output: Path, wheel_sha256: str) -> None:
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    label_names = None
    with zipfile.ZipFile(wheel) as archive:
        for model in MODELS:
            state = _NumpyOnlyUnpickler(io.BytesIO(archive.read(MEMBER.format(model)))).load()
            if state["continuum"].get("logflux") is not True:
                raise ValueError(f"{model}: expected a log10 continuum model")
            if state.get("wavevac") or state["continuum"].get("wavevac"):
                raise ValueError(f"{model}: expected air wavelengths")
            label_names = label_names or list(state["vectorizer"][1]["label_names"])
            tensors.update(_polynomial(state, f"{model}/"))
            tensors.update(_polynomial(state["continuum"], f"{model}/continuum/"))
            tensors[f"{model}/scatter"] = np.sqrt(np.asarray(state["s2"])).astype(np.float32)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "source": f"{PACKAGE}=={VERSION}",
        "wheel": WHEEL,
        "wheel_sha256": wheel_sha256,
        "members": json.dumps([MEMBER.format(m) for m in MODELS]),
        "models": json.dumps(list(MODELS)),
        "label_names": json.dumps(label_names),
        "wavelength_medium": "air",
        "continuum": "log10 flux; flux = 10**(design @ theta)",
    }
    partial = output.with_name(output.name + ".partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(partial), metadata=metadata)
    os.replace(partial, output)


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
