import argparse
import io
import json
from pathlib import Path

from classifier import cli
from classifier.synthetic import full_layout_csv
from classifier.types import LabelledExample

MESSAGES = [
    {"id": "m1", "channel": "email", "subject": "Pasaporte", "text": "cómo saco el pasaporte?", "tramite": None,
     "agency": "Ministerio del Interior - Dirección Nacional de Identificación Civil"},
    {"id": "m2", "channel": "twitter", "subject": None, "text": "gracias!!", "tramite": None, "agency": None},
    {"id": "m3", "channel": "web", "subject": None, "text": "no tengo agua desde ayer @OSE_Uy", "tramite": None,
     "agency": "Administración de las Obras Sanitarias del Estado"},
]


class Runtime:
    def __init__(self, examples: list[LabelledExample]) -> None:
        self.examples = examples

    async def labelled_examples(self) -> list[LabelledExample]:
        return self.examples


def parser(runtime: Runtime | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inbox")
    p.add_argument("--data-dir")
    cli.register(p.add_subparsers(dest="command", required=True), lambda args: runtime)
    return p


def run(p: argparse.ArgumentParser, *argv: str) -> tuple[int, str]:
    args = p.parse_args(list(argv))
    out = io.StringIO()
    return args.func(args, out), out.getvalue()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_classify_text_prints_json(data_dir: Path) -> None:
    rc, out = run(parser(), "--data-dir", str(data_dir), "classify", "se me venció la cédula")
    obj = json.loads(out)
    assert rc == 0 and set(obj) >= {"tramite", "agency", "abstain", "terms", "model_version"}


def test_batch_output_format(data_dir: Path, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "in.jsonl", MESSAGES)
    rc, out = run(parser(), "--data-dir", str(data_dir), "classify", "--batch", str(f))
    lines = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [x["id"] for x in lines] == ["m1", "m2", "m3"]
    for x in lines:
        assert set(x) == {"id", "tramite", "agency", "abstain"}
        assert len(x["tramite"]) == 3 and all(set(c) == {"key", "p"} for c in x["tramite"])
        assert len(x["agency"]) == 3 and all(set(c) == {"name", "organismo", "p"} for c in x["agency"])
        assert [c["p"] for c in x["agency"]] == sorted((c["p"] for c in x["agency"]), reverse=True)
        assert set(x["abstain"]) == {"tramite", "agency"}
    assert lines[2]["agency"][0]["organismo"] == "Administración de las Obras Sanitarias del Estado"


def test_eval_json_and_text(data_dir: Path, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "dev.jsonl", MESSAGES)
    rc, out = run(parser(), "--data-dir", str(data_dir), "classifier", "eval", str(f), "--json")
    obj = json.loads(out)
    assert rc == 0 and obj["n"] == 3
    keys = {"top1", "top3", "macro_f1", "auto_share", "auto_precision"}
    assert keys <= set(obj["tramite"]) and keys <= set(obj["agency"])
    assert all(0 <= obj["agency"][k] <= 1 for k in keys)
    rc, text = run(parser(), "--data-dir", str(data_dir), "classifier", "eval", str(f))
    assert rc == 0 and "worst confusions" in text


def test_eval_does_not_train(data_dir: Path, tmp_path: Path) -> None:
    before = [m.version for m in cli.api.list_models(data_dir)]
    run(parser(), "--data-dir", str(data_dir), "classifier", "eval", str(write_jsonl(tmp_path / "d.jsonl", MESSAGES)))
    assert [m.version for m in cli.api.list_models(data_dir)] == before


def test_train_uses_runtime_labels_then_list_and_rollback(data_dir: Path) -> None:
    runtime = Runtime([LabelledExample("tema del quincho comunal", None, "Intendencia de Flores")])
    rc, out = run(parser(runtime), "--data-dir", str(data_dir), "classifier", "train")
    info = json.loads(out)
    assert rc == 0 and info["active"] and info["training"]["labelled_tickets"] == 1
    rc, out = run(parser(), "--data-dir", str(data_dir), "classifier", "list")
    listed = [json.loads(line) for line in out.splitlines()]
    assert len(listed) == 2 and [m["active"] for m in listed].count(True) == 1
    rc, out = run(parser(), "--data-dir", str(data_dir), "classifier", "rollback")
    assert rc == 0 and json.loads(out)["active"] != info["version"]


def test_catalog_import_command(tmp_path: Path) -> None:
    f = tmp_path / "full.csv"
    f.write_text(full_layout_csv(260, duplicates=2), encoding="utf-8")
    rc, out = run(parser(), "--data-dir", str(tmp_path / "d"), "catalog", "import", str(f))
    report = json.loads(out)
    assert rc == 0 and report["added"] == 260 and report["duplicates"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n", encoding="utf-8")
    rc, _ = run(parser(), "--data-dir", str(tmp_path / "d"), "catalog", "import", str(bad))
    assert rc == 1


def test_python_dash_m_entry_point(data_dir: Path, capsys) -> None:
    assert cli.main(["--data-dir", str(data_dir), "classify", "hola, quiero renovar la libreta"]) == 0
    assert "tramite" in json.loads(capsys.readouterr().out)
