"""``specclip embed``: catalogues of embeddings, resumable after a kill, the same bytes under torchrun."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from specclip_core.errors import CatalogueError, SpecCLIPError
from specclip_core.nn.embedders import load_embedder
from specclip_core.retrieval.catalogue import Catalogue
from specclip_core.retrieval.embed import embed_catalogue, parts_dir
from specclip_core.testing import cli_main
from specclip_core.util import sha256_file


def tree_bytes(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` by relative name: two catalogues are the same when these are equal."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def toy_files(directory: Path, n: int = 30, seed: int = 7) -> list[Path]:
    from specclip_toy import make_raw, write_file

    directory.mkdir(parents=True, exist_ok=True)
    raw = make_raw(n, seed=seed)
    return [write_file(directory / f"{raw.ids[i]}.toy.csv", raw, i) for i in range(n)]


def test_embed_a_store_holds_ids_embeddings_labels_sources_and_a_manifest(aligned_run, tmp_path):
    run, store = aligned_run
    report = embed_catalogue(run, [str(store.path)], tmp_path / "toy.zarr", modality="toy", chunk=64, progress=False)
    catalogue = Catalogue.open(tmp_path / "toy.zarr")
    assert report.n_rows == len(catalogue) == len(store) and report.stage == "align" and catalogue.width == 24
    np.testing.assert_array_equal(catalogue.ids, store.ids)
    np.testing.assert_array_equal(catalogue.labels()["temp"], store.labels(["temp"])["temp"])
    assert set(catalogue.sources) == {str(store.path.absolute())}
    direct = load_embedder(run / "align" / "encoders" / "toy").embed(store.read("toy")["flux"], store.read("toy")["stats"])
    np.testing.assert_allclose(catalogue.embeddings(), direct, rtol=1e-5, atol=1e-6)
    manifest = catalogue.manifest
    assert manifest["modality"] == "toy" and manifest["part"] == "full" and manifest["width"] == 24 and manifest["count"] == 200
    assert manifest["inputs"] == [{"path": str(store.path.absolute()), "kind": "store", "rows": 200, "fingerprint": store.fingerprint}]
    assert not parts_dir(tmp_path / "toy.zarr").exists(), "the parts are removed once merged"


def test_split_embeds_only_the_stores_rows_of_that_split(aligned_run, tmp_path):
    from specclip_core.data.splits import split_rows

    run, store = aligned_run
    test_rows = split_rows(store.ids, "test")
    assert 0 < len(test_rows) < len(store)
    options = ["--modality", "toy", "--split", "test", "--chunk", "7", "--quiet"]
    assert cli_main(["embed", str(run), str(store.path), "-o", str(tmp_path / "test.zarr"), *options]) == 0
    catalogue = Catalogue.open(tmp_path / "test.zarr")
    whole = embed_catalogue(run, [str(store.path)], tmp_path / "all.zarr", modality="toy", progress=False)
    assert whole.n_rows == len(store)
    np.testing.assert_array_equal(catalogue.ids, store.ids[test_rows])
    np.testing.assert_allclose(catalogue.embeddings(), Catalogue.open(tmp_path / "all.zarr").embeddings(test_rows), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(catalogue.labels()["temp"], store.labels(["temp"], rows=test_rows)["temp"])
    assert catalogue.manifest["split"] == "test" and catalogue.manifest["inputs"][0]["split_rows"] == len(test_rows)
    assert "split" not in Catalogue.open(tmp_path / "all.zarr").manifest
    files = toy_files(tmp_path / "files", n=3)
    with pytest.raises(SpecCLIPError, match="--split test selects rows of spectral stores, and .* is not one"):
        embed_catalogue(run, [str(files[0])], tmp_path / "f.zarr", split="test", progress=False)


def test_parts_of_a_split_embedding_and_of_a_pretrained_encoder(aligned_run, tmp_path):
    run, store = aligned_run
    widths = {}
    for part in ("shared", "private"):
        widths[part] = embed_catalogue(
            run, [str(store.path)], tmp_path / f"{part}.zarr", modality="toy_broad", part=part, progress=False
        ).width
    assert widths == {"shared": 16, "private": 8}
    full = Catalogue.open(tmp_path / "shared.zarr")
    assert full.manifest["part"] == "shared"
    pretrained = embed_catalogue(run, [str(store.path)], tmp_path / "pre.zarr", modality="toy", stage="pretrain_toy", progress=False)
    assert pretrained.stage == "pretrain_toy" and pretrained.width == 16
    with pytest.raises(SpecCLIPError, match="embeds toy into the parts \\['full'\\], not 'shared'"):
        embed_catalogue(run, [str(store.path)], tmp_path / "bad.zarr", modality="toy", stage="pretrain_toy", part="shared", progress=False)


def test_embed_files_records_each_file_and_its_sha256(aligned_run, tmp_path):
    run, _ = aligned_run
    files = toy_files(tmp_path / "files", n=12)
    (tmp_path / "files" / "broken.toy.csv").write_text("not a spectrum\n")
    report = embed_catalogue(run, [str(tmp_path / "files")], tmp_path / "files.zarr", chunk=5, progress=False)
    catalogue = Catalogue.open(tmp_path / "files.zarr")
    assert report.modality == "toy" and len(catalogue) == 12
    assert sorted(catalogue.ids) == sorted(p.name.removesuffix(".toy.csv") for p in files)
    assert {Path(s).name for s in catalogue.sources} == {p.name for p in files}
    inputs = {Path(i["path"]).name: i for i in catalogue.manifest["inputs"]}
    assert inputs[files[0].name]["sha256"] == sha256_file(files[0])
    assert [Path(item).name for item, _ in report.rejected] == ["broken.toy.csv"]
    assert catalogue.labels() == {}, "files carry no labels"


class Stop(Exception):
    pass


def _stop_after(chunks: int):
    def hook(index: int) -> None:
        if index + 1 >= chunks:
            raise Stop

    return hook


def test_an_embed_stopped_part_way_resumes_to_the_same_bytes(aligned_run, tmp_path):
    run, store = aligned_run
    embed_catalogue(run, [str(store.path)], tmp_path / "whole.zarr", modality="toy", chunk=32, progress=False)
    with pytest.raises(Stop):
        embed_catalogue(run, [str(store.path)], tmp_path / "cut.zarr", modality="toy", chunk=32, progress=False, on_commit=_stop_after(3))
    assert not (tmp_path / "cut.zarr").exists() and len(Catalogue.open(parts_dir(tmp_path / "cut.zarr") / "part-0-of-1.zarr")) == 96
    with pytest.raises(CatalogueError, match="differs in \\['chunk'\\]"):
        embed_catalogue(run, [str(store.path)], tmp_path / "cut.zarr", modality="toy", chunk=50, resume=True, progress=False)
    report = embed_catalogue(run, [str(store.path)], tmp_path / "cut.zarr", modality="toy", chunk=32, resume=True, progress=False)
    assert report.resumed_rows == 96 and report.n_rows == 200
    assert tree_bytes(tmp_path / "cut.zarr") == tree_bytes(tmp_path / "whole.zarr")


KILLER = """
import os, signal, sys
from specclip_core.retrieval.embed import embed_catalogue

