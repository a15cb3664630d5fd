"""A corpus of bad specs and bad ``--set`` overrides: ``specclip validate`` meets each with an exit
status of 1 or 2 and a message that names the file, the field or the ``--set`` key and says what is
wrong; never a traceback, never a hang, never a spec that validates with a silently changed value."""

from __future__ import annotations

import os

import pytest

from specclip_core.spec import MAX_SPEC_VALUES
from specclip_core.testing import Tally, cli_main, deadline

GOOD = """name: toy-run
seed: 0
data: {store: STORE}
stages:
  pretrain:
    kind: pretrain
    modality: toy
    encoder: {name: masked_transformer, depth: 1, width: 16, heads: 2}
    train: {epochs: 1, batch_size: 32}
"""


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["name: bomb", "a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _cases(tmp_path, store):
    """(case, argv, words the message must hold) for every bad input."""
    good = GOOD.replace("STORE", str(store))

    def spec(name, content):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    ok = spec("good.yaml", good)
    cases = [
        ("latin-1 bytes", [spec("latin1.yaml", good.replace("toy-run", "caf\xe9").encode("latin-1"))], ["not UTF-8 text", "byte 0xe9 at line 1"]),
        ("utf-16", [spec("utf16.yaml", good.encode("utf-16"))], ["not UTF-8 text"]),
        ("random bytes", [spec("random.yaml", os.urandom(2000) + b"\xff")], ["not UTF-8 text"]),
        ("NUL bytes", [spec("nul.yaml", good.replace("seed: 0", "seed: \x00"))], ["cannot parse yaml"]),
        ("alias bomb", [spec("bomb.yaml", _alias_bomb())], ["aliases expand it to", f"{MAX_SPEC_VALUES:,}"]),
        ("recursive anchor", [spec("recursive.yaml", "name: r\nx: &a [1, *a]\n")], ["contains itself"]),
        ("undefined alias", [spec("undefined.yaml", "name: u\nx: *nowhere\n")], ["cannot parse yaml", "undefined alias"]),
        ("duplicate key", [spec("duplicate.yaml", good.replace("seed: 0\n", "seed: 0\nseed: 7\n"))], ["key 'seed' is given twice", "line 3"]),
        ("deep nesting", [spec("deep.yaml", "name: d\nx: " + "[" * 20000 + "]" * 20000 + "\n")], ["cannot parse yaml"]),
        ("bad yaml", [spec("unclosed.yaml", "name: [x\nstages: {}\n")], ["cannot parse yaml"]),
        ("bad toml", [spec("bad.toml", "name = \n")], ["cannot parse toml"]),
        ("empty file", [spec("empty.yaml", "")], ["expected a mapping at the top level"]),
        ("a list", [spec("list.yaml", "- name: x\n")], ["expected a mapping at the top level, got list"]),
        ("unknown key", [spec("unknown.yaml", good + "colour: red\n")], ["colour", "unknown key"]),
        ("wrong type", [spec("type.yaml", good.replace("epochs: 1", "epochs: six"))], ["stages.pretrain.train.epochs"]),
        ("unknown stage kind", [spec("kind.yaml", good.replace("kind: pretrain", "kind: pretrian"))], ["unknown stage 'pretrian'"]),
        ("missing store", [spec("store.yaml", GOOD.replace("STORE", str(tmp_path / "nowhere.zarr")))], ["data.store", "nowhere.zarr: no such file or directory"]),
        (
            "missing ingest input",
            [spec("ingest.yaml", good + f"  ingest: {{kind: ingest, modality: toy, paths: [{tmp_path / 'gone'}], labels: {tmp_path / 'gone.csv'}}}\n")],
            ["stages.ingest.paths.0", "gone: no such file or directory", "stages.ingest.labels"],
        ),
        ("misspelt label", [spec("label.yaml", good + "  heads: {kind: heads, modality: toy, input: spectra, labels: [tempp]}\n")], ["'tempp' is not a label column"]),
        (
            "heads input written the old way",
            [spec("old_input.yaml", good + "  heads: {kind: heads, modality: toy, input: spectra_ivar, labels: [temp]}\n")],
            ["stages.heads", "input: spectra with errors_input: inverse_sigma"],
        ),
        (
            "heads errors_input written the old way",
            [spec("old_errors.yaml", good + "  heads: {kind: heads, modality: toy, input: spectra, errors_input: true, labels: [temp]}\n")],
            ["stages.heads", "errors_input: sigma"],
        ),
        ("extends nothing", [spec("extends.yaml", "extends: no-such-spec\nname: e\n")], ["extends", "no-such-spec"]),
        ("extends itself", [spec("self.yaml", "extends: self.yaml\nname: s\n")], ["extends itself"]),
        ("undeclared setting", [spec("undeclared.yaml", good.replace("seed: 0", "seed: ${lucky}"))], ["${lucky} names no setting"]),
        ("missing file", [str(tmp_path / "absent.yaml")], ["absent.yaml", "no such file"]),
        ("directory", [str(tmp_path / "folder.yaml")], ["folder.yaml", "a directory"]),
        ("FIFO", [str(tmp_path / "fifo.yaml")], ["fifo.yaml", "FIFO"]),
        ("dangling link", [str(tmp_path / "dangling.yaml")], ["dangling.yaml", "dangling symbolic link"]),
        ("link loop", [str(tmp_path / "loop.yaml")], ["loop.yaml", "symbolic link loop"]),
        ("--set into a number", [ok, "--set", "seed.x=1"], ["--set seed.x: seed is 0 (int), not a mapping"]),
        ("--set bad value", [ok, "--set", "k=[1"], ["--set k: '[1' is not a YAML value"]),
        ("--set without =", [ok, "--set", "seed"], ["--set expects KEY=VALUE, got 'seed'"]),
        ("--set empty part", [ok, "--set", "stages..epochs=2"], ["--set stages..epochs: expected KEY or KEY.SUBKEY"]),
        ("--set unknown field", [ok, "--set", "stages.pretrain.train.epoch=2"], ["stages.pretrain.train.epoch", "unknown key"]),
        ("--set wrong type", [ok, "--set", "stages.pretrain.train.epochs=many"], ["stages.pretrain.train.epochs"]),
    ]
    (tmp_path / "folder.yaml").mkdir()
    os.mkfifo(tmp_path / "fifo.yaml")
    os.symlink(tmp_path / "gone.yaml", tmp_path / "dangling.yaml")
    os.symlink(tmp_path / "loop.yaml", tmp_path / "loop.yaml")
    return ok, cases


def test_every_bad_spec_is_met_with_a_message_naming_what_is_wrong(toy_store, tmp_path, capsys):
    ok, cases = _cases(tmp_path, toy_store.path)
    assert cli_main(["validate", ok]) == 0, capsys.readouterr().err
    capsys.readouterr()
    tally = Tally("specs")
    for case, argv, words in cases:
        try:
            with deadline(30):
                status = cli_main(["validate", *argv])
        except TimeoutError:
            tally.outcome(case, "hung")
            continue
        except SystemExit as exit_:  # argparse's own errors
            status = exit_.code
        except Exception as error:  # noqa: BLE001 - counting crashes is the point
            tally.notes.append(f"{case}: {type(error).__name__}: {error}")
            tally.outcome(case, "crashed")
            continue
        message = capsys.readouterr().err
        if status == 0:
            tally.outcome(case, "silently_wrong")
        elif status in (1, 2) and all(word in message for word in words) and "Traceback" not in message:
            tally.outcome(case, "right_reason")
        else:
            tally.notes.append(f"{case}: exit {status}: {message[-300:]}")
            tally.outcome(case, "wrong_reason")
    print(tally.summary())
    tally.assert_clean()
    assert tally.tried >= 30


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(levels=12, width=10))
    with deadline(10):
        assert cli_main(["validate", str(path)]) == 1
    assert "aliases expand it to 1,234,567,901,247 values" in capsys.readouterr().err


def test_merge_keys_and_aliases_within_the_bound_still_load(tmp_path):
    from specclip_core.spec import parse_spec_text

    data = parse_spec_text("base: &b {x: 1, y: 2}\nchild: {<<: *b, y: 3}\nname: m\n", ".yaml")
    assert data["child"] == {"x": 1, "y": 3}


@pytest.mark.parametrize("override", ["settings.folder=here", "stages.pretrain.train.epochs=3"])
def test_validate_takes_set_like_run(toy_store, tmp_path, capsys, override):
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD.replace("STORE", str(toy_store.path)).replace("seed: 0", "seed: 0\nsettings: {folder: {description: a folder}}"))
    assert cli_main(["validate", str(path), "--set", override]) == 0, capsys.readouterr().err
