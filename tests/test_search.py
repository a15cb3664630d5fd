"""``specclip search``: queries by id, row and file; in-modal and cross-modal; the hits table and plot."""

import csv
import shutil

import numpy as np
import pytest

from specclip_core.errors import CatalogueError, SpecCLIPError
from specclip_core.retrieval.catalogue import Catalogue
from specclip_core.retrieval.embed import embed_catalogue
from specclip_core.retrieval.index import build_index, load_index
from specclip_core.retrieval.query import resolve_queries, search_hits
from specclip_core.retrieval.search import retrieval_accuracy
from specclip_core.testing import cli_main


@pytest.fixture(scope="module")
def built(aligned_run, tmp_path_factory):
    """Catalogues and flat indexes of the toy run: both modalities' shared parts, toy's full embedding."""
    run, store = aligned_run
    root = tmp_path_factory.mktemp("search")
    out = {"run": run, "store": store, "root": root}
    for name, modality, part in (("toy", "toy", "shared"), ("broad", "toy_broad", "shared"), ("toy_full", "toy", "full")):
        embed_catalogue(run, [str(store.path)], root / f"{name}.zarr", modality=modality, part=part, progress=False)
        build_index(root / f"{name}.zarr", root / f"{name}.index")
        out[name] = root / f"{name}.index"
    return out


