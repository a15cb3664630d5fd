"""The catalogue's LAMOST run specs validate and describe the networks the paper describes (nothing is trained)."""

from __future__ import annotations

import pytest

from specclip_core.api import ModalityEncoder, load_spec


@pytest.mark.parametrize("name, size, parameters", [("lamost-small", "small", (0.8e6, 0.85e6)), ("lamost-paper", "paper", (42.6e6, 42.8e6))])
def test_lamost_specs_validate_and_build_their_encoder(name, size, parameters):
    spec = load_spec(name, {"settings.lamost_dr10": "/data/dr10", "settings.lamost_dr8_repeats": "/data/dr8"}, check_paths=False)
    assert spec.stages["ingest"].config.paths == ["/data/dr10/spectra"] and spec.stages["ingest"].config.labels == "/data/dr10/labels.csv"
    kinds = {stage: s.kind for stage, s in spec.stages.items()}
    assert kinds["ingest"] == kinds["ingest_dr8"] == "ingest" and kinds["pretrain"] == "pretrain" and kinds["evaluate"] == "evaluate"
    assert {spec.stages[s].config.input for s in ("heads_embedding", "heads_spectra")} == {"embedding", "spectra"}
    assert spec.stages["ridge_spectra"].config.head.name == "ridge"
    assert spec.stages["neighbours_sky"].config.sky_match_arcsec == 3 and spec.stages["neighbours_groupid"].config.group == "GroupID"
    assert spec.stages["neighbours_sky"].needs == ["pretrain", "ingest_dr8"]
    pretrain = spec.stages["pretrain"].config
    assert pretrain.encoder.name == "masked_transformer" and pretrain.encoder.model_dump()["size"] == size
    assert pretrain.objectives[0].model_dump() == {"name": "masked_modeling", "n_chunks": 6, "chunk_tokens": 20}
    network = ModalityEncoder(pretrain.modality, pretrain.tokenizer.model_dump(), pretrain.encoder.model_dump())
    assert network.tokenizer.n_tokens == 147 and network.tokenizer.token_dim == 20  # 146 windows + the stats token
    n = sum(p.numel() for p in network.parameters())
    assert parameters[0] < n < parameters[1], n
