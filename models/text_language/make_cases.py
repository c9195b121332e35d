"""Refresh the text_language cases: expected outputs come from running the real step in-process.

The model has nothing to train (langdetect ships its language profiles), so this script only
writes the cases. Run from anywhere: `python models/text_language/make_cases.py` or
`./pants run models/text_language:make_cases`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MODEL_DIR = Path(__file__).resolve().parent
REPO_ROOT = MODEL_DIR.parents[1]
if importlib.util.find_spec("tritonlib") is None:  # a plain `python models/<name>/make_cases.py`
    sys.path.insert(0, str(REPO_ROOT / "libs"))

from tritonlib import case_writer, profiles  # noqa: E402
from tritonlib.harness import Pipeline  # noqa: E402

CASES_DIR = MODEL_DIR / "tests" / "cases"
CASE_TOLERANCE = {"atol": 1e-4, "rtol": 1e-3}

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


def write_cases(pipeline: Pipeline) -> None:
    def record(name: str, description: str, text: NDArray[Any]) -> dict[str, NDArray[Any]]:
        outputs = pipeline.infer({"TEXT": text})
        write_case(name, description, {"TEXT": text}, outputs)
        return outputs

    description = "a full batch (max_batch_size): one sentence in each of 8 languages, labelled"
    detected = record("batch_of_8", description, texts(*LABELLED.values()))["LANGUAGE"]
    wrong = [
        (label, found)
        for label, found in zip(LABELLED, detected.reshape(-1))
        if found != label.encode()
    ]
    if wrong:
        raise SystemExit(f"the detector disagrees with the labels (label, detected): {wrong}")
    empty = texts("", "   \t ", "12345 !!! 3.14")
    record("no_letters", "empty, blank and digits-only texts: language und, confidence 0", empty)
    messy = texts("  \uff34\uff28\uff25 \ufb01rst\tSNOW  of\nthe Year  ")
    record("normalisation", "full-width letters, a ligature, case and whitespace to fold", messy)
    record(
        "non_latin_script",
        "Japanese, which langdetect also scores as Korean",
        texts("東京は日本の首都です"),
    )


def write_case(
    name: str, description: str, inputs: dict[str, NDArray[Any]], expected: dict[str, NDArray[Any]]
) -> None:
    """tests/cases/<name>.json in the case format (tritonlib.case_writer)."""
    tolerance = CASE_TOLERANCE
    case_writer.write_case(
        CASES_DIR,
        name,
        description,
        inputs,
        expected,
        atol=tolerance["atol"],
        rtol=tolerance["rtol"],
    )


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
    with Pipeline.load(MODEL_DIR) as pipeline:
        write_cases(pipeline)
        profile = profiles.write_profile(
            pipeline,
            {"TEXT": reference_texts()},
            features={"TEXT": profiles.FeatureSpec("text_stats")},
            description="1000 random word spans of the 8 labelled sentences (seed 0)",
            written_by=__file__,
        )
    print(f"wrote the cases in {CASES_DIR} and the reference profile {profile}; track it with")
    print(f"  ./pants run build-support:dvc -- add {profile.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
