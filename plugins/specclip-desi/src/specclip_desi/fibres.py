"""Which fibres of a DESI file hold a spectrum of a target, and why the others do not."""

from __future__ import annotations

import numpy as np

FIBERSTATUS_BITS = {
    0: "UNASSIGNED", 1: "BROKENFIBER", 2: "STUCKPOSITIONER", 3: "MISSINGPOSITION", 4: "BADPOSITION", 5: "POORPOSITION",
    8: "BADFIBER", 9: "BADTRACE", 10: "BADFLAT", 11: "BADARC", 12: "MANYBADCOL", 13: "MANYREJECTED",
    16: "BADAMPB", 17: "BADAMPR", 18: "BADAMPZ",
}
"""Bits of FIBERSTATUS / COADD_FIBERSTATUS (desispec's ``fibermask``), named in skip reasons."""


def status_names(status: int) -> str:
    """``513`` -> ``'UNASSIGNED|BADTRACE'``; ``0`` -> ``'0'``."""
    status = int(status)
    if status <= 0:
        return str(status)
    names = [FIBERSTATUS_BITS.get(bit, f"bit{bit}") for bit in range(status.bit_length()) if status >> bit & 1]
    return "|".join(names)


def skip_reason(targetid: int, objtype: str, fiber: str, status: int, valid_pixels: int) -> str | None:
    """Why a fibre is left out (None: it is kept). A negative TARGETID marks a fibre with no target
    (unassigned, stuck or broken positioner); OBJTYPE other than TGT a sky or bad fibre."""
    where = f"fibre {fiber} (TARGETID {targetid}, FIBERSTATUS {status} = {status_names(status)})"
    if targetid < 0:
        return f"{where}: no target (negative TARGETID)"
    if objtype and objtype != "TGT":
        return f"{where}: not a target (OBJTYPE {objtype!r})"
    if valid_pixels == 0:
        return f"{where}: no valid pixel (every pixel masked or with zero inverse variance)"
    return None


def fibres_of(fibermap, exp_fibermap) -> list[str]:
    """Each row's fibre as text: FIBERMAP's FIBER; for a healpix coadd (no FIBER column) the fibres
    of the target's exposures in EXP_FIBERMAP ("1571/2435"); else "row <i>"."""
    names = {n.upper() for n in fibermap.columns.names}
    n = len(fibermap)
    if "FIBER" in names:
        return [str(int(f)) for f in fibermap["FIBER"]]
    if exp_fibermap is not None and {"TARGETID", "FIBER"} <= {c.upper() for c in exp_fibermap.columns.names}:
        targets, fibres = np.asarray(exp_fibermap["TARGETID"]), np.asarray(exp_fibermap["FIBER"])
        out = []
        for row, targetid in enumerate(np.asarray(fibermap["TARGETID"])):
            found = sorted({int(f) for f in fibres[targets == targetid]})
            out.append("/".join(map(str, found)) if found else f"row {row}")
        return out
    return [f"row {row}" for row in range(n)]
