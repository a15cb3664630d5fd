"""The contracts between the core and the plugins.

A survey plugin provides a :class:`Modality` (its grid, preprocessing, tokenizers and default
encoder) and :class:`Reader` objects for its file formats. Networks implement :class:`Encoder`,
:class:`Projection`, :class:`Decoder`; downstream estimators implement :class:`Head` (saved as a
:class:`HeadLayout`); whatever turns spectra into vectors is an :class:`Embedder`; training terms are
:class:`Objective` objects; a run is a sequence of :class:`Stage` objects. Spectra travel between all
of them in a :class:`Spectra` container.

How each is registered (kind, and what the registered factory is) is listed in
:data:`specclip_core.components.KINDS`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from specclip_core.errors import SpecCLIPError

if TYPE_CHECKING:
    import torch

    from specclip_core.nn.contracts import Decoder, Encoder, EncoderOutput, Projection
    from specclip_core.runner import StageContext
    from specclip_core.spec import DataSpec


NETWORK_CONTRACTS = ("Encoder", "EncoderOutput", "Projection", "Decoder")
"""The contracts that are torch modules, defined in :mod:`specclip_core.nn.contracts` and handed out
here on first use: readers and modalities (and predict's reader processes, forked before torch is
imported) never import torch."""


def __getattr__(name: str) -> Any:
    if name in NETWORK_CONTRACTS:
        from specclip_core.nn import contracts

        return getattr(contracts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *NETWORK_CONTRACTS])


def _check_rows(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        raise ValueError(f"Spectra.{name}: expected shape {shape}, got {array.shape}")


@dataclass
class Spectra:
    """A batch of N spectra sharing one wavelength grid of L pixels.

    ``mask`` is True where a pixel is bad; bad pixels carry ``ivar == 0``. ``stats`` holds the
    per-spectrum statistics a modality's preprocessing keeps (for example mean and standard
    deviation of the normalised flux) and is ``None`` for raw spectra. ``meta`` holds per-spectrum
    columns (header fields, labels), each of length N. ``skipped`` lists the entries of a file a
    reader left out, as (id, reason) (a fibre with no target, say); ingest and predict report them
    with the file's name. It belongs to one reader's output: ``subset`` and ``concatenate`` drop it.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    ids: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    stats: np.ndarray | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.flux = np.atleast_2d(np.asarray(self.flux, dtype=np.float32))
        n, length = self.flux.shape
        self.wavelength = np.asarray(self.wavelength, dtype=np.float64)
        _check_rows("wavelength", self.wavelength, (length,))
        self.ivar = np.atleast_2d(np.asarray(self.ivar, dtype=np.float32))
        _check_rows("ivar", self.ivar, (n, length))
        self.mask = np.atleast_2d(np.asarray(self.mask, dtype=bool))
        _check_rows("mask", self.mask, (n, length))
        self.ids = np.asarray(self.ids).astype(str).reshape(-1)
        _check_rows("ids", self.ids, (n,))
        self.meta = {k: np.asarray(v).reshape(-1) for k, v in self.meta.items()}
        for key, column in self.meta.items():
            _check_rows(f"meta[{key!r}]", column, (n,))
        if self.stats is not None:
            self.stats = np.atleast_2d(np.asarray(self.stats, dtype=np.float32))
            if self.stats.shape[0] != n:
                raise ValueError(f"Spectra.stats: expected {n} rows, got {self.stats.shape[0]}")

    def __len__(self) -> int:
        return self.flux.shape[0]

    def subset(self, rows: np.ndarray | Sequence[int] | slice) -> Spectra:
        """The spectra at ``rows`` (indices, boolean mask or slice)."""
        return Spectra(
            wavelength=self.wavelength,
            flux=self.flux[rows],
            ivar=self.ivar[rows],
            mask=self.mask[rows],
            ids=self.ids[rows],
            meta={k: v[rows] for k, v in self.meta.items()},
            stats=None if self.stats is None else self.stats[rows],
        )

    @staticmethod
    def concatenate(parts: Sequence[Spectra]) -> Spectra:
        """Join spectra on one grid; meta columns must agree across parts."""
        if not parts:
            raise ValueError("Spectra.concatenate: nothing to concatenate")
        first = parts[0]
        for part in parts[1:]:
            if part.wavelength.shape != first.wavelength.shape or not np.allclose(part.wavelength, first.wavelength):
                raise ValueError("Spectra.concatenate: parts are on different wavelength grids")
        keys = [k for k in first.meta if all(k in p.meta for p in parts)]
        has_stats = all(p.stats is not None for p in parts)
        return Spectra(
            wavelength=first.wavelength,
            flux=np.concatenate([p.flux for p in parts]),
            ivar=np.concatenate([p.ivar for p in parts]),
            mask=np.concatenate([p.mask for p in parts]),
            ids=np.concatenate([p.ids for p in parts]),
            meta={k: np.concatenate([p.meta[k] for p in parts]) for k in keys},
            stats=np.concatenate([p.stats for p in parts]) if has_stats else None,
        )


