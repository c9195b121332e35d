"""Texts -> their language (langdetect, seeded), its probability, and the normalised text."""

import unicodedata

import numpy as np
from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException

from tritonlib.runtime import Arrays, StepContext, StepError, serve

UNDETERMINED = "und"  # ISO 639-2 "undetermined": nothing to detect a language from


def normalise(raw: bytes, row: int) -> str:
    """NFKC (folds full-width forms and ligatures), lower case, runs of whitespace to one space."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StepError(f"TEXT row {row}: not valid UTF-8 ({error})") from None
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


class LanguageDetector:
    """langdetect with its own factory, seeded: the same text always gets the same answer."""

    def setup(self, context: StepContext) -> None:
        self.factory = DetectorFactory()
        self.factory.load_profile(PROFILES_DIRECTORY)
        self.factory.set_seed(0)

    def detect(self, text: str) -> tuple[str, float]:
        detector = self.factory.create()
        detector.append(text)
        try:
            best = detector.get_probabilities()
        except LangDetectException:  # no letters at all
            best = []
        return (best[0].lang, best[0].prob) if best else (UNDETERMINED, 0.0)

    def __call__(self, inputs: Arrays) -> Arrays:
        texts = [normalise(raw, row) for row, raw in enumerate(inputs["TEXT"].reshape(-1))]
        languages, confidences = zip(*map(self.detect, texts))
        return {
            "LANGUAGE": np.array(languages, dtype=np.object_).reshape(-1, 1),
            "CONFIDENCE": np.array(confidences, dtype=np.float32).reshape(-1, 1),
            "NORMALIZED": np.array(texts, dtype=np.object_).reshape(-1, 1),
        }


TritonPythonModel = serve(LanguageDetector)
