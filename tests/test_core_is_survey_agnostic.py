"""The core knows no survey: no survey name may appear anywhere under specclip_core/."""

import runpy
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "specclip_core"
FORBIDDEN = runpy.run_path(str(Path(__file__).with_name("survey_names.py")))["FORBIDDEN"]


def test_no_survey_name_in_the_core():
    offences = []
    for path in sorted(CORE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if FORBIDDEN.search(line):
                    offences.append(f"{path.relative_to(CORE.parent)}:{number}: {line.strip()}")
    assert not offences, "survey names in the core:\n" + "\n".join(offences)


def test_the_pattern_catches_what_it_should():
    for bad in ("LAMOST", "gaia_xp", "GaiaXP", "desi-lrs", "apogee_id", "(desi)", "2MASS", "tmass_psc"):
        assert FORBIDDEN.search(bad), bad
    for fine in ("design", "designed", "desired"):
        assert not FORBIDDEN.search(fine), fine