@dataclass(frozen=True)
class Instrument:
    """What a simulator needs to know about the instrument behind a modality: its resolving power,
    its native wavelength grid (Angstrom; vacuum unless ``air_wavelengths``), the band in which
    its quoted S/N is measured and, optionally, ``calibration``: the path of a file of what was
    measured from the instrument's real spectra (effective resolution, S/N distribution, mask
    patterns), in the format of the simulator that reads it, shipped by the modality's plugin."""

    resolving_power: float
    native_wavelength: np.ndarray
    description: str = ""
    air_wavelengths: bool = False
    snr_band: tuple[float, float] | None = None
    calibration: str | None = None


class Tokenizer(ABC):
    """Turns preprocessed flux and its statistics into a sequence of tokens ``[B, T, D]``."""

    n_tokens: int
    token_dim: int

    @abstractmethod
    def __call__(self, flux: torch.Tensor, stats: torch.Tensor) -> torch.Tensor: ...

    def stats_tokens(self) -> int:
        """How many leading tokens carry statistics rather than flux (never masked in pretraining)."""
        return 0


class Modality(ABC):
    """One kind of spectrum: its model input grid, preprocessing and tokenizers.

    Subclasses set ``name``, ``wavelength`` (the model's input grid, in Angstrom), ``stats_names``
    and ``default_encoder`` (a component spec mapping, e.g. ``{"name": "masked_transformer", ...}``),
    and may set ``instrument``, ``aliases`` (short names accepted on the command line),
    ``encoder_tokenizers`` (encoder name -> the tokenizer spec to use with it) and ``file_modality``
    (another modality whose readers read this one's files, e.g. the same survey on another grid).
    """

    name: ClassVar[str]
    wavelength: np.ndarray
    stats_names: tuple[str, ...] = ("mean", "std")
    default_encoder: Mapping[str, Any] = {"name": "mlp_autoencoder", "size": "small"}
    default_tokenizer: Mapping[str, Any] = {"name": "vector"}
    encoder_tokenizers: Mapping[str, Mapping[str, Any]] = {}
    instrument: Instrument | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    file_modality: str | None = None

    @property
    def reader_modality(self) -> str:
        """The modality name the readers of this modality's files declare."""
        return self.file_modality or self.name

    @property
    def n_pixels(self) -> int:
        return int(len(self.wavelength))

    def tokenizer_for(self, encoder: str) -> Mapping[str, Any]:
        """The tokenizer spec to pair with ``encoder``: the modality's own choice, else the default
        tokenizer for the default encoder, else the whole vector."""
        if encoder in self.encoder_tokenizers:
            return self.encoder_tokenizers[encoder]
        if encoder == self.default_encoder.get("name"):
            return self.default_tokenizer
        return {"name": "vector"}

    @abstractmethod
    def preprocess(self, spectra: Spectra) -> Spectra:
        """Return spectra on ``self.wavelength`` ready for the model, with ``stats`` filled and ``meta`` kept.

        Non-finite flux must not reach the model: such pixels are masked (``mask`` True, ``ivar``
        0, flux filled with a neutral value). A spectrum with no usable pixel raises ``ValueError``
        naming its id.
        """


