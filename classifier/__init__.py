"""Tags tickets with their trámite (official catalogue) and agency; see docs/classifier.md."""

from classifier.api import Classifier, fit_model, list_models, load_active, rollback, train
from classifier.settings import ClassifierSettings
from classifier.types import AgencyCandidate, LabelledExample, ModelInfo, Prediction, TramiteCandidate

__all__ = [
    "AgencyCandidate",
    "Classifier",
    "ClassifierSettings",
    "LabelledExample",
    "ModelInfo",
    "Prediction",
    "TramiteCandidate",
    "fit_model",
    "list_models",
    "load_active",
    "rollback",
    "train",
]
