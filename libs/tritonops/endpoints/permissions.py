"""The AWS calls ``plan`` and ``deploy`` make with the deployer's credentials.

CloudFormation then calls SageMaker, IAM, CloudWatch and Application Auto Scaling with the same
credentials; those calls follow from the template's resource types. The deployer roles' policies
(``ci/iam/endpoints-*-deployer.json``) are tested against both.
"""

from __future__ import annotations

__all__ = ["CLOUDFORMATION_CALLS", "UNAUTHORISED_CALLS"]

# Every call on the stack, by its IAM action name (cloudformation:<name>).
CLOUDFORMATION_CALLS = (
    "DescribeStacks",
    "GetTemplate",
    "CreateChangeSet",
    "DescribeChangeSet",
    "DeleteChangeSet",
    "ExecuteChangeSet",
    "DescribeStackEvents",
)
# Calls that need no permission: GetCallerIdentity (the account check before anything else).
UNAUTHORISED_CALLS = (("sts", "GetCallerIdentity"),)