@dataclass
class LabelledInputs:
    """Inputs ``[N, D]`` (embeddings or preprocessed spectra) with ids and label columns (NaN = missing),
    optionally each label's measurement error per row (``label_errors``, NaN = unknown) and each
    input's own 1-sigma error ``[N, D]`` (``input_errors``, 0 where none is known), for a head that
    trains on noisier copies of its inputs, and each row's weight in the training loss (``weights``,
    e.g. :mod:`specclip_core.heads.reweight`'s; None: all alike)."""

    inputs: np.ndarray
    labels: dict[str, np.ndarray]
    ids: np.ndarray
    label_errors: dict[str, np.ndarray] = field(default_factory=dict)
    input_errors: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.inputs = np.asarray(self.inputs, dtype=np.float32)
        n = len(self.inputs)
        self.ids = np.asarray(self.ids).astype(str)
        _check_rows("ids", self.ids, (n,))
        self.labels = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in self.labels.items()}
        for key, column in self.labels.items():
            _check_rows(f"labels[{key!r}]", column, (n,))
        self.label_errors = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in self.label_errors.items()}
        for key, column in self.label_errors.items():
            _check_rows(f"label_errors[{key!r}]", column, (n,))
        if self.input_errors is not None:
            self.input_errors = np.asarray(self.input_errors, dtype=np.float32)
            _check_rows("input_errors", self.input_errors, self.inputs.shape)
        if self.weights is not None:
            self.weights = np.asarray(self.weights, dtype=np.float32).reshape(-1)
            _check_rows("weights", self.weights, (n,))
            if not (np.isfinite(self.weights).all() and (self.weights >= 0).all()):
                raise ValueError("LabelledInputs: weights must be finite and >= 0")

    def __len__(self) -> int:
        return len(self.inputs)

    def take(self, rows: np.ndarray) -> LabelledInputs:
        """These rows (indices or a boolean mask) of every column."""
        errors = None if self.input_errors is None else self.input_errors[rows]
        return LabelledInputs(self.inputs[rows], {k: v[rows] for k, v in self.labels.items()}, self.ids[rows], {k: v[rows] for k, v in self.label_errors.items()}, errors)

    @classmethod
    def joined(cls, parts: list[LabelledInputs]) -> LabelledInputs:
        """The rows of ``parts`` one after another (each with the first part's label columns)."""
        first = parts[0]
        errors = None if any(p.input_errors is None for p in parts) else np.concatenate([p.input_errors for p in parts])
        return cls(
            np.concatenate([p.inputs for p in parts]),
            {k: np.concatenate([p.labels[k] for p in parts]) for k in first.labels},
            np.concatenate([p.ids for p in parts]),
            {k: np.concatenate([p.label_errors[k] for p in parts]) for k in first.label_errors},
            errors,
        )


HEAD_FILE = "head.json"


@dataclass
class HeadLayout:
    """The saved layout of a head: a directory holding ``head.json`` beside the head's weight files.

    ``head.json`` is a JSON object with at least ``head`` (the registered head name, which finds the
    class whose ``load`` restores it) and ``labels`` (the labels it predicts, in order); every other
    key (``settings`` here) belongs to that head and is read back only by its own ``load``. Weights are
    safetensors files in the same directory, never pickles. ``predict`` reads ``head`` and ``labels``;
    the stage that trained the head writes what its inputs were beside it (see
    :mod:`specclip_core.rundir`).
    """

    head: str
    labels: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    def write(self, directory: Path) -> None:
        from specclip_core.util import atomic_write_text

        atomic_write_text(Path(directory) / HEAD_FILE, json.dumps({"head": self.head, "labels": list(self.labels), **self.settings}))

    @classmethod
    def read(cls, directory: Path) -> HeadLayout:
        path = Path(directory) / HEAD_FILE
        try:
            described = json.loads(path.read_text())
        except FileNotFoundError:
            raise SpecCLIPError(f"{path}: missing; {directory} is not a saved head") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SpecCLIPError(f"{path}: not valid JSON ({error})") from None
        missing = [key for key in ("head", "labels") if key not in described]
        if missing:
            raise SpecCLIPError(f"{path}: no {' or '.join(repr(k) for k in missing)} field; a head.json names its head and its labels")
        head, labels = described.pop("head"), described.pop("labels")
        return cls(head, list(labels), described)


UNCERTAINTY_SUFFIXES = ("_err", "_lo", "_hi")
"""Columns a head's ``predict`` may add per label: half the central 68% interval, and its bounds."""


