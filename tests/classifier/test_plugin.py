"""The plugin wiring with the real runtime: the triage job through the job queue, and the CLI through with_runtime."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
from pathlib import Path

from classifier import plugin, registry
from inbox.domain import Identity, InboundMessage
from tests.conftest import make_settings
from workers import cli as inbox_cli
from workers.jobs import run_one
from workers.runtime import Runtime, close_runtime, open_runtime

UTE = "Administración Nacional de Usinas y Trasmisiones Eléctricas"


async def test_triage_job_runs_through_the_queue(rt: Runtime, trained_dir: Path) -> None:
    shutil.copytree(trained_dir / "models", rt.data_dir / "models")
    (rt.data_dir / "classifier.toml").write_text("tramite_threshold = 0.0\nagency_threshold = 0.0\n")
    plugin.setup(rt)
    msg = InboundMessage(
        channel="email", account="consultas@gub.uy", external_id="<p1@example.uy>",
        sender=Identity("email", "vecina@example.uy"), text="sin luz desde ayer, UTE no atiende el teléfono",
        raw=b"raw p1", subject="Corte de luz",
    )
    outcome = await rt.pipeline.ingest(msg)
    job = await rt.store.claim("test-worker", kinds=["triage"])
    assert job is not None and job.payload["ticket_id"] == outcome.ticket_id
    assert await run_one(rt, job, "test-worker") == "done"
    ticket = await rt.store.get_ticket(outcome.ticket_id or "")
    assert ticket is not None and ticket.tags["agency"].value == UTE and ticket.queue == UTE
    assert ticket.tags["agency"].model_version == registry.active_version(rt.data_dir)


def test_cli_train_reads_labels_from_the_store(tmp_path: Path, trained_dir: Path, capsys) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(trained_dir, data_dir)

    async def put_labels() -> None:
        rt = await open_runtime(make_settings(data_dir))
        try:
            for i in range(3):
                doc = {"ticket_id": f"t{i}", "subject": None, "text": f"consulta zorblax {i}", "tramite": "182",
                       "agency": None, "by": "ana", "at": "2025-01-01T00:00:00+00:00"}
                await rt.store.put_doc("labels", f"t{i}", doc)
        finally:
            await close_runtime(rt)

    asyncio.run(put_labels())
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir")
    parser = argparse.ArgumentParser(prog="inbox")
    plugin.register_cli(parser.add_subparsers(dest="command", required=True), common, inbox_cli.with_runtime)
    args = parser.parse_args(["classifier", "train", "--data-dir", str(data_dir)])
    assert args.func(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["training"]["labelled_tickets"] == 3 and info["active"]
    args = parser.parse_args(["classify", "--data-dir", str(data_dir), "consulta zorblax"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_version"] == info["version"]


async def test_the_tags_panel_never_waits_for_the_cold_start(tmp_path: Path, trained_dir: Path) -> None:
    """With no model yet the panel gets no prediction at once (the first triage job trains one); with a model, it
    gets the prediction."""
    holder = plugin.ClassifierHolder(tmp_path)
    assert await holder.predict("se me venció la cédula") is None
    assert registry.active_version(tmp_path) is None  # nothing was trained for the page
    shutil.copytree(trained_dir / "models", tmp_path / "models")
    prediction = await holder.predict("se me venció la cédula")
    assert prediction is not None and prediction.tramite
