"""Drift monitoring: captured endpoint traffic against each model's reference profile.

`python -m tritonops.drift check CAPTURE` reads SageMaker data capture (S3 or a local folder),
samples each model version's requests in one streaming pass, and tests each input feature
against `models/<name>/reference_profile.npz` (written by the model's training script with
`tritonlib.profiles`). See docs/drift.md.
"""
