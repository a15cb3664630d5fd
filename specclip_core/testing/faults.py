"""Bad inputs for a plugin's tests, and the tally of how a reader or a command met them.

``bit_flips`` and ``truncations`` damage the bytes of a real file; ``deadline`` turns a hang into
an error; a :class:`Tally` counts, per family of inputs, the bad inputs tried and how each was met
(rejected by name with the right reason, crashed, hung, silently wrong), and the good spectra lost.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


def bit_flips(data: bytes, n: int, seed: int = 0) -> Iterator[tuple[int, bytes]]:
    """``n`` copies of ``data``, each with one bit flipped (positions spread over the whole file)."""
    rng = np.random.default_rng(seed)
    for position in sorted(rng.choice(len(data), size=min(n, len(data)), replace=False)):
        damaged = bytearray(data)
        damaged[position] ^= 1 << int(rng.integers(8))
        yield int(position), bytes(damaged)


def truncations(data: bytes, fractions=(0.0, 0.01, 0.3, 0.5, 0.9, 0.999)) -> Iterator[tuple[int, bytes]]:
    """``data`` cut at each fraction of its length (0: an empty file)."""
    for fraction in fractions:
        size = int(len(data) * fraction)
        yield size, data[:size]


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise TimeoutError after ``seconds`` (SIGALRM also interrupts a blocking open, e.g. of a FIFO)."""

    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Tally:
    """Counts of one family of bad inputs (e.g. one survey's files) met by readers and commands."""

    family: str
    tried: int = 0
    right_reason: int = 0
    wrong_reason: int = 0
    crashed: int = 0
    hung: int = 0
    silently_wrong: int = 0
    good_lost: int = 0
    notes: list[str] = field(default_factory=list)

    def outcome(self, case: str, outcome: str) -> None:
        """Record one bad input: ``right_reason``, ``wrong_reason``, ``crashed``, ``hung`` or ``silently_wrong``."""
        self.tried += 1
        setattr(self, outcome, getattr(self, outcome) + 1)
        if outcome != "right_reason":
            self.notes.append(f"{case}: {outcome}")

    def summary(self) -> str:
        return (
            f"{self.family}: {self.tried} bad inputs tried, {self.right_reason} reported with the right reason, "
            f"{self.wrong_reason} with another reason, "
            f"{self.crashed} crashed, {self.hung} hung, {self.silently_wrong} silently wrong, {self.good_lost} good spectra lost"
        )

    def assert_clean(self) -> None:
        assert self.tried and self.right_reason == self.tried and not self.good_lost, f"{self.summary()}; {self.notes[:10]}"


def meet_reader(tally: Tally, case: str, path, read, expected: tuple[str, str], reference=None, seconds: int = 20) -> None:
    """Read ``path`` with ``read(path)`` and record the outcome: right when rejected with the ``expected``
    (check, words in the reason) naming the file, or when read with exactly the ``reference`` values
    (harmless damage, e.g. a flipped gzip timestamp); a timeout is ``hung``, any other error ``crashed``."""
    from specclip_core.errors import ReaderError

    try:
        with deadline(seconds):
            spectra = read(path)
    except ReaderError as error:
        right = error.path == str(path) and error.check == expected[0] and expected[1] in error.reason
        tally.outcome(case, "right_reason" if right else "wrong_reason")
        if not right:
            tally.notes.append(f"{case}: {error.check}: {error.reason}")
        return
    except TimeoutError:
        return tally.outcome(case, "hung")
    except Exception as error:  # noqa: BLE001 - counting crashes is the point
        tally.notes.append(f"{case}: {type(error).__name__}: {error}")
        return tally.outcome(case, "crashed")
    same = reference is not None and all(
        np.array_equal(getattr(spectra, name), getattr(reference, name), equal_nan=True) for name in ("flux", "ivar", "mask", "ids")
    )
    tally.outcome(case, "right_reason" if same else "silently_wrong")