def read_hits(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_search_by_id_and_by_row_in_modal(built, tmp_path):
    hits = tmp_path / "hits.csv"
    assert cli_main(["search", str(built["toy"]), "toy-0-5", "toy-0-9", "-k", "4", "-o", str(hits)]) == 0
    rows = read_hits(hits)
    assert list(rows[0]) == [
        "query_id",
        "query_modality",
        "query_source",
        "rank",
        "neighbour_id",
        "modality",
        "cosine",
        "row",
        "temp",
        "source",
    ]
    assert len(rows) == 8 and [r["rank"] for r in rows[:4]] == ["1", "2", "3", "4"]
    assert rows[0]["neighbour_id"] == "toy-0-5" and float(rows[0]["cosine"]) == pytest.approx(1.0, abs=1e-5)
    cosines = [float(r["cosine"]) for r in rows[:4]]
    assert cosines == sorted(cosines, reverse=True)
    temp = built["store"].labels(["temp"])["temp"]
    assert all(float(r["temp"]) == pytest.approx(temp[int(r["row"])], rel=1e-5) for r in rows)
    assert rows[0]["source"] == str(built["store"].path.absolute())
    by_row = tmp_path / "by_row.csv"
    assert cli_main(["search", str(built["toy"]), "5", "9", "--by", "row", "-k", "4", "-o", str(by_row)]) == 0
    assert read_hits(by_row) == rows


def test_search_by_file_embeds_it_like_the_catalogue(built, tmp_path):
    from specclip_toy import make_raw, write_file

    raw = make_raw(6, seed=11)
    files = [write_file(tmp_path / f"{raw.ids[i]}.toy.csv", raw, i) for i in range(6)]
    embed_catalogue(built["run"], [str(tmp_path)], tmp_path / "files.zarr", part="shared", progress=False)
    build_index(tmp_path / "files.zarr", tmp_path / "files.index")
    hits = tmp_path / "hits.csv"
    assert cli_main(["search", str(tmp_path / "files.index"), *map(str, files[:3]), "-k", "2", "-o", str(hits)]) == 0
    top = [r for r in read_hits(hits) if r["rank"] == "1"]
    assert [r["neighbour_id"] for r in top] == [r["query_id"] for r in top] == list(raw.ids[:3])
    assert all(float(r["cosine"]) == pytest.approx(1.0, abs=1e-5) for r in top)
    assert top[0]["query_source"] == str(files[0].absolute())


def test_cross_modal_search_finds_the_same_star_in_the_other_modality(built, tmp_path):
    index = load_index(built["broad"])
    ids = list(Catalogue.open(built["root"] / "toy.zarr").ids)
    queries = resolve_queries(index, ids, by="id", from_path=str(built["root"] / "toy.zarr"))
    assert queries.modality == "toy" and queries.vectors.shape == (200, 16)
    table = search_hits(index, queries, k=10)
    found = {(h["query_id"], h["neighbour_id"]) for h in table}
    top10 = np.mean([(sid, sid) in found for sid in ids])
    expected = retrieval_accuracy(queries.vectors, index.catalogue.embeddings(), ks=(10,))["top10"]
    assert top10 == expected, "the same fraction as the align stage's own retrieval metric"
    assert top10 > 0.1, f"the true pair is in the top 10 of 200 for {top10:.2f} of the stars (chance: 0.05)"
    assert {h["modality"] for h in table} == {"toy_broad"} and {h["query_modality"] for h in table} == {"toy"}
    from specclip_toy import make_raw, write_file

    file = write_file(tmp_path / "q.toy.csv", make_raw(1, seed=3))
    hits = tmp_path / "hits.csv"
    assert cli_main(["search", str(built["broad"]), str(file), "-k", "3", "-o", str(hits), "--plot", str(tmp_path / "fig.png")]) == 0
    rows = read_hits(hits)
    assert len(rows) == 3 and rows[0]["query_modality"] == "toy" and rows[0]["modality"] == "toy_broad"
    assert (tmp_path / "fig.png").stat().st_size > 10_000


def test_plot_draws_query_and_neighbours_in_modal(built, tmp_path):
    assert cli_main(["search", str(built["toy"]), "toy-0-1", "-o", str(tmp_path / "h.csv"), "--plot", str(tmp_path / "fig.png")]) == 0
    assert (tmp_path / "fig.png").stat().st_size > 10_000


def test_cross_modal_needs_the_shared_part_of_one_align_stage(built, tmp_path):
    index = load_index(built["broad"])
    with pytest.raises(CatalogueError, match="compares the shared \\(aligned\\) parts"):
        resolve_queries(index, ["toy-0-1"], by="id", from_path=str(built["root"] / "toy_full.zarr"))
    embed_catalogue(built["run"], [str(built["store"].path)], tmp_path / "pre.zarr", modality="toy", stage="pretrain_toy", progress=False)
    with pytest.raises(CatalogueError, match="needs both embedded by one align stage"):
        resolve_queries(index, ["toy-0-1"], by="id", from_path=str(tmp_path / "pre.zarr"))
    with pytest.raises(CatalogueError, match="embed both with the same run, stage and part"):
        resolve_queries(load_index(built["toy_full"]), ["toy-0-1"], by="id", from_path=str(built["root"] / "toy.zarr"))


def test_bad_queries_are_clear_errors(built, tmp_path, capsys):
    out = str(tmp_path / "h.csv")
    cases = [
        (["search", str(tmp_path / "no.index"), "toy-0-1", "-o", out], "no index here"),
        (["search", str(built["toy"]), "no-such-star", "-o", out], "no row with id no-such-star"),
        (["search", str(built["toy"]), "999", "--by", "row", "-o", out], "no row 999 (rows are 0..199)"),
        (["search", str(built["toy"]), "x", "--by", "row", "-o", out], "--by row takes row numbers"),
        (["search", str(built["toy"]), str(tmp_path / "gone.toy.csv"), "--by", "file", "-o", out], "gone.toy.csv: no such file"),
        (["search", str(built["toy"]), "toy-0-1", "-k", "0", "-o", out], "-k must be at least 1"),
    ]
    for argv, message in cases:
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    with pytest.raises(CatalogueError, match="queries are 24 wide, the index holds 16-wide"):
        load_index(built["toy"]).search(np.zeros((1, 24), np.float32), 3)


def test_plot_without_the_spectra_says_so(built, tmp_path):
    moved = tmp_path / "pair.zarr"
    shutil.copytree(built["store"].path, moved)
    embed_catalogue(built["run"], [str(moved)], tmp_path / "c.zarr", modality="toy", part="shared", progress=False)
    build_index(tmp_path / "c.zarr", tmp_path / "c.index")
    shutil.rmtree(moved)
    with pytest.raises(SpecCLIPError, match="no spectrum to plot"):
        from specclip_core.retrieval.query import neighbour_panels

        index = load_index(tmp_path / "c.index")
        queries = resolve_queries(index, ["toy-0-1"], by="id")
        neighbour_panels(queries, search_hits(index, queries, 3), index)


def test_plot_labels_simulated_spectra(monkeypatch):
    from specclip_core.report import neighbours

    monkeypatch.setattr(neighbours, "_save", lambda fig, out: fig)
    wavelength = np.linspace(4000, 5000, 50)
    real, simulated = (wavelength, np.ones(50), False), (wavelength, np.ones(50), True)
    panel = neighbours.NeighbourPanel("a", "toy", "toy_broad", real, simulated, [("b", 0.9, simulated), ("c", 0.8, real)])
    fig = neighbours.plot_neighbours([panel], "unused.png")
    labels = [text.get_text() for axis in fig.axes for text in axis.get_legend().get_texts()]
    assert labels == ["query a (toy)", "query star in toy_broad, simulated", "#1 b (cos 0.900, simulated)", "#2 c (cos 0.800)"]
