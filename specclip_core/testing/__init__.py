"""The conformance suite every plugin runs against itself.

In a plugin's tests::

    from specclip_core.testing import ModalityConformance

    class TestMySurveyConformance(ModalityConformance):
        modality = "my_survey"
        reader_files = [Path(__file__).parent / "data" / "one-real-file.fits"]

        def raw_spectra(self):
            return read_some_raw_spectra()

pytest then runs every ``test_*`` method below on the plugin's modality and readers.
``cli_main(argv)`` runs a ``specclip`` command in-process (returns its exit status);
``with registered_datasets([card]):`` registers dataset cards for the block. ``bit_flips``,
``truncations``, ``deadline`` and ``Tally`` (:mod:`specclip_core.testing.faults`) build a corpus of
bad inputs and count how readers and commands met them. ``threads_of_a_slow_consumer`` reads files
in worker processes for a slow consumer and gives the threads it was left per batch.
"""

from specclip_core.cli import main as cli_main
from specclip_core.testing.conformance import ModalityConformance
from specclip_core.testing.data import shared_data, shared_data_dir
from specclip_core.testing.consumer import threads_of_a_slow_consumer
from specclip_core.testing.faults import Tally, bit_flips, deadline, meet_reader, truncations
from specclip_core.testing.registering import registered_datasets

__all__ = [
    "ModalityConformance",
    "Tally",
    "bit_flips",
    "cli_main",
    "deadline",
    "meet_reader",
    "registered_datasets",
    "shared_data",
    "shared_data_dir",
    "threads_of_a_slow_consumer",
    "truncations",
]
