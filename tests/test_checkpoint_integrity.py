"""Weights and checkpoints carry their sha256 and are verified before loading: a truncated, emptied,
random or flipped file fails with a message naming it and what to do; a good one loads exactly."""

from __future__ import annotations

import pytest
import torch

from specclip_core.errors import SpecCLIPError
from specclip_core.train.checkpoint import load_checkpoint, load_tensors, load_weights, save_checkpoint, save_weights


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))


def _damaged(data: bytes) -> dict[str, bytes]:
    flips = {}
    for name, position in (("flip-data", len(data) - 5), ("flip-header", 40), ("flip-digest", data.find(b'"sha256"') + 15)):
        copy = bytearray(data)
        copy[position] ^= 0x01
        flips[name] = bytes(copy)
    return {"truncated": data[: len(data) // 2], "empty": b"", "random": torch.randint(0, 255, (500,), dtype=torch.uint8).numpy().tobytes(), **flips}


def test_good_weights_round_trip(tmp_path):
    model, other = _model(), torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    save_weights(model, tmp_path / "w.safetensors", metadata={"note": "x"})
    load_weights(other, tmp_path / "w.safetensors")
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert load_tensors(tmp_path / "w.safetensors")[1] == {"note": "x"}


def test_every_damaged_weights_file_is_refused_by_name(tmp_path):
    save_weights(_model(), tmp_path / "w.safetensors")
    for name, data in _damaged((tmp_path / "w.safetensors").read_bytes()).items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(SpecCLIPError, match="rerun the stage") as caught:
            load_weights(_model(), path)
        assert str(path) in str(caught.value), name
    with pytest.raises(SpecCLIPError, match="cannot read the weights"):
        load_weights(_model(), tmp_path / "absent.safetensors")


def test_a_damaged_checkpoint_is_refused_with_the_advice(tmp_path):
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(3, 8)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "c.safetensors", model, optimizer, {"epoch": 3})
    assert load_checkpoint(tmp_path / "c.safetensors", _model(), torch.optim.AdamW(_model().parameters())) == {"epoch": 3}
    data = bytearray((tmp_path / "c.safetensors").read_bytes())
    data[-3] ^= 0x80
    (tmp_path / "c.safetensors").write_bytes(bytes(data))
    with pytest.raises(SpecCLIPError, match="damaged weights file.*resume from the previous"):
        load_checkpoint(tmp_path / "c.safetensors", _model(), torch.optim.AdamW(_model().parameters()), advice="resume from the previous")


def test_the_loop_keeps_the_previous_checkpoint_and_names_it(toy_store, tmp_path):
    from specclip_core.components import create_component
    from specclip_core.data.dataset import StoreDataset
    from specclip_core.nn.modality_encoder import ModalityEncoder
    from specclip_core.spec import TrainSpec
    from specclip_core.train.loop import CHECKPOINT, PREVIOUS, Trainer

    def _trainer(store, run_dir):
        torch.manual_seed(0)
        objectives = [create_component("objective", {"name": "masked_modeling", "n_chunks": 2, "chunk_tokens": 3})]
        train, val = StoreDataset(store, ["toy"], split="train"), StoreDataset(store, ["toy"], split="val")
        config = TrainSpec(epochs=4, batch_size=64, lr=3e-3, patience=None, device="cpu")
        return Trainer(ModalityEncoder("toy"), objectives, train, val, config, run_dir, seed=7, progress=False)

    _trainer(toy_store, tmp_path / "run").fit(until_epoch=2)
    assert (tmp_path / "run" / PREVIOUS).exists()
    (tmp_path / "run" / CHECKPOINT).write_bytes(b"\0" * 10)
    with pytest.raises(SpecCLIPError, match=f"{CHECKPOINT}: not a specclip weights file.*replace it with .*{PREVIOUS}"):
        _trainer(toy_store, tmp_path / "run").fit(resume=True)
    (tmp_path / "run" / PREVIOUS).replace(tmp_path / "run" / CHECKPOINT)
    assert _trainer(toy_store, tmp_path / "run").fit(resume=True).epochs_completed == 4
