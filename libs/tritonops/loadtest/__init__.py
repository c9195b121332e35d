"""The load test that sets an endpoint's autoscaling target (docs/loadtest.md).

It offers a rising arrival rate of requests built from the models' test cases to one endpoint
instance, finds the highest rate that keeps the latency SLO and the error budget (MAX_RPS), and
recommends AWS's `SageMakerVariantInvocationsPerInstance` target, `MAX_RPS * safety * 60`.

Nothing here is imported on package import: the command (`__main__`) must monkey-patch with
gevent before ssl, urllib3 or boto3 are imported, and the pure parts (the sweep's logic, the
report) are imported by tests that never load Locust.
"""
