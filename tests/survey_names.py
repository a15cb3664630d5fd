"""The pattern of survey names that nothing the core ships may contain (shared by the tests that check it)."""

import re

# not inside a longer word ("design" is fine), but "desi_lrs", "GaiaXP" or "lamost-dr10" are not
FORBIDDEN = re.compile(r"(?<![a-z0-9])(lamost|gaia|apogee|desi(?![a-z])|2mass|tmass)", re.IGNORECASE)
