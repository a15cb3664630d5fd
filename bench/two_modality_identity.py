"""Run the same 2-modality toy CLIP-pr spec (pretrain both, align, ridge heads on the aligned toy
embedding) on one store with whichever specclip is importable; write keys and results to OUT.

    python bench/two_modality_identity.py STORE RUN_DIR OUT.json   # the toy plugin on PYTHONPATH

Run it with two checkouts' virtual environments on the same STORE (made by the first run) and
compare the two OUT files: equal keys and equal results mean the two codes align two modalities
identically."""
import json
import sys
from pathlib import Path

from specclip_core.runner import run_spec
from specclip_core.spec import validate_spec

store, run_dir, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
if not store.exists():
    from specclip_toy import make_paired_store

    make_paired_store(store, n=300)
train = {"epochs": 2, "batch_size": 32, "device": "cpu"}
decoder = {"name": "mlp_decoder", "multipliers": [2.0]}
stages = {
    "pretrain_toy": {"kind": "pretrain", "modality": "toy", "objectives": [{"name": "masked_modeling", "n_chunks": 2, "chunk_tokens": 3}], "train": train},
    "pretrain_toy_broad": {"kind": "pretrain", "modality": "toy_broad", "train": train},
    "align": {
        "kind": "align", "needs": ["pretrain_toy", "pretrain_toy_broad"],
        "projections": {"toy": {"name": "cross_attention"}, "toy_broad": {"name": "mlp", "hidden": 32}},
        "shared_dim": 16, "reconstruction": decoder, "prediction": decoder,
        "train": {"epochs": 5, "batch_size": 64, "lr": 1e-3, "drop_last": True, "device": "cpu"},
    },
    "heads": {"kind": "heads", "needs": ["align"], "modality": "toy", "labels": ["temp"], "head": {"name": "ridge"}},
}
spec = validate_spec({"name": "identity", "run_dir": str(run_dir), "data": {"store": str(store)}, "stages": stages})
manifests = run_spec(spec, progress=False, log=lambda *_: None)
summary = manifests["align"]["summary"]
result = {
    "keys": {name: m["key"] for name, m in manifests.items()},
    "aligned": summary["aligned"],
    "baseline": summary["baseline_before_training"],
    "final_val_loss": summary.get("best_val_loss"),
    "heads": manifests["heads"]["summary"]["test"],
}
out.write_text(json.dumps(result, indent=1, sort_keys=True))
