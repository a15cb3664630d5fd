"""Parts of a simulation drawn from an instrument's real spectra (the calibration's parts file).

Each part is learned from real spectra and their noiseless simulated twins (bench/sim_fit_lamost_parts.py
for LAMOST) and is switchable on its own (:class:`specclip_sim.observe.NativeObserver`):

- :class:`CorrelatedNoise`: the real noise's amplitude relative to what the pipeline's ivar says,
  per pixel (e.g. excess noise at a blue edge), and its correlation between neighbouring pixels (from
  the pipeline's resampling), as a zero-phase kernel applied to white noise;
- :class:`SkyResiduals`: windows around sky lines (found where real residuals exceed their
  neighbourhood's scatter) in which the noise of a simulated spectrum is replaced by the
  residual, in units of its sigma, of a real spectrum of similar S/N (sky-subtraction residuals,
  with their real noise);
- :class:`FluxShapes`: smooth multiplicative distortions (a Legendre series in log wavelength)
  that took real spectra from their twins, drawn from stars of similar Teff, in place of the random
  flux-calibration error;
- :class:`ResidualVariety`: the star-to-star part of the emulator's error that the label-smooth
  correction (:mod:`specclip_sim.correction`) leaves: principal components of real - simulated
  normalised flux, with the scores of real stars; a simulated star takes the scores of one of the
  real stars nearest to it in (log Teff, logg, [Fe/H]);
- :class:`BackgroundNoise`: the noise variance of real spectra as a source term through the
  throughput plus background profiles (sky continuum and read noise, each sky line), with the
  background amplitudes of real spectra: a faint star's variance follows the sky, a bright star's
  its own flux, so the sky lines and the blue edge weigh more at low S/N, as in the pipeline's ivar.

Pixel indices refer to the calibration's native grid (``Calibration.pixel_offset`` moves them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.polynomial import legendre
from scipy.ndimage import convolve1d, median_filter


def draw_by_bin(rng: np.random.Generator, library_keys: np.ndarray, keys: np.ndarray, n_bins: int) -> np.ndarray:
    """Indices into a library: for each of ``keys``, a random entry whose key lies in the same
    quantile bin (of ``n_bins``) of ``library_keys``."""
    library_keys = np.asarray(library_keys, dtype=np.float64)
    edges = np.quantile(library_keys, np.linspace(0, 1, n_bins + 1)[1:-1])
    library_bin = np.searchsorted(edges, library_keys)
    wanted = np.searchsorted(edges, np.asarray(keys, dtype=np.float64))
    out = np.empty(len(wanted), dtype=np.int64)
    for b in np.unique(wanted):
        members = np.flatnonzero(library_bin == b)
        rows = np.flatnonzero(wanted == b)
        out[rows] = members[rng.integers(len(members), size=len(rows))]
    return out


def kernel_from_autocorrelation(rho: np.ndarray, n_fft: int = 256) -> np.ndarray:
    """A symmetric kernel h (length 2K+1, sum h^2 = 1) whose autocorrelation is ``rho`` = (1, r_1..r_K):
    the inverse transform of the square root of the (non-negative part of the) power spectrum."""
    rho = np.asarray(rho, dtype=np.float64)
    k = len(rho) - 1
    sequence = np.zeros(n_fft)
    sequence[: k + 1] = rho
    sequence[n_fft - k :] = rho[1:][::-1]
    power = np.clip(np.fft.rfft(sequence).real, 0.0, None)
    full = np.fft.irfft(np.sqrt(power), n_fft)
    kernel = np.concatenate([full[n_fft - k :], full[: k + 1]])
    return kernel / np.sqrt(np.sum(kernel**2))


class CorrelatedNoise:
    """Unit-variance white noise, convolved with ``kernel`` (sum of squares 1) and scaled per pixel by ``scale``."""

    def __init__(self, scale: np.ndarray, kernel: np.ndarray):
        self.scale = np.asarray(scale, dtype=np.float32)
        self.kernel = np.asarray(kernel, dtype=np.float32)
        if self.kernel.ndim != 1 or len(self.kernel) % 2 != 1:
            raise ValueError("the noise kernel must be 1-d with an odd length")
        if not (np.isfinite(self.scale).all() and (self.scale > 0).all()):
            raise ValueError("the noise scale must be finite and positive")

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        white = rng.standard_normal((n, len(self.scale)), dtype=np.float32)
        return convolve1d(white, self.kernel, axis=1, mode="reflect") * self.scale


class BackgroundNoise:
    """Noise variance ``k (F / T + F_ref * b @ B)`` of a spectrum of flux F: T the source throughput
    (P,), B the background profiles (K, P), b the K amplitudes of one real spectrum of similar S/N
    (``amplitudes`` (M, K), ``snr`` (M,)) relative to its flux F_ref in the S/N band; k sets the S/N."""

    def __init__(self, throughput: np.ndarray, profiles: np.ndarray, amplitudes: np.ndarray, snr: np.ndarray, n_bins: int = 5):
        self.throughput = np.asarray(throughput, dtype=np.float64)
        self.profiles = np.asarray(profiles, dtype=np.float64)
        self.amplitudes = np.asarray(amplitudes, dtype=np.float64)
        self.snr = np.asarray(snr, dtype=np.float64)
        self.n_bins = n_bins
        if self.profiles.ndim != 2 or self.profiles.shape[1] != len(self.throughput) or self.amplitudes.shape != (len(self.snr), len(self.profiles)) or len(self.snr) < n_bins:
            raise ValueError(
                f"background noise needs profiles (K, pixels) on the throughput's {len(self.throughput)} pixels and amplitudes (spectra >= {n_bins}, K); "
                f"got {self.profiles.shape} and {self.amplitudes.shape}"
            )
        if not ((self.throughput > 0).all() and (self.profiles >= 0).all() and (self.amplitudes >= 0).all()):
            raise ValueError("background noise: the throughput must be positive, the profiles and amplitudes non-negative")

    def resampled(self, wavelength: np.ndarray, grid: np.ndarray) -> BackgroundNoise:
        """The same model on ``wavelength``, interpolated from its own ``grid``."""
        wavelength = np.asarray(wavelength, dtype=np.float64)
        profiles = np.stack([np.interp(wavelength, grid, row) for row in self.profiles])
        return BackgroundNoise(np.interp(wavelength, grid, self.throughput), profiles, self.amplitudes, self.snr, self.n_bins)

    def draw(self, rng: np.random.Generator, snr: np.ndarray) -> np.ndarray:
        """Background amplitudes (n, K): each those of a real spectrum of similar S/N."""
        return self.amplitudes[draw_by_bin(rng, self.snr, snr, self.n_bins)]


class SkyResiduals:
    """Residual windows of real spectra (K, P) at native pixels ``pixels`` (P,), in sigma units, with
    the S/N of each source spectrum; a simulated spectrum takes one of similar S/N."""

    def __init__(self, pixels: np.ndarray, templates: np.ndarray, snr: np.ndarray, n_bins: int = 5):
        self.pixels = np.asarray(pixels, dtype=np.int64)
        self.templates = np.asarray(templates, dtype=np.float32)
        self.snr = np.asarray(snr, dtype=np.float64)
        self.n_bins = n_bins
        if self.templates.shape != (len(self.snr), len(self.pixels)) or len(self.snr) < n_bins:
            raise ValueError(f"sky templates must be (spectra >= {n_bins}, pixels) = ({len(self.snr)}, {len(self.pixels)}), got {self.templates.shape}")

    def shifted(self, offset: int, n_pixels: int) -> SkyResiduals:
        """The same windows on a grid whose pixel 0 is ``-offset`` on the calibration's (pixels off it dropped)."""
        pixels = self.pixels + offset
        keep = (pixels >= 0) & (pixels < n_pixels)
        return SkyResiduals(pixels[keep], self.templates[:, keep], self.snr, self.n_bins)

    def draw(self, rng: np.random.Generator, snr: np.ndarray) -> np.ndarray:
        return self.templates[draw_by_bin(rng, self.snr, snr, self.n_bins)]