class Head(ABC):
    """A downstream estimator of labels from inputs (embeddings or preprocessed spectra).

    Registered with kind ``head`` as the class itself: ``cls(config)`` is an untrained head,
    ``cls.load(directory)`` restores one that ``save`` wrote as a :class:`HeadLayout`.
    """

    labels: list[str]

    @abstractmethod
    def fit(self, train: LabelledInputs, validation: LabelledInputs, run_dir: Path, **settings: Any) -> dict[str, Any]:
        """Train on ``train``, select on ``validation``; work files go under ``run_dir``; return a summary."""

    @abstractmethod
    def predict(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Label name -> predicted values; a head that gives uncertainties adds the columns of
        :data:`UNCERTAINTY_SUFFIXES` (``<label>_err``, ``_lo``, ``_hi``)."""

    gives_samples: bool = False
    """Whether ``sample`` gives posterior samples (True for a head that gives uncertainties)."""

    uses_input_errors: bool = False
    """Whether ``fit`` needs its training inputs' errors (``LabelledInputs.input_errors``)."""

    takes_weights: bool = False
    """Whether ``fit`` weights each row's loss by ``LabelledInputs.weights`` (a head that does not
    cannot be given weights)."""

    recalibration: Any = None
    """A head's :class:`specclip_core.heads.calibration.Recalibration`, fitted on validation stars, or None."""

    def sample(self, inputs: np.ndarray, n_samples: int | None = None, recalibrated: bool = True) -> dict[str, np.ndarray] | None:
        """Label name -> posterior samples ``[N, n_samples]`` for a head that gives posteriors (the
        heads stage then calibrates them), after the head's ``recalibration`` unless ``recalibrated``
        is false; None, the default, for a point estimator."""
        return None

    def predict_samples(self, inputs: np.ndarray, n_samples: int | None = None, recalibrated: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """``predict(inputs)`` and ``sample(inputs, n_samples, recalibrated)``; a head that predicts
        from its samples overrides this to draw them once."""
        return self.predict(inputs), self.sample(inputs, n_samples, recalibrated)

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write weights and a :class:`HeadLayout` into ``directory``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> Head: ...


SIMULATED = "simulated"
"""The meta column (boolean) by which a reader says which spectra are simulated, and the store's 0/1
label column that keeps it."""


class Reader(ABC):
    """Reads one file format into raw :class:`Spectra` (native grid, before preprocessing).

    ``read`` raises :class:`specclip_core.errors.ReaderError` naming the file for anything it
    cannot read: truncated, empty, foreign or inconsistent files. Header fields go into ``meta``;
    a file that says whether it holds simulated spectra (a ``SIMULATED`` header card, say) gives a
    boolean meta column ``simulated`` (:data:`SIMULATED`), which ingest keeps. A file without it
    counts as an observation unless the ingest's ``simulated`` setting says otherwise.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    patterns: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    meta_columns: ClassVar[tuple[str, ...] | None] = None
    """Every meta column the spectra it reads can carry, where that is fixed (None: it depends on the
    file); lets a spec's labels be checked against an ``ingest`` stage's store before running."""

    @abstractmethod
    def sniff(self, path: Path) -> bool:
        """Cheap guess whether ``path`` is in this format (by name or first bytes)."""

    @abstractmethod
    def read(self, path: Path) -> Spectra: ...

    def read_chunks(self, path: Path, rows: int) -> Iterator[Spectra]:
        """The file's spectra in pieces of at most about ``rows`` spectra, for files too large to hold
        at once (a table of many spectra). The pieces together equal :meth:`read`; a problem found in
        a later piece raises ReaderError then, and whoever reads drops the earlier pieces of the file.
        The default reads the whole file as one piece: override it where a file can hold many spectra."""
        yield self.read(path)

    shares: ClassVar[bool] = False
    """Whether :meth:`read_share` is implemented, so that several processes can read one large file together."""

    def read_share(self, path: Path, rows: int, share: int, shares: int) -> Iterator[Spectra]:
        """Blocks ``share``, ``share + shares``, ``share + 2 * shares``, ... of the file, block ``b``
        being the ``b``-th run of at most ``rows`` consecutive spectra (the same runs whichever the
        share): one piece per block, in order, so that ``shares``
        processes read the file together and taking their pieces in turn gives the file's spectra in
        order. A problem in a block raises ReaderError in the share that reads it; the share that
        owns block 0 raises for a file with no rows. Implemented by readers that set :attr:`shares`."""
        raise NotImplementedError(f"reader {self.name!r} does not read files in shares")


class Writer(ABC):
    """Writes spectra as files in a modality's native format, readable by that modality's readers
    (used to put simulated spectra through exactly the code real files go through)."""

    name: ClassVar[str]
    modality: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def write(self, spectra: Spectra, directory: Path) -> list[Path]:
        """One or more files under ``directory`` holding ``spectra`` (ids and meta kept where the
        format has room for them); return their paths."""


class Embedder(ABC):
    """Maps preprocessed spectra of one modality to one vector each (what heads, search and predict read).

    Registered with kind ``embedder`` as the class itself; a stage saves one with ``save(directory)``,
    which writes ``encoder.json`` whose ``type`` is the registered name, and anything reads it back
    with :func:`specclip_core.nn.embedders.load_embedder`, which calls ``cls.load(directory)``.
    """

    modality: str
    embed_dim: int

    @abstractmethod
    def embed(self, flux: np.ndarray, stats: np.ndarray, batch_size: int = 512, device: str | torch.device = "cpu") -> np.ndarray:
        """``[N, embed_dim]`` float32 embeddings of preprocessed ``flux`` ``[N, L]`` and ``stats`` ``[N, k]``."""

    @abstractmethod
    def save(self, directory: Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> Embedder: ...


class ObjectiveConfig(BaseModel):
    """Settings every objective has; an objective's own config subclasses this."""

    model_config = ConfigDict(extra="forbid")
    weight: float = Field(1.0, ge=0, description="multiplies every term of this objective")


class Objective(ABC):
    """A training term: ``objective(network, batch) -> {term name: scalar loss tensor}``.

    Registered with kind ``objective`` as the class, built as ``cls(config)``. The loop sums
    ``weight * term`` over every term of every objective and logs each term by name. What ``network``
    and ``batch`` are depends on the stage that trains:

    - pretraining (``pretrain`` stage): ``network`` is a
      :class:`~specclip_core.nn.modality_encoder.ModalityEncoder` (``.modality``, ``.tokenize(inputs)``,
      ``.tokenizer``, ``.encoder``); ``batch[modality]`` holds ``flux``, ``ivar``, ``mask``, ``stats``
      tensors of one modality.
    - alignment (``align`` stage, which adds every objective listed in its ``objectives`` setting to
      its own): ``network`` is an :class:`~specclip_core.align.model.AlignmentModel` (``.modalities``,
      ``.embed(modality, inputs)`` -> shared / private / full embeddings, ``.logit_scale``,
      ``.reconstructors``, ``.predictors``); ``batch`` holds every modality's tensors for the same
      stars, row by row. :func:`specclip_core.api.embed_all` computes the embeddings once per batch
      for all objectives.
    """

    def __init__(self, config: ObjectiveConfig):
        self.config, self.weight = config, config.weight

    @abstractmethod
    def __call__(self, network: Any, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]: ...


class Stage(ABC):
    """One kind of run stage.

    Registered with kind ``stage`` as the class with its settings model as config::

        components.register("stage", "my_stage", MyStageConfig)(MyStage)

    The fields of the config are the stage's keys in a run spec (beside ``kind``, ``needs`` and
    ``data``). The runner builds ``MyStage(config)`` from the validated settings and:

    - orders stages by ``needs``: the spec's own list, the stage that writes its ``data``, and
      :meth:`needs`;
    - keys the result (reuse when the key matches) on the settings, the seed, the data's fingerprint
      when ``requires_data``, the fingerprints of the stores :meth:`inputs` names, the keys of the
      stages it needs, :meth:`fingerprint`, and the versions of the distributions whose components
      the settings name;
    - calls :meth:`run` with a :class:`~specclip_core.runner.StageContext` whose ``out_dir`` is the
      stage's working directory, renamed to the stage's directory when ``run`` returns.
    """

    requires_data: ClassVar[bool] = False
    """True when the stage reads spectra through ``context.store()``."""

    def __init__(self, config: BaseModel | None):
        self.config = config

    def needs(self) -> list[str]:
        """Earlier stages that the settings name (e.g. the heads stages a table compares); by
        default those whose stores :meth:`inputs` names."""
        return [data.stage for data in self.inputs().values() if data.stage is not None]

    def inputs(self) -> dict[str, DataSpec]:
        """Stores the stage reads besides its ``data`` (name -> where from), opened with
        ``context.input_store(name)``; the runner opens them (fetching a registered dataset, as it
        does a stage's data) to key the result on their fingerprints."""
        return {}

    def fingerprint(self) -> Any:
        """What else the result depends on that the settings do not show (input files' sizes and
        modification times); JSON-able, or None."""
        return None

    def labels_read(self) -> dict[str, list[str]]:
        """Label columns of its data the stage reads, by the setting that names them; checked against
        the data's columns before a run wherever those are known (:meth:`labels_written`, a store)."""
        return {}

    def labels_written(self) -> list[str] | None:
        """The label columns of the store this stage writes, where known without running it (else None)."""
        return None

    @abstractmethod
    def run(self, context: StageContext) -> dict[str, Any]:
        """Do the work in ``context.out_dir``; return a JSON-able summary (kept in the manifest)."""
