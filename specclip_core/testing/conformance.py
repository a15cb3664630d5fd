"""Checks a modality and its readers against the core's contracts (see the package docstring)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from specclip_core.components import get_modality, get_registry, readers_for
from specclip_core.errors import ReaderError
from specclip_core.interfaces import Modality, Spectra
from specclip_core.nn.modality_encoder import ModalityEncoder

_SMALL = {"masked_transformer": {"size": "small", "depth": 1, "width": 32, "heads": 2}, "mlp_autoencoder": {"size": "small", "hidden": 32, "bottleneck": 16, "blocks": 1}}


class ModalityConformance:
    """Subclass, set ``modality`` and ``reader_files``, implement ``raw_spectra``."""

    modality: ClassVar[str]
    reader_files: ClassVar[list[Path]] = []
    encoders: ClassVar[list[str]] = ["masked_transformer", "mlp_autoencoder"]
    tokenizers: ClassVar[dict[str, dict[str, Any]]] = {}

    def raw_spectra(self) -> Spectra:
        """A few raw spectra (as a reader returns them) that preprocess without error."""
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def spec(self) -> Modality:
        return get_modality(self.modality)

    def _readers(self):
        return list(readers_for(self.spec.name))

    def _tokenizer_specs(self) -> dict[str, dict[str, Any]]:
        default = dict(self.spec.default_tokenizer)
        return {"default": default, "vector": {"name": "vector"}, **self.tokenizers}

    # -- modality ----------------------------------------------------------------------------------
    def test_modality_is_registered(self):
        spec = self.spec
        assert spec.name == self.modality or self.modality in spec.aliases
        assert spec.wavelength.ndim == 1 and spec.n_pixels > 1
        assert np.all(np.diff(spec.wavelength) > 0), "the model grid must increase"
        assert len(spec.stats_names) >= 1

    def test_preprocess_shapes_and_dtypes(self):
        raw = self.raw_spectra()
        out = self.spec.preprocess(raw)
        n, length = len(raw), self.spec.n_pixels
        assert out.flux.shape == (n, length) and out.flux.dtype == np.float32
        assert out.ivar.shape == (n, length) and out.ivar.dtype == np.float32
        assert out.mask.shape == (n, length) and out.mask.dtype == bool
        assert out.stats is not None and out.stats.shape == (n, len(self.spec.stats_names))
        assert np.allclose(out.wavelength, self.spec.wavelength)
        assert list(out.ids) == list(raw.ids)
        for name in ("flux", "ivar", "stats"):
            assert np.all(np.isfinite(getattr(out, name))), f"preprocess left non-finite {name}"
        assert np.all(out.ivar >= 0)
        assert np.all(out.ivar[out.mask] == 0), "masked pixels must carry zero inverse variance"

    def test_nonfinite_pixels_are_masked(self):
        raw = self.raw_spectra().subset([0])
        flux = raw.flux.copy()
        bad = np.arange(raw.flux.shape[1])[raw.flux.shape[1] // 3 :: max(raw.flux.shape[1] // 7, 1)][:4]
        flux[0, bad[:2]] = np.nan
        flux[0, bad[2:]] = np.inf
        broken = Spectra(raw.wavelength, flux, raw.ivar, raw.mask, raw.ids, raw.meta)
        out = self.spec.preprocess(broken)
        assert np.all(np.isfinite(out.flux)) and np.all(np.isfinite(out.stats))
        assert np.all(out.ivar[out.mask] == 0)

    def test_all_masked_spectrum_is_rejected_by_id(self):
        raw = self.raw_spectra().subset([0])
        dead = Spectra(raw.wavelength, np.full_like(raw.flux, np.nan), np.zeros_like(raw.ivar), np.ones_like(raw.mask), ["dead-star-7"], raw.meta)
        with pytest.raises(ValueError, match="dead-star-7"):
            self.spec.preprocess(dead)

    # -- tokenizers and encoders -------------------------------------------------------------------
    @pytest.mark.parametrize("which", ["default", "vector"])
    def test_tokenizer_lengths(self, which):
        tokenizer_spec = self._tokenizer_specs()[which]
        net = ModalityEncoder(self.modality, tokenizer_spec, {"name": "mlp_autoencoder", **_SMALL["mlp_autoencoder"]})
        out = self.spec.preprocess(self.raw_spectra())
        tokens = net.tokenize({"flux": torch.from_numpy(out.flux), "stats": torch.from_numpy(out.stats)})
        assert tokens.shape == (len(out), net.tokenizer.n_tokens, net.tokenizer.token_dim)
        assert torch.isfinite(tokens).all()

    def test_encoders_forward_backward(self):
        out = self.spec.preprocess(self.raw_spectra())
        inputs = {"flux": torch.from_numpy(out.flux), "stats": torch.from_numpy(out.stats)}
        for encoder in self.encoders:
            net = ModalityEncoder(self.modality, self.spec.tokenizer_for(encoder), {"name": encoder, **_SMALL[encoder]})
            if encoder == "masked_transformer":
                assert net.tokenizer.n_tokens > 1, "the masked transformer needs a multi-token tokenizer (set encoder_tokenizers)"
            result = net(inputs)
            assert result.pooled.shape == (len(out), net.embed_dim)
            assert result.tokens.shape[0] == len(out) and result.tokens.shape[-1] == net.embed_dim
            loss = net.encoder.reconstruct(result).pow(2).mean() + result.pooled.pow(2).mean()
            loss.backward()
            grads = [p.grad for p in net.parameters() if p.requires_grad]
            assert all(g is not None and torch.isfinite(g).all() for g in grads), f"{encoder}: missing or non-finite gradients"

    # -- readers -----------------------------------------------------------------------------------
    def test_readers_read_their_files(self):
        if not self.reader_files:
            pytest.skip("no reader files given")
        readers = self._readers()
        assert readers, f"no reader registered for {self.modality}"
        for path in self.reader_files:
            reader = next((r for r in readers if r.sniff(path)), None)
            assert reader is not None, f"no reader sniffs {path}"
            spectra = reader.read(path)
            assert len(spectra) >= 1 and spectra.flux.shape[1] == spectra.wavelength.size
            assert np.all(spectra.ivar[spectra.mask] == 0)

    def test_writers_round_trip_through_the_readers(self, tmp_path):
        registry = get_registry()
        writers = [registry.get("writer", n).build() for n in registry.names("writer")]
        writers = [w for w in writers if w.modality == self.spec.reader_modality]  # writers write the files readers read
        if not writers:
            pytest.skip(f"no writer registered for {self.modality}")
        raw = self.raw_spectra()
        readers = self._readers()
        for writer in writers:
            paths = writer.write(raw, tmp_path / writer.name)
            back = Spectra.concatenate([next(r for r in readers if r.sniff(p)).read(p) for p in paths])
            order = np.argsort(back.ids)
            expected = np.argsort(raw.ids)
            assert list(back.ids[order]) == list(raw.ids[expected])
            np.testing.assert_allclose(back.wavelength, raw.wavelength, rtol=1e-6)
            np.testing.assert_allclose(back.flux[order], raw.flux[expected], rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(back.mask[order], raw.mask[expected])

    def _check_rejects(self, tmp_path: Path, make) -> None:
        for path in self.reader_files:
            bad = tmp_path / path.name
            make(path, bad)
            for reader in self._readers():
                with pytest.raises(ReaderError) as caught:
                    reader.read(bad)
                assert str(bad) in str(caught.value), f"{reader.name}: the error must name the file"
            bad.unlink()

    def test_readers_reject_truncated_files(self, tmp_path):
        if not self.reader_files:
            pytest.skip("no reader files given")

        def truncate(src: Path, dst: Path) -> None:  # cut the (decompressed) content to a third
            if src.suffix == ".gz":
                data = gzip.decompress(src.read_bytes())
                dst.write_bytes(gzip.compress(data[: len(data) // 3]))
            else:
                data = src.read_bytes()
                dst.write_bytes(data[: len(data) // 3])

        self._check_rejects(tmp_path, truncate)

    def test_readers_reject_corrupt_bytes(self, tmp_path):
        if not self.reader_files:
            pytest.skip("no reader files given")

        def corrupt(src: Path, dst: Path) -> None:  # overwrite the middle third with noise
            data = bytearray(gzip.decompress(src.read_bytes()) if src.suffix == ".gz" else src.read_bytes())
            third = len(data) // 3
            data[third : 2 * third] = np.random.default_rng(0).integers(0, 256, third, dtype=np.uint8).tobytes()
            dst.write_bytes(gzip.compress(bytes(data)) if src.suffix == ".gz" else bytes(data))

        self._check_rejects(tmp_path, corrupt)

    def test_readers_reject_empty_files(self, tmp_path):
        if not self.reader_files:
            pytest.skip("no reader files given")
        self._check_rejects(tmp_path, lambda src, dst: dst.write_bytes(b""))

    def test_readers_reject_foreign_files(self, tmp_path):
        if not self.reader_files:
            pytest.skip("no reader files given")

        def foreign(src: Path, dst: Path) -> None:
            text = b"this is not a spectrum,\n1,2,3\n" * 50
            dst.write_bytes(gzip.compress(text) if src.suffix == ".gz" else text)

        self._check_rejects(tmp_path, foreign)
        png = tmp_path / "picture.png"
        shutil.copyfile(Path(__file__), png)
        for reader in self._readers():
            with pytest.raises(ReaderError, match="picture.png"):
                reader.read(png)
