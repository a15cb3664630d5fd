"""Write tests/data/doppler_reference.npz: thedoppler's own Cannon spectra for a few label sets.

Run ONCE, by hand, with thedoppler 1.1.32 and its dependencies importable (it is not a dependency
of specclip-sim; see tests/data/PROVENANCE.md for the exact commands)::

    python tools/make_reference.py WHEEL OUTPUT.npz
"""

from __future__ import annotations

import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from doppler import cannon  # the point of this script: thedoppler's own code makes the reference

MEMBER = "doppler/data/cannongrid_3000_18000_{}_norm_cubic_model.pkl"
CASES = [  # (model, teff, logg, feh)
    ("coolstars", 4500.0, 2.0, -0.5),
    ("coolstars", 5777.0, 4.44, 0.0),
    ("coolstars", 3800.0, 4.7, 0.2),
    ("coolstars", 6500.0, 4.0, -1.8),
    ("hotdwarfs", 9500.0, 4.0, -0.5),
    ("hotdwarfs", 15000.0, 3.5, 0.0),
    ("hotdwarfs", 30000.0, 4.5, 0.3),
]
# every 25th pixel of the 0.1 A grid, plus dense windows around H-beta, Mg b and the Ca triplet
PIXELS = np.unique(np.r_[0:150001:25, 18500:18900, 21600:22000, 55800:56300])


def main(wheel: str, output: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as archive:
        paths = {}
        for name in ("coolstars", "hotdwarfs"):
            paths[name] = str(Path(tmp) / Path(MEMBER.format(name)).name)
            Path(paths[name]).write_bytes(archive.read(MEMBER.format(name)))
        models = {name: cannon.load_cannon_model(path) for name, path in paths.items()}
    labels = np.array([case[1:] for case in CASES])
    flux, continuum = [], []
    for (name, *pars) in CASES:
        model = models[name]
        flux.append(model(np.array(pars), fluxonly=True)[PIXELS])  # thedoppler caps this at 1.0
        contmodel = model._data[0].continuum
        continuum.append(10 ** contmodel(np.array(pars)))
    first = models["coolstars"]._data[0]
    np.savez_compressed(
        output,
        model=np.array([case[0] for case in CASES]),
        labels=labels,
        pixels=PIXELS,
        wavelength=first.dispersion[PIXELS],
        flux=np.array(flux, dtype=np.float64),
        continuum_wavelength=first.continuum.dispersion,
        continuum=np.array(continuum, dtype=np.float64),
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
