"""A toy modality for specclip's tests (not a survey): 64 pixels, two lines whose depth follows ``temp``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specclip_core.api import Modality, Reader, ReaderError, Spectra, SpectralStore, hookimpl

WAVELENGTH = np.linspace(1000.0, 1630.0, 64)
HEADER = "# specclip-toy v1"


class ToyModality(Modality):
    """Toy spectra: flux divided by its median; stats = mean and std of the result."""

    name = "toy"
    aliases = ("toy_alias",)
    wavelength = WAVELENGTH
    stats_names = ("mean", "std")
    default_tokenizer = {"name": "windows", "size": 8, "stride": 4}
    default_encoder = {"name": "masked_transformer", "size": "small", "depth": 1, "width": 16, "heads": 2}

    def preprocess(self, spectra: Spectra) -> Spectra:
        return _normalise(self.wavelength, spectra)


def _normalise(grid: np.ndarray, spectra: Spectra) -> Spectra:
    """Interpolate onto ``grid``, mask non-finite pixels, divide by the median; stats = mean, std."""
    flux = np.stack([np.interp(grid, spectra.wavelength, row) for row in spectra.flux]).astype(np.float32)
    ivar = np.stack([np.interp(grid, spectra.wavelength, row) for row in spectra.ivar]).astype(np.float32)
    mask = ~np.isfinite(flux) | (ivar <= 0)
    for row, sid in enumerate(spectra.ids):
        if mask[row].all():
            raise ValueError(f"toy spectrum {sid}: no usable pixel")
    median = np.array([np.median(f[~m]) for f, m in zip(flux, mask)], dtype=np.float32)[:, None]
    flux = np.where(mask, 1.0, flux / median).astype(np.float32)
    ivar = np.where(mask, 0.0, ivar * median**2).astype(np.float32)
    stats = np.stack([flux.mean(1), flux.std(1)], axis=1)
    return Spectra(grid, flux, ivar, mask, spectra.ids, spectra.meta, stats)


class ToyBroadModality(ToyModality):
    """The same toy stars seen by a broad-band instrument: 24 pixels over a wider range."""

    name = "toy_broad"
    aliases = ()
    wavelength = np.linspace(900.0, 1800.0, 24)
    default_tokenizer = {"name": "vector"}
    default_encoder = {"name": "mlp_autoencoder", "size": "small", "hidden": 32, "bottleneck": 16, "blocks": 1}

    def preprocess(self, spectra: Spectra) -> Spectra:
        return _normalise(self.wavelength, spectra)


class ToyNarrowModality(ToyModality):
    """A third view: 40 pixels around the first line."""

    name = "toy_narrow"
    aliases = ()
    wavelength = np.linspace(1100.0, 1300.0, 40)

    def preprocess(self, spectra: Spectra) -> Spectra:
        return _normalise(self.wavelength, spectra)


class ToyReader(Reader):
    """``*.toy.csv``: a header line, then wavelength,flux,ivar per line; the id is in the file name."""

    name = "toy_csv"
    modality = "toy"
    patterns = ("*.toy.csv",)
    meta_columns = ()

    def sniff(self, path: Path) -> bool:
        return path.name.endswith(".toy.csv")

    def read(self, path: Path) -> Spectra:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise ReaderError(path, f"cannot read as text: {error}") from None
        lines = text.splitlines()
        if not lines or lines[0].strip() != HEADER:
            raise ReaderError(path, f"not a toy spectrum (first line should be {HEADER!r})")
        try:
            table = np.array([[float(v) for v in line.split(",")] for line in lines[1:] if line.strip()])
        except ValueError as error:
            raise ReaderError(path, f"bad number: {error}") from None
        if table.ndim != 2 or table.shape[1] != 3 or len(table) < WAVELENGTH.size:
            raise ReaderError(path, f"expected {WAVELENGTH.size} rows of 3 columns, got shape {table.shape} (truncated?)")
        wavelength, flux, ivar = table.T
        mask = ~np.isfinite(flux) | (ivar <= 0)
        sid = Path(path).name.removesuffix(".toy.csv")
        return Spectra(wavelength, flux[None], np.where(mask, 0, ivar)[None], mask[None], [sid])


def make_raw(n: int, seed: int = 0, grid: np.ndarray = WAVELENGTH) -> Spectra:
    """Raw toy spectra on ``grid`` with labels ``temp`` (0..1) and ``kind`` (text); the same seed
    gives the same stars on any grid."""
    rng = np.random.default_rng(seed)
    temp = rng.uniform(0, 1, n)
    lines = np.exp(-0.5 * ((grid - 1200) / 15) ** 2) * (0.2 + 0.6 * temp[:, None])
    lines += np.exp(-0.5 * ((grid - 1450) / 25) ** 2) * (0.7 - 0.5 * temp[:, None])
    continuum = 100 * (1 + 0.3 * temp[:, None] * (grid - 1300) / 300)
    flux = continuum * (1 - lines) + np.random.default_rng([seed, grid.size]).normal(0, 1.0, (n, grid.size))
    ivar = np.ones_like(flux)
    ids = [f"toy-{seed}-{i}" for i in range(n)]
    meta = {"temp": temp, "kind": np.where(temp > 0.5, "hot", "cool")}
    return Spectra(grid, flux, ivar, np.zeros_like(flux, dtype=bool), ids, meta)


def write_file(path: Path, spectra: Spectra, row: int = 0) -> Path:
    rows = [HEADER] + [f"{w},{f},{i}" for w, f, i in zip(spectra.wavelength, spectra.flux[row], spectra.ivar[row])]
    Path(path).write_text("\n".join(rows) + "\n")
    return Path(path)


def make_store(path: Path, n: int = 256, seed: int = 0) -> SpectralStore:
    """A finished store of ``n`` preprocessed toy spectra with labels temp and kind."""
    spectra = ToyModality().preprocess(make_raw(n, seed))
    with SpectralStore.build(path, {"toy": ToyModality()}, {"temp": "float", "kind": "str"}) as store:
        store.append(spectra.ids, {"toy": spectra}, {"temp": spectra.meta["temp"], "kind": spectra.meta["kind"]})
    return SpectralStore.open(path)


def make_paired_store(path: Path, modalities=("toy", "toy_broad"), n: int = 256, seed: int = 0, simulated=(), unobserved=None) -> SpectralStore:
    """The same ``n`` stars seen in several toy modalities, one row per star (``simulated``: modalities
    the store's meta marks as simulated; ``unobserved``: modality -> rows that did not observe it,
    stored with every pixel masked and NaN flux)."""
    views = {m: MODALITIES[m]() for m in modalities}
    spectra = {m: view.preprocess(make_raw(n, seed, np.linspace(view.wavelength[0] - 50, view.wavelength[-1] + 50, 3 * view.n_pixels))) for m, view in views.items()}
    for m, rows in (unobserved or {}).items():
        spectra[m].flux[rows], spectra[m].ivar[rows], spectra[m].mask[rows] = np.nan, 0.0, True
    first = spectra[modalities[0]]
    with SpectralStore.build(path, views, {"temp": "float"}, {"simulated_modalities": list(simulated)}) as store:
        store.append(first.ids, spectra, {"temp": first.meta["temp"]})
    return SpectralStore.open(path)


MODALITIES = {cls.name: cls for cls in (ToyModality, ToyBroadModality, ToyNarrowModality)}


@hookimpl
def specclip_register_modalities():
    return [cls() for cls in MODALITIES.values()]


@hookimpl
def specclip_register_readers():
    return [ToyReader()]
