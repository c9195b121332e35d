"""Refresh the text_language cases: expected outputs come from running the real step in-process.

The model has nothing to train (langdetect ships its language profiles), so this script only
writes the cases. Run from anywhere: `python models/text_language/make_cases.py` or
`./pants run models/text_language/make_cases.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MODEL_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(MODEL_DIR.parents[1] / "libs"))  # also for a plain `python make_cases.py`

from tritonlib import profiles, training  # noqa: E402
from tritonlib.training import CaseRecorder  # noqa: E402

# One sentence per language, written for these cases: the language is the true label, and the
# batch case expects exactly these.
LABELLED = {
    "en": "The weather is lovely today, so we are going for a long walk in the park.",
    "fr": "Nous avons passé une excellente soirée avec nos amis dans un petit restaurant.",
    "de": "Die Kinder spielen jeden Nachmittag im großen Garten hinter dem alten Haus.",
    "es": "Mañana vamos a visitar a mis abuelos, que viven en un pueblo cerca del mar.",
    "it": "Questa città è famosa per i suoi monumenti antichi e per la sua cucina.",
    "nl": "Wij gaan morgen met de fiets naar het strand als het mooi weer is.",
    "pt": "Eu gosto muito de ler livros antigos durante as férias de verão.",
    "ru": "Сегодня мы долго гуляли по городу и смотрели на старые красивые дома.",
}


def texts(*values: str) -> NDArray[Any]:
    """The TEXT input: BYTES [N, 1], UTF-8."""
    return np.array([value.encode("utf-8") for value in values], dtype=np.object_).reshape(-1, 1)


def write_cases(cases: CaseRecorder) -> None:
    description = "a full batch (max_batch_size): one sentence in each of 8 languages, labelled"
    batch = {"TEXT": texts(*LABELLED.values())}
    detected = cases.record("batch_of_8", description, batch)["LANGUAGE"]
    wrong = [
        (label, found)
        for label, found in zip(LABELLED, detected.reshape(-1))
        if found != label.encode()
    ]
    if wrong:
        raise SystemExit(f"the detector disagrees with the labels (label, detected): {wrong}")
    empty = texts("", "   \t ", "12345 !!! 3.14")
    description = "empty, blank and digits-only texts: language und, confidence 0"
    cases.record("no_letters", description, {"TEXT": empty})
    messy = texts("  \uff34\uff28\uff25 \ufb01rst\tSNOW  of\nthe Year  ")
    description = "full-width letters, a ligature, case and whitespace to fold"
    cases.record("normalisation", description, {"TEXT": messy})
    description = "Japanese, which langdetect also scores as Korean"
    cases.record("non_latin_script", description, {"TEXT": texts("東京は日本の首都です")})


def reference_texts(count: int = 1000, seed: int = 0) -> NDArray[Any]:
    """The drift check's reference: random spans of words of the labelled sentences (no traffic
    sample exists yet; replace these with one when there is)."""
    rng = np.random.default_rng(seed)
    sentences = [sentence.split() for sentence in LABELLED.values()]
    spans = []
    for words in (sentences[i] for i in rng.integers(len(sentences), size=count)):
        start = int(rng.integers(len(words)))
        spans.append(" ".join(words[start : start + int(rng.integers(1, len(words) - start + 1))]))
    return texts(*spans)


def main() -> None:
    with CaseRecorder(MODEL_DIR) as cases:
        write_cases(cases)
        # Drift monitoring: text features (docs/drift.md) of word spans of the labelled sentences.
        profile = profiles.write_profile(
            cases.pipeline,
            {"TEXT": reference_texts()},
            features={"TEXT": profiles.FeatureSpec("text_stats")},
            description="1000 random word spans of the 8 labelled sentences (seed 0)",
            written_by=__file__,
        )
    training.dvc_add(profile)


if __name__ == "__main__":
    main()