class FluxShapes:
    """Smooth log-flux distortions: coefficients (K, D+1) of Legendre P_0..P_D in u = log(lambda)
    scaled to [-1, 1] over ``wavelength_range`` (constant beyond it), with each source star's Teff;
    the constant term is dropped (the simulator sets the flux scale)."""

    def __init__(self, wavelength_range: tuple[float, float], coefficients: np.ndarray, teff: np.ndarray, n_bins: int = 5):
        self.wavelength_range = (float(wavelength_range[0]), float(wavelength_range[1]))
        self.coefficients = np.asarray(coefficients, dtype=np.float64)
        self.teff = np.asarray(teff, dtype=np.float64)
        self.n_bins = n_bins
        if self.coefficients.ndim != 2 or len(self.coefficients) != len(self.teff) or len(self.teff) < n_bins:
            raise ValueError(f"flux shapes need coefficients (spectra >= {n_bins}, degree + 1) and one Teff per spectrum")

    def basis(self, wavelength: np.ndarray) -> np.ndarray:
        """P_0..P_D (pixels, D+1) on ``wavelength``."""
        lo, hi = np.log(self.wavelength_range)
        u = np.clip(2.0 * (np.log(np.asarray(wavelength, dtype=np.float64)) - lo) / (hi - lo) - 1.0, -1.0, 1.0)
        return legendre.legvander(u, self.coefficients.shape[1] - 1)

    def draw(self, rng: np.random.Generator, teff: np.ndarray) -> np.ndarray:
        """Coefficients (n, D+1), constant term zero."""
        out = self.coefficients[draw_by_bin(rng, self.teff, teff, self.n_bins)].copy()
        out[:, 0] = 0.0
        return out


