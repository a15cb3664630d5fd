import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from specclip_core.components import create_component
from specclip_core.data.dataset import StoreDataset
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.spec import TrainSpec
from specclip_core.train.loop import CHECKPOINT, Trainer
from specclip_core.train.schedule import lr_at

TRAIN = TrainSpec(epochs=4, batch_size=32, lr=3e-3, warmup_fraction=0.2, patience=None, device="cpu")


def _trainer(store, run_dir, config=TRAIN, seed=7):
    torch.manual_seed(0)
    network = ModalityEncoder("toy")
    objectives = [create_component("objective", {"name": "masked_modeling", "n_chunks": 2, "chunk_tokens": 3})]
    train, val = StoreDataset(store, ["toy"], split="train"), StoreDataset(store, ["toy"], split="val")
    return Trainer(network, objectives, train, val, config, run_dir, seed=seed, progress=False)


def _checkpoint_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(run_dir / CHECKPOINT)).items() if k.startswith("model.")}


def test_two_plus_two_epochs_with_resume_equal_four(toy_store, tmp_path):
    straight = _trainer(toy_store, tmp_path / "straight").fit()
    assert straight.epochs_completed == 4
    first = _trainer(toy_store, tmp_path / "resumed").fit(until_epoch=2)
    assert first.epochs_completed == 2
    second = _trainer(toy_store, tmp_path / "resumed").fit(resume=True)
    assert second.epochs_completed == 4 and second.steps == straight.steps
    a, b = _checkpoint_weights(tmp_path / "straight"), _checkpoint_weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    with open(tmp_path / "resumed" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"]), "the toy model should learn"


def test_early_stopping_restores_the_best_weights(toy_store, tmp_path):
    config = TRAIN.model_copy(update={"epochs": 30, "lr": 0.3, "patience": 2, "warmup_fraction": 0.0})
    trainer = _trainer(toy_store, tmp_path / "run", config)
    result = trainer.fit()
    assert result.stopped_early and result.epochs_completed < 30
    assert result.epochs_completed == result.best_epoch + 2
    best = load_file(str(tmp_path / "run" / "best.safetensors"))
    for key, value in trainer.network.state_dict().items():
        torch.testing.assert_close(value, best[key])


def test_nonfinite_loss_stops_with_a_clear_error(toy_store, tmp_path):
    trainer = _trainer(toy_store, tmp_path / "run")
    trainer.objectives = [lambda network, batch: {"bad": network(batch["toy"]).pooled.sum() * float("nan")}]
    with pytest.raises(FloatingPointError, match="epoch 1, step 0"):
        trainer.fit()


def test_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 1.0, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] == pytest.approx(0.1, abs=1e-3)


DDP_SCRIPT = textwrap.dedent(
    """
    import hashlib, os, sys
    import torch
    import torch.distributed as dist
    from specclip_core.components import create_component
    from specclip_core.data.dataset import StoreDataset
    from specclip_core.nn.modality_encoder import ModalityEncoder
    from specclip_core.spec import TrainSpec
    from specclip_core.train.loop import Trainer

    torch.manual_seed(0)
    network = ModalityEncoder("toy")
    objectives = [create_component("objective", {"name": "masked_modeling", "n_chunks": 2, "chunk_tokens": 3})]
    store = sys.argv[1]
    trainer = Trainer(network, objectives, StoreDataset(store, ["toy"], split="train"), StoreDataset(store, ["toy"], split="val"),
                      TrainSpec(epochs=1, batch_size=16, lr=1e-3, device="cpu", patience=None), sys.argv[2], progress=False)
    assert trainer.dist.world_size == 2 and dist.get_backend() == "gloo"
    trainer.fit()
    digest = hashlib.sha256(b"".join(v.detach().numpy().tobytes() for v in network.state_dict().values())).hexdigest()
    with open(os.path.join(sys.argv[2], f"rank{dist.get_rank()}.sha256"), "w") as f:
        f.write(digest)
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_ddp_two_processes_agree_on_weights(toy_store, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(toy_store.path), str(run_dir)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    digests = {(run_dir / f"rank{r}.sha256").read_text() for r in (0, 1)}
    assert len(digests) == 1, "ranks disagree on the final weights"
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2, "only rank 0 writes metrics"
    assert (run_dir / CHECKPOINT).exists()


def test_denoising_reconstruction_adds_noise_only_in_training(toy_store):
    network = ModalityEncoder("toy", {"name": "vector"}, {"name": "mlp_autoencoder", "hidden": 16, "bottleneck": 8, "blocks": 1})
    objective = create_component("objective", {"name": "reconstruction", "noise_scale": 3.0})
    batch = StoreDataset(toy_store, ["toy"]).__getitems__(list(range(16)))
    network.eval()
    assert objective(network, batch)["reconstruction_mse"].item() == objective(network, batch)["reconstruction_mse"].item()
    network.train()
    torch.manual_seed(1)
    first = objective(network, batch)["reconstruction_mse"].item()
    torch.manual_seed(2)
    assert objective(network, batch)["reconstruction_mse"].item() != first
