"""Class probabilities -> RISK (probability of malignancy) and a DECISION by a threshold."""

import numpy as np

from tritonlib.runtime import Arrays, StepContext, serve

MALIGNANT = 1  # column of PROBABILITIES, as train.py labels the classes


class RiskDecision:
    """DECISION is "review" where RISK >= the config's review_threshold, else "routine"."""

    def setup(self, context: StepContext) -> None:
        self.threshold = float(context.parameters["review_threshold"])

    def __call__(self, inputs: Arrays) -> Arrays:
        risk = inputs["PROBABILITIES"][:, MALIGNANT].astype(np.float32).reshape(-1, 1)
        decision = np.where(risk >= self.threshold, b"review", b"routine").astype(np.object_)
        return {"RISK": risk, "DECISION": decision}


TritonPythonModel = serve(RiskDecision)