class ResidualVariety:
    """Components (K, L) on a log-linear grid (``wavelength_start``, ``log_step``) added to the emulated
    normalised flux with the scores (M, K) of a real star (labels (M, 3): Teff, logg, [Fe/H]) drawn
    among the ``n_neighbours`` nearest in standardised (log10 Teff, logg, [Fe/H])."""

    def __init__(self, wavelength_start: float, log_step: float, components: np.ndarray, scores: np.ndarray, labels: np.ndarray, n_neighbours: int = 10):
        self.wavelength_start, self.log_step = float(wavelength_start), float(log_step)
        self.components = np.asarray(components, dtype=np.float32)
        self.scores = np.asarray(scores, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.float64)
        self.n_neighbours = min(n_neighbours, len(self.labels))
        if self.scores.shape != (len(self.labels), len(self.components)) or self.labels.shape[1:] != (3,):
            raise ValueError(f"residual variety needs scores (stars, components) and labels (stars, 3); got {self.scores.shape}, {self.labels.shape} for {len(self.components)} components")
        features = self._features(self.labels)
        self._centre, self._spread = features.mean(axis=0), features.std(axis=0) + 1e-9
        self._library = (features - self._centre) / self._spread

    @staticmethod
    def _features(labels: np.ndarray) -> np.ndarray:
        labels = np.atleast_2d(np.asarray(labels, dtype=np.float64))
        return np.column_stack([np.log10(np.maximum(labels[:, 0], 1.0)), labels[:, 1], labels[:, 2]])

    def on_grid(self, wavelength: np.ndarray) -> np.ndarray:
        """Components (K, pixels) interpolated onto ``wavelength``; zero outside the learned range."""
        position = (np.log10(np.asarray(wavelength, dtype=np.float64)) - np.log10(self.wavelength_start)) / self.log_step
        index = np.arange(self.components.shape[1])
        inside = (position >= 0) & (position <= index[-1])
        return np.stack([np.where(inside, np.interp(position, index, row), 0.0) for row in self.components]).astype(np.float32)

    def draw(self, rng: np.random.Generator, labels: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Scores (n, K): for each star, those of a random one of its nearest real stars."""
        query = (self._features(labels) - self._centre) / self._spread
        out = np.empty((len(query), len(self.components)), dtype=np.float32)
        for lo in range(0, len(query), chunk):
            distance = ((query[lo : lo + chunk, None, :] - self._library[None, :, :]) ** 2).sum(axis=2)
            nearest = np.argpartition(distance, self.n_neighbours - 1, axis=1)[:, : self.n_neighbours]
            pick = nearest[np.arange(len(nearest)), rng.integers(self.n_neighbours, size=len(nearest))]
            out[lo : lo + chunk] = self.scores[pick]
        return out


def fit_background(
    flux: np.ndarray,
    ivar: np.ndarray,
    wavelength: np.ndarray,
    snr: np.ndarray,
    snr_band: tuple[float, float],
    line_windows: Sequence[tuple[float, float]] = (),
    n_components: int = 2,
    iterations: int = 12,
) -> tuple[BackgroundNoise, np.ndarray]:
    """Fit :class:`BackgroundNoise` to real spectra (N, P) on one grid, pixels with ivar 0 ignored:
    each spectrum's variance 1/ivar as a F~/T + sum_k c_k B_k (F~ its 15-pixel running median, all
    terms non-negative, relative errors), alternating per-spectrum and per-pixel non-negative least
    squares. ``n_components`` profiles span the whole grid (started from a smooth and a sharp part of
    the faintest spectra's variance profile); one more per ``line_windows`` (A) lives only inside its
    window (a sky line whose strength varies from sky to sky). Returns the model (amplitudes c / a
    relative to F~'s median in ``snr_band``, T and each profile scaled to a median of 1 where non-zero)
    and each spectrum's relative RMS misfit."""
    from scipy.optimize import nnls  # a fit's dependency, not the simulator's

    wavelength = np.asarray(wavelength, dtype=np.float64)
    smooth_flux = median_filter(np.clip(np.nan_to_num(np.asarray(flux, dtype=np.float64)), 0.0, None), size=(1, 15), mode="nearest")
    ivar = np.nan_to_num(np.asarray(ivar, dtype=np.float64))
    usable = (ivar > 0) & (smooth_flux > 0)
    variance = np.where(usable, 1.0 / np.where(usable, ivar, 1.0), 0.0)
    root_weight = np.where(usable, 1.0 / np.where(usable, variance, 1.0), 0.0)  # relative errors
    snr = np.asarray(snr, dtype=np.float64)
    n, p = variance.shape
    if n < 10 or not usable.any():
        raise ValueError(f"fit_background needs at least 10 spectra with usable pixels, got {n}")

    def median_profile(rows: np.ndarray, per: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            values = np.where(usable[rows], per[rows], np.nan)
            values /= np.nanmedian(values, axis=1, keepdims=True)
            return np.nan_to_num(np.nanmedian(values, axis=0), nan=1.0)

    faint, bright = snr <= np.quantile(snr, 0.1), snr >= np.quantile(snr, 0.9)
    faint_profile = median_profile(np.flatnonzero(faint), variance)
    with np.errstate(all="ignore"):
        inverse_throughput = median_profile(np.flatnonzero(bright), variance / np.where(usable, smooth_flux, 1.0))
    broad = median_filter(faint_profile, size=51, mode="nearest")
    sharp = np.clip(faint_profile - broad, 0.0, None)
    starts = [broad, sharp + 1e-3 * broad] + [broad * (wavelength / np.median(wavelength)) ** (-2.0 * k) for k in range(1, n_components - 1)]
    support = [np.ones(p, bool)] * n_components + [(wavelength >= lo) & (wavelength <= hi) for lo, hi in line_windows]
    profiles = np.array(starts[:n_components] + [np.where(s, sharp + 1e-3, 0.0) for s in support[n_components:]])
    allowed = np.array(support)
    k = len(profiles)
    for _ in range(iterations + 1):
        coefficients = np.zeros((n, k + 1))
        for i in range(n):
            design = np.column_stack([smooth_flux[i] * inverse_throughput, profiles.T]) * root_weight[i][:, None]
            coefficients[i] = nnls(design, variance[i] * root_weight[i])[0]
        if _ == iterations:
            break
        source, amplitudes = coefficients[:, 0], coefficients[:, 1:]
        for j in range(p):
            on = np.concatenate([[True], allowed[:, j]])
            design = np.column_stack([source * smooth_flux[:, j], amplitudes])[:, on] * root_weight[:, j][:, None]
            solution = np.zeros(k + 1)
            solution[on] = nnls(design, variance[:, j] * root_weight[:, j])[0]
            inverse_throughput[j], profiles[:, j] = solution[0], solution[1:]
        inverse_throughput = np.clip(inverse_throughput, 1e-6 * np.median(inverse_throughput), None) / np.median(inverse_throughput)
        for row in profiles:
            positive = row[row > 0]
            if positive.size:
                row /= np.median(positive)
    source, amplitudes = coefficients[:, 0], coefficients[:, 1:]
    model = source[:, None] * smooth_flux * inverse_throughput + amplitudes @ profiles
    misfit = np.sqrt(np.sum(((variance - model) * root_weight) ** 2, axis=1) / np.maximum(usable.sum(axis=1), 1))
    in_band = (wavelength >= snr_band[0]) & (wavelength <= snr_band[1])
    reference = np.median(smooth_flux[:, in_band], axis=1)
    keep = (source > 0) & (reference > 0)
    relative = amplitudes[keep] / (source[keep] * reference[keep])[:, None]
    return BackgroundNoise(1.0 / inverse_throughput, profiles, relative, snr[keep]), misfit
