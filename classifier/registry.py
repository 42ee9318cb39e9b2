"""Model registry: ``<data_dir>/models/<version>/`` holds ``model.skops`` (skops, never pickle) and ``meta.json``.

``<data_dir>/models/ACTIVE`` names the active version; ``ACTIVE.history`` lists the versions that were active before,
so ``rollback`` can step back one at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import skops.io as sio
from sklearn.feature_extraction.text import TfidfVectorizer

from classifier.features import Featurizer
from classifier.model import ModelConfig, TramiteInfo, TriageModel
from classifier.types import ModelInfo

MODEL_FILE = "model.skops"
META_FILE = "meta.json"
ACTIVE_FILE = "ACTIVE"
HISTORY_FILE = "ACTIVE.history"


class RegistryError(RuntimeError):
    pass


@dataclass
class StoredModel:
    info: ModelInfo
    model: TriageModel


def models_dir(data_dir: Path | str) -> Path:
    return Path(data_dir) / "models"


def new_version() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"-{now.microsecond // 1000:03d}"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csr_parts(m: sp.csr_matrix) -> dict[str, Any]:
    return {"data": m.data, "indices": m.indices, "indptr": m.indptr, "shape": list(m.shape)}


def _csr(parts: dict[str, Any]) -> sp.csr_matrix:
    shape = tuple(int(x) for x in parts["shape"])
    return sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]), shape=shape)


def _vectorizer_state(vec: TfidfVectorizer) -> dict[str, Any]:
    """A fitted TfidfVectorizer as arrays (skops stores a large vocabulary dict very slowly)."""
    terms = sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
    return {"terms": np.array(terms, dtype=np.str_), "idf": np.asarray(vec.idf_, dtype=np.float64)}


def _restore_vectorizer(template: TfidfVectorizer, state: dict[str, Any]) -> TfidfVectorizer:
    terms = [str(t) for t in state["terms"]]
    template.vocabulary_ = {t: i for i, t in enumerate(terms)}
    template.idf_ = np.asarray(state["idf"], dtype=np.float64)
    return template


def _state(model: TriageModel) -> dict[str, Any]:
    assert model.tramite_centroids is not None and model.agency_centroids is not None
    return {
        "word": _vectorizer_state(model.featurizer.word),
        "char": _vectorizer_state(model.featurizer.char),
        "tramite_centroids": _csr_parts(model.tramite_centroids),
        "agency_centroids": _csr_parts(model.agency_centroids),
        "organismo_centroids": _csr_parts(model.organismo_centroids) if model.organismo_centroids is not None else None,
        "organismo_coef": _csr_parts(model.organismo_coef) if model.organismo_coef is not None else None,
        "organismo_intercept": model.organismo_intercept,
        "agency_coef": _csr_parts(model.agency_coef) if model.agency_coef is not None else None,
        "agency_intercept": model.agency_intercept,
        "gate": model.gate,
    }


def _meta(info: ModelInfo, model: TriageModel, model_sha256: str) -> dict[str, Any]:
    return {
        **info.to_dict(),
        "config": model.cfg.to_dict(),
        "tramites": [[t.key, t.name, t.agency, t.organismo] for t in model.tramites],
        "agencies": model.agencies,
        "agency_organismo": model.agency_organismo,
        "organismos": model.organismos,
        "model_sha256": model_sha256,
    }


def save(data_dir: Path | str, model: TriageModel, info: ModelInfo) -> Path:
    """Write a new version directory (atomically: built aside, then renamed)."""
    root = models_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / info.version
    if target.exists():
        raise RegistryError(f"model version {info.version} already exists")
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    try:
        sio.dump(_state(model), staging / MODEL_FILE)
        digest = hashlib.sha256((staging / MODEL_FILE).read_bytes()).hexdigest()
        meta = _meta(info, model, digest)
        (staging / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_info(path: Path) -> ModelInfo:
    return ModelInfo.from_dict(json.loads((path / META_FILE).read_text(encoding="utf-8")))


def load(data_dir: Path | str, version: str) -> StoredModel:
    path = models_dir(data_dir) / version
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    raw = (path / MODEL_FILE).read_bytes()
    if meta.get("model_sha256") and hashlib.sha256(raw).hexdigest() != meta["model_sha256"]:
        raise RegistryError(f"model {version}: file does not match its recorded checksum")
    untrusted = sio.get_untrusted_types(data=raw)
    if untrusted:
        raise RegistryError(f"model {version}: refusing untrusted types {untrusted}")
    state = sio.loads(raw)
    model = TriageModel(ModelConfig.from_dict(meta.get("config") or {}))
    model.featurizer = Featurizer(model.cfg.features)
    _restore_vectorizer(model.featurizer.word, state["word"])
    _restore_vectorizer(model.featurizer.char, state["char"])
    model.tramite_centroids = _csr(state["tramite_centroids"])
    model.agency_centroids = _csr(state["agency_centroids"])
    org = state.get("organismo_centroids")
    model.organismo_centroids = _csr(org) if org is not None else None
    coef = state.get("organismo_coef")
    model.organismo_coef = _csr(coef) if coef is not None else None
    intercept = state.get("organismo_intercept")
    model.organismo_intercept = np.asarray(intercept, dtype=np.float64) if intercept is not None else None
    coef = state.get("agency_coef")
    model.agency_coef = _csr(coef) if coef is not None else None
    intercept = state.get("agency_intercept")
    model.agency_intercept = np.asarray(intercept, dtype=np.float64) if intercept is not None else None
    model.gate = state["gate"]
    model.tramites = [TramiteInfo(*row) for row in meta["tramites"]]
    model.agencies = list(meta["agencies"])
    model.agency_organismo = dict(meta["agency_organismo"])
    model.organismos = list(meta.get("organismos") or [])
    model._prepare()
    info = ModelInfo.from_dict(meta)
    info.active = version == active_version(data_dir)
    return StoredModel(info, model)


def list_models(data_dir: Path | str) -> list[ModelInfo]:
    root = models_dir(data_dir)
    if not root.exists():
        return []
    active = active_version(data_dir)
    infos = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and (p / META_FILE).exists()):
        info = read_info(path)
        info.active = info.version == active
        infos.append(info)
    return infos


def active_version(data_dir: Path | str) -> str | None:
    path = models_dir(data_dir) / ACTIVE_FILE
    if not path.exists():
        return None
    version = path.read_text(encoding="utf-8").strip()
    return version or None


def _history(data_dir: Path | str) -> list[str]:
    path = models_dir(data_dir) / HISTORY_FILE
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def activate(data_dir: Path | str, version: str) -> None:
    root = models_dir(data_dir)
    if not (root / version / META_FILE).exists():
        raise RegistryError(f"no model version {version}")
    previous = active_version(data_dir)
    if previous == version:
        return
    if previous:
        _atomic_write(root / HISTORY_FILE, "\n".join([*_history(data_dir), previous]) + "\n")
    _atomic_write(root / ACTIVE_FILE, version + "\n")


def rollback(data_dir: Path | str) -> str:
    """Make the previously active version active again; returns it."""
    root = models_dir(data_dir)
    history = _history(data_dir)
    while history:
        candidate = history.pop()
        if (root / candidate / META_FILE).exists():
            _atomic_write(root / HISTORY_FILE, "".join(f"{v}\n" for v in history))
            _atomic_write(root / ACTIVE_FILE, candidate + "\n")
            return candidate
    raise RegistryError("no previous model to roll back to")