def kill(index):
    if index == 2:
        os.kill(os.getpid(), signal.SIGKILL)

embed_catalogue(sys.argv[1], [sys.argv[2]], sys.argv[3], chunk=4, progress=False, on_commit=kill)
"""


def test_kill_9_during_embed_from_files_then_resume_loses_no_row(aligned_run, tmp_path):
    run, _ = aligned_run
    toy_files(tmp_path / "files", n=14)
    assert cli_main(["embed", str(run), str(tmp_path / "files"), "-o", str(tmp_path / "whole.zarr"), "--chunk", "4", "--quiet"]) == 0
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(run), str(tmp_path / "files"), str(tmp_path / "cut.zarr")], capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(Catalogue.open(parts_dir(tmp_path / "cut.zarr") / "part-0-of-1.zarr")) == 12
    assert (
        cli_main(["embed", str(run), str(tmp_path / "files"), "-o", str(tmp_path / "cut.zarr"), "--chunk", "4", "--resume", "--quiet"]) == 0
    )
    assert len(Catalogue.open(tmp_path / "cut.zarr")) == 14
    assert tree_bytes(tmp_path / "cut.zarr") == tree_bytes(tmp_path / "whole.zarr")


def test_two_processes_under_torchrun_write_the_bytes_of_one(aligned_run, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this python")
    run, store = aligned_run
    common = ["embed", str(run), str(store.path), "--modality", "toy", "--chunk", "24", "--threads", "1", "--quiet"]
    assert cli_main([*common, "-o", str(tmp_path / "one.zarr")]) == 0
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "specclip_core.cli", *common, "-o", str(tmp_path / "two.zarr")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 1: embedded 96 rows" in done.stdout
    assert tree_bytes(tmp_path / "two.zarr") == tree_bytes(tmp_path / "one.zarr")


def test_bad_inputs_are_clear_errors(aligned_run, tmp_path, capsys):
    run, store = aligned_run
    out = str(tmp_path / "c.zarr")
    cases = [
        (["embed", str(tmp_path / "nowhere"), str(store.path), "-o", out], "not a run directory"),
        (["embed", str(run), str(tmp_path / "missing.toy.csv"), "-o", out], "missing.toy.csv: no such file or directory"),
        (
            ["embed", str(run), str(store.path), "-o", out, "--modality", "toy", "--stage", "pretrain_toy_broad"],
            "stage 'pretrain_toy_broad' has no finished embedder for 'toy'",
        ),
        (["embed", str(run), str(store.path), "-o", out], "cannot tell which modality"),
        (["embed", str(run), str(store.path), "-o", str(store.path), "--modality", "toy"], "already exists"),
        (["embed", str(run), str(store.path), "-o", str(store.path), "--modality", "toy", "--overwrite"], "is not an embedding catalogue"),
    ]
    for argv, message in cases:
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    shutil.rmtree(tmp_path / "c.zarr", ignore_errors=True)


def test_resume_needs_the_same_number_of_processes(aligned_run, tmp_path):
    run, store = aligned_run
    output = tmp_path / "c.zarr"
    with pytest.raises(Stop):
        embed_catalogue(run, [str(store.path)], output, modality="toy", chunk=64, progress=False, on_commit=_stop_after(1))
    os.replace(parts_dir(output) / "part-0-of-1.zarr", parts_dir(output) / "part-0-of-2.zarr")
    with pytest.raises(CatalogueError, match="ran as 2 process\\(es\\) \\(part-0-of-2.zarr\\), this one as 1; resume it with as many"):
        embed_catalogue(run, [str(store.path)], output, modality="toy", chunk=64, resume=True, progress=False)


def test_a_file_that_fails_part_way_is_left_out_whole(aligned_run, tmp_path, monkeypatch):
    from specclip_core.errors import ReaderError
    from specclip_toy import ToyReader

    run, _ = aligned_run
    files = toy_files(tmp_path / "files", n=6)
    whole = ToyReader.read_chunks

    def two_pieces_then_a_bad_one(self, path, rows):
        yield from whole(self, path, rows)
        if Path(path) == files[2]:
            yield from whole(self, path, rows)
            raise ReaderError(path, "truncated after two pieces")

    monkeypatch.setattr(ToyReader, "read_chunks", two_pieces_then_a_bad_one)
    committed = []
    report = embed_catalogue(run, [str(tmp_path / "files")], tmp_path / "c.zarr", chunk=1, progress=False, on_commit=committed.append)
    catalogue = Catalogue.open(tmp_path / "c.zarr")
    assert len(committed) == 7, "the bad file's two pieces were embedded and committed before it failed"
    assert files[2].name.removesuffix(".toy.csv") not in set(catalogue.ids) and len(catalogue) == 5
    assert [(Path(item).name, reason) for item, reason in report.rejected] == [(files[2].name, "truncated after two pieces")]


def test_width_keeps_a_prefix_of_an_ordered_embedding_and_says_so(ordered_run, tmp_path):
    from specclip_core.retrieval.index import build_index, load_index
    from specclip_core.retrieval.query import resolve_queries, search_hits

    run, store = ordered_run
    for modality in ("toy", "toy_broad"):
        assert cli_main(["embed", str(run), str(store.path), "-o", str(tmp_path / f"{modality}.zarr"), "--modality", modality, "--part", "shared", "--width", "4", "--quiet"]) == 0
    catalogue = Catalogue.open(tmp_path / "toy.zarr")
    shared = load_embedder(run / "align" / "encoders" / "toy").embed(store.read("toy")["flux"], store.read("toy")["stats"], part="shared")
    assert catalogue.width == 4 and shared.shape[1] == 16
    np.testing.assert_allclose(catalogue.embeddings(), shared[:, :4], rtol=1e-5, atol=1e-6)
    assert catalogue.manifest["width"] == 4 and catalogue.manifest["prefix"] == {"width": 4, "of": 16, "ordered_widths": [4, 8, 16]}
    card = build_index(tmp_path / "toy_broad.zarr", tmp_path / "broad.index")
    assert card["width"] == 4 and card["catalogue"]["prefix"] == {"width": 4, "of": 16, "ordered_widths": [4, 8, 16]}
    queries = resolve_queries(load_index(tmp_path / "broad.index"), list(catalogue.ids[:5]), by="id", from_path=str(tmp_path / "toy.zarr"))
    assert queries.vectors.shape == (5, 4) and len(search_hits(load_index(tmp_path / "broad.index"), queries, 3)) == 15
    embed_catalogue(run, [str(store.path)], tmp_path / "whole.zarr", modality="toy", part="shared", progress=False)
    with pytest.raises(CatalogueError, match="the queries keep all dimensions of the embedding, the index the first 4; embed both with the same --width"):
        resolve_queries(load_index(tmp_path / "broad.index"), ["toy-0-1"], by="id", from_path=str(tmp_path / "whole.zarr"))


def test_width_errors_name_the_stage_and_what_it_needs(aligned_run, ordered_run, tmp_path, capsys):
    plain, store = aligned_run
    ordered, _ = ordered_run
    out = str(tmp_path / "c.zarr")
    base = [str(store.path), "-o", out, "--modality", "toy"]
    cases = [
        (["embed", str(plain), *base, "--part", "shared", "--width", "4"], "stage 'align' was not trained with ordered embeddings (an align stage with 'ordered: {widths: [...]}')"),
        (["embed", str(ordered), *base, "--stage", "pretrain_toy", "--width", "4"], "stage 'pretrain_toy' was not trained with ordered embeddings"),
        (["embed", str(ordered), *base, "--width", "4"], "--width keeps a prefix of the shared part, not of the 'full' part; pass --part shared"),
        (["embed", str(ordered), *base, "--part", "private", "--width", "4"], "not of the 'private' part"),
        (["embed", str(ordered), *base, "--part", "shared", "--width", "17"], "--width must be in 1..16 (the shared width), got 17"),
    ]
    for argv, message in cases:
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "c.zarr").exists()
