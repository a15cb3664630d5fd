"""Objects from repeat observations: by a label column naming the object, or by sky position
(friends of friends within a separation)."""

from __future__ import annotations

import numpy as np


def group_names(values: np.ndarray) -> np.ndarray:
    """Object names from a label column: numbers as integers, missing values as empty strings."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return np.where(np.isfinite(values), np.char.mod("%.0f", np.nan_to_num(values)), "")
    return values.astype(str)


def sky_groups(ra: np.ndarray, dec: np.ndarray, radius_arcsec: float) -> np.ndarray:
    """Object names ("0", "1", ...) from sky positions in degrees: connected components of the graph
    linking every pair closer than ``radius_arcsec``; "" where a position is not finite."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
    names = np.full(ra.shape, "", dtype=object)
    finite = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
    if finite.size == 0:
        return names.astype(str)
    coords = SkyCoord(ra[finite] * u.deg, dec[finite] * u.deg)
    first, second, _, _ = search_around_sky(coords, coords, radius_arcsec * u.arcsec)
    links = coo_matrix((np.ones(first.size, dtype=np.int8), (first, second)), shape=(finite.size, finite.size))
    _, component = connected_components(links, directed=False)
    names[finite] = component.astype(str)
    return names.astype(str)


def size_histogram(groups: np.ndarray) -> dict[str, int]:
    _, counts = np.unique(groups[groups != ""], return_counts=True)
    sizes, number = np.unique(counts, return_counts=True)
    return {str(int(s)): int(n) for s, n in zip(sizes, number)}
