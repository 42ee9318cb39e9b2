import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from classifier import api, registry
from classifier.agencies import default_directory
from classifier.api import fit_model
from classifier.catalog import load_catalog
from classifier.types import LabelledExample

TEXT = "consulta por el formulario zorblax del expediente turquesa"
TARGET = "182"  # Registro de publicaciones (MEC): unrelated to the words above


def test_corrected_label_changes_the_next_model_and_rollback_restores(data_dir: Path) -> None:
    before = api.load_active(data_dir)
    assert before.predict(None, TEXT).tramite[0].key != TARGET
    corrections = [
        LabelledExample("tengo una duda con el formulario zorblax", TARGET, None),
        LabelledExample("el expediente turquesa del zorblax no avanza", TARGET, None),
        LabelledExample("zorblax turquesa: qué tengo que presentar?", TARGET, None, subject="Zorblax"),
        LabelledExample("reclamo por el quincho comunal de Trinidad", None, "Intendencia de Flores"),
        LabelledExample("el quincho comunal sigue cerrado", None, "Intendencia de Flores"),
        LabelledExample("quién arregla el quincho comunal?", None, "Intendencia de Flores"),
    ]
    info = api.train(data_dir, corrections)
    assert info.active and info.training["labelled_tickets"] == 6
    assert "not evaluated" in info.metrics["note"]
    after = api.load_active(data_dir)
    assert after.version == info.version != before.version
    pred = after.predict(None, TEXT)
    assert pred.tramite[0].key == TARGET
    assert pred.agency[0].name == after.model.tramites[[t.key for t in after.model.tramites].index(TARGET)].agency
    assert after.predict(None, "el quincho comunal está roto").agency[0].name == "Intendencia de Flores"

    assert api.rollback(data_dir) == before.version
    again = api.load_active(data_dir)
    assert again.version == before.version
    assert again.predict(None, TEXT).tramite[0].key != TARGET
    versions = {m.version: m.active for m in api.list_models(data_dir)}
    assert versions == {before.version: True, info.version: False}
    with pytest.raises(registry.RegistryError):
        api.rollback(data_dir)


def test_labels_with_unknown_keys_are_ignored(data_dir: Path) -> None:
    info = api.train(data_dir, [LabelledExample("x", "no-such-key", None)], evaluate_holdout=False)
    assert info.training["labelled_tickets"] == 0


def test_saved_with_skops_not_pickle_and_checksummed(trained_dir: Path, data_dir: Path) -> None:
    version = registry.active_version(trained_dir)
    assert version
    path = registry.models_dir(trained_dir) / version
    with zipfile.ZipFile(path / registry.MODEL_FILE) as zf:
        assert "schema.json" in zf.namelist()
        assert not any(n.endswith(".pkl") for n in zf.namelist())
    meta = json.loads((path / registry.META_FILE).read_text())
    assert meta["version"] == version and meta["training"]["catalog_active"] == 247
    assert {"documents", "by_source", "catalog_fingerprint"} <= set(meta["training"])
    tampered = registry.models_dir(data_dir) / version / registry.MODEL_FILE
    tampered.write_bytes(tampered.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(registry.RegistryError):
        registry.load(data_dir, version)


def test_cold_start_trains_when_no_model(tmp_path: Path) -> None:
    clf = api.load_active(tmp_path)
    assert registry.active_version(tmp_path) == clf.version
    assert clf.info.training["labelled_tickets"] == 0
    with pytest.raises(registry.RegistryError):
        api.load_active(tmp_path / "empty", cold_start=False)


def test_holdout_metrics_recorded_with_enough_labels(data_dir: Path) -> None:
    agency = "Ministerio de Educación y Cultura - Dirección General del Registro de Estado Civil"
    examples = [LabelledExample(f"necesito la partida de nacimiento número {i}", None, agency) for i in range(40)]
    info = api.train(data_dir, examples, activate=False)
    assert info.metrics["n"] == 8 and "tramite" in info.metrics and "agency" in info.metrics
    assert not info.active and registry.active_version(data_dir) != info.version


def test_reloaded_model_scores_like_the_trained_one(trained_dir: Path) -> None:
    """The discriminative body and agency classifiers (pruned coefficients) survive the skops round trip."""
    model, _ = fit_model(load_catalog(trained_dir), default_directory())
    assert model.organismo_coef is not None and model.agency_coef is not None
    assert model.organismo_coef.getnnz(axis=1).max() <= model.cfg.clf_terms
    stored = registry.load(trained_dir, registry.active_version(trained_dir) or "")
    texts = ["se me vence la libreta de conducir", "no me llega la factura de la luz", "gracias"]
    x1, b1 = model.vectorize_with_base(texts)
    x2, b2 = stored.model.vectorize_with_base(texts)
    s1, s2 = model.score(x1, b1, normalized=True), stored.model.score(x2, b2, normalized=True)
    assert np.allclose(s1.agency, s2.agency, atol=1e-5) and np.allclose(s1.tramite, s2.tramite, atol=1e-5)
    # the classifiers take part: switching them off changes the body distribution
    probs = model._organismo_probs(x1)
    model.cfg = dataclasses.replace(model.cfg, organismo_clf_weight=0.0)
    without = model._organismo_probs(x1)
    assert probs is not None and without is not None and not np.allclose(probs, without, atol=1e-3)
