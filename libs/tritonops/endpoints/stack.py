"""Plan and deploy a stage's stack through CloudFormation change sets.

``plan`` creates a change set, lists what it would do (replacements called out) and deletes
it. ``deploy`` creates one, executes it, prints the stack's events as they come and waits for
the end; a failure is reported with each failed resource's reason. CloudFormation does the
ordering, the diffs and the rollback; nothing here changes a resource directly.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from tritonops.endpoints.errors import DeployError
from tritonops.endpoints.template import CAPABILITIES

__all__ = [
    "ChangeSet",
    "ResourceChange",
    "create_change_set",
    "delete_change_set",
    "deployed_template",
    "execute_change_set",
    "find_stack",
    "new_stack_plan",
    "scaled_instance_type_changes",
]

_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_SUCCEEDED = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
_UNRECOVERABLE = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED")
_ACTIONS = {"Add": "+", "Modify": "~", "Remove": "-", "Import": "<", "Dynamic": "?"}

Echo = Callable[[str], None]


@dataclass(frozen=True)
class ResourceChange:
    """One line of a change set: what CloudFormation would do to one resource."""

    action: str
    logical_id: str
    resource_type: str
    replacement: str | None  # "True", "False" or "Conditional" for a Modify
    properties: tuple[str, ...]  # the properties whose change causes it

    def describe(self) -> str:
        text = f"{_ACTIONS.get(self.action, '?')} {self.action:<6} {self.logical_id} ({self.resource_type})"
        if self.action == "Modify":
            if self.replacement == "True":
                text += ": REPLACED (a new resource, then the old one deleted)"
            elif self.replacement == "Conditional":
                text += ": MAY BE REPLACED"
            else:
                text += ": in place"
            if self.properties:
                text += f" [{', '.join(self.properties)}]"
        return text


@dataclass(frozen=True)
class ChangeSet:
    stack_name: str
    change_set_id: str | None  # None: no change set kept (nothing to change, or a new stack)
    new_stack: bool
    changes: tuple[ResourceChange, ...]
    stack_id: str | None = None

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def format(self) -> str:
        kind = "new stack" if self.new_stack else "update"
        lines = [f"Stack {self.stack_name} ({kind}):"]
        if self.is_empty:
            lines.append("No changes: the stack already matches the definitions.")
            return "\n".join(lines)
        lines.extend(f"  {change.describe()}" for change in self.changes)
        counts = {action: 0 for action in ("Add", "Modify", "Remove")}
        replaced = 0
        for change in self.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
            replaced += change.replacement == "True"
        lines.append(
            f"Plan: {counts['Add']} to add, {counts['Modify']} to change ({replaced} replaced), "
            f"{counts['Remove']} to remove."
        )
        return "\n".join(lines)


def new_stack_plan(stack_name: str, template: dict[str, Any]) -> ChangeSet:
    """The plan of a stack that does not exist yet: every resource of the template is added.

    A change set would create the stack, empty and under review, and leave it behind; for a
    new stack it could say no more than this.
    """
    changes = tuple(
        ResourceChange("Add", logical_id, str(resource.get("Type")), None, ())
        for logical_id, resource in sorted((template.get("Resources") or {}).items())
    )
    return ChangeSet(stack_name, None, True, changes)


def find_stack(cloudformation: Any, stack_name: str) -> dict[str, Any] | None:
    """The stack's description, or None when there is no such stack."""
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error.response.get("Error", {}).get("Message", "")):
            return None
        raise
    return stacks[0] if stacks else None


def deployed_template(cloudformation: Any, stack_name: str) -> dict[str, Any] | None:
    """The template the stack was last deployed with (None for a stack under review only)."""
    body = cloudformation.get_template(StackName=stack_name, TemplateStage="Original")[
        "TemplateBody"
    ]
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return None  # not one of ours (YAML): nothing to compare
        return parsed if isinstance(parsed, dict) else None
    return dict(body)


def scaled_instance_type_changes(
    deployed: dict[str, Any], wanted: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """Variants that autoscale now and would change instance type: (variant, old, new).

    SageMaker refuses to update an endpoint that changes the instance type of a variant
    registered with Application Auto Scaling (AWS: "Update endpoints that use auto scaling").
    """
    before = _variant_instance_types(deployed)
    after = _variant_instance_types(wanted)
    scaled = _scaled_variants(deployed)
    return [
        (variant, before[variant], after[variant])
        for variant in sorted(scaled)
        if variant in before and variant in after and before[variant] != after[variant]
    ]


def _resources(template: dict[str, Any], kind: str) -> Iterator[dict[str, Any]]:
    for resource in (template.get("Resources") or {}).values():
        if isinstance(resource, dict) and resource.get("Type") == kind:
            yield resource.get("Properties") or {}


def _variant_instance_types(template: dict[str, Any]) -> dict[str, str]:
    return {
        str(variant.get("VariantName")): str(variant.get("InstanceType"))
        for properties in _resources(template, "AWS::SageMaker::EndpointConfig")
        for variant in properties.get("ProductionVariants") or []
    }


def _scaled_variants(template: dict[str, Any]) -> set[str]:
    variants = set()
    for properties in _resources(template, "AWS::ApplicationAutoScaling::ScalableTarget"):
        resource_id = properties.get("ResourceId")
        if isinstance(resource_id, dict):
            resource_id = resource_id.get("Fn::Sub")
        if isinstance(resource_id, str) and "/variant/" in resource_id:
            variants.add(resource_id.rsplit("/variant/", 1)[1])
    return variants


def create_change_set(
    cloudformation: Any,
    stack_name: str,
    template_body: str,
    description: str,
    poll_s: float = 5.0,
    timeout_s: float = 600.0,
) -> ChangeSet:
    """Create a change set for the stack (creating it if need be) and describe it."""
    stack = find_stack(cloudformation, stack_name)
    status = stack["StackStatus"] if stack else None
    if status in _UNRECOVERABLE:
        raise DeployError(
            f"stack {stack_name} is {status}: its first deployment failed and CloudFormation "
            f"cannot update it. Delete it (aws cloudformation delete-stack --stack-name "
            f"{stack_name}), then deploy again"
        )
    if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise DeployError(
            f"stack {stack_name} is {status}: another deployment is running; let it finish"
        )
    new_stack = status in (None, "REVIEW_IN_PROGRESS")
    created = cloudformation.create_change_set(
        StackName=stack_name,
        ChangeSetName=f"tritonops-{uuid.uuid4().hex[:16]}",
        ChangeSetType="CREATE" if new_stack else "UPDATE",
        TemplateBody=template_body,
        Capabilities=list(CAPABILITIES),
        Description=description[:1024],
    )
    change_set_id = created["Id"]
    stack_id = created["StackId"]  # from here on the stack's ARN: one stack, whatever its name
    described = _wait_for_change_set(cloudformation, stack_id, change_set_id, poll_s, timeout_s)
    if described["Status"] == "FAILED":
        reason = str(described.get("StatusReason", ""))
        if not new_stack and any(text in reason for text in _NO_CHANGES):
            delete_change_set(cloudformation, stack_id, change_set_id)
            return ChangeSet(stack_name, None, False, ())
        raise DeployError(f"CloudFormation refused the change set for {stack_name}: {reason}")
    changes = tuple(_changes(cloudformation, stack_id, described))
    return ChangeSet(stack_name, change_set_id, new_stack, changes, stack_id)


def _wait_for_change_set(
    cloudformation: Any, stack_name: str, change_set_id: str, poll_s: float, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        described: dict[str, Any] = cloudformation.describe_change_set(
            StackName=stack_name, ChangeSetName=change_set_id
        )
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return described
        if time.monotonic() > deadline:
            raise DeployError(
                f"the change set for {stack_name} is still {described['Status']} after "
                f"{timeout_s:.0f} s"
            )
        time.sleep(poll_s)


def _changes(
    cloudformation: Any, stack_name: str, first_page: dict[str, Any]
) -> Iterator[ResourceChange]:
    page = first_page
    while True:
        for change in page.get("Changes", []):
            resource = change.get("ResourceChange", {})
            properties = sorted(
                {
                    str(detail.get("Target", {}).get("Name"))
                    for detail in resource.get("Details", [])
                    if detail.get("Target", {}).get("Attribute") == "Properties"
                    and detail.get("Target", {}).get("Name")
                }
            )
            yield ResourceChange(
                action=str(resource.get("Action")),
                logical_id=str(resource.get("LogicalResourceId")),
                resource_type=str(resource.get("ResourceType")),
                replacement=resource.get("Replacement"),
                properties=tuple(properties),
            )
        token = page.get("NextToken")
        if not token:
            return
        page = cloudformation.describe_change_set(
            StackName=stack_name, ChangeSetName=page["ChangeSetId"], NextToken=token
        )


def delete_change_set(cloudformation: Any, stack_name: str, change_set_id: str) -> None:
    cloudformation.delete_change_set(StackName=stack_name, ChangeSetName=change_set_id)


def execute_change_set(
    cloudformation: Any,
    change_set: ChangeSet,
    echo: Echo = print,
    poll_s: float = 10.0,
    timeout_s: float = 8 * 3600.0,
) -> str:
    """Execute the change set, print the stack's events until it settles, return its status.

    Raises DeployError, with every failed resource and its reason, when the stack does not end
    in a complete state.
    """
    assert change_set.change_set_id is not None, "an empty change set has nothing to execute"
    assert change_set.stack_id is not None
    stack_name = change_set.stack_name
    stack_id = change_set.stack_id
    newest = cloudformation.describe_stack_events(StackName=stack_id).get("StackEvents", [])
    seen = {event["EventId"] for event in newest[:1]}
    cloudformation.execute_change_set(StackName=stack_id, ChangeSetName=change_set.change_set_id)
    deadline = time.monotonic() + timeout_s
    failures: list[str] = []
    while True:
        new_events = list(_events(cloudformation, stack_id, seen))
        for event in reversed(new_events):  # oldest first
            seen.add(event["EventId"])
            echo(_format_event(event))
            if str(event.get("ResourceStatus", "")).endswith("_FAILED"):
                failures.append(_failure(event))
        stack = find_stack(cloudformation, stack_id)
        status = str(stack["StackStatus"]) if stack else "DELETE_COMPLETE"
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise DeployError(
                f"stack {stack_name} is still {status} after {timeout_s / 60:.0f} minutes; "
                "CloudFormation goes on: follow it in its console"
            )
        time.sleep(poll_s)
    if status not in _SUCCEEDED:
        reasons = "\n".join(f"  {line}" for line in failures) or "  (no resource reported a reason)"
        raise DeployError(
            f"the deployment of {stack_name} failed, the stack is {status}:\n{reasons}"
        )
    return status


def _events(cloudformation: Any, stack_name: str, seen: set[str]) -> Iterator[dict[str, Any]]:
    """The stack's events newer than any in ``seen``, newest first."""
    token: str | None = None
    while True:
        arguments: dict[str, Any] = {"StackName": stack_name}
        if token:
            arguments["NextToken"] = token
        page = cloudformation.describe_stack_events(**arguments)
        for event in page.get("StackEvents", []):
            if event["EventId"] in seen:
                return
            yield event
        token = page.get("NextToken")
        if not token:
            return


def _format_event(event: dict[str, Any]) -> str:
    stamp = event.get("Timestamp")
    when = stamp.strftime("%H:%M:%S") if isinstance(stamp, datetime.datetime) else ""
    reason = event.get("ResourceStatusReason")
    text = (
        f"{when} {event.get('ResourceStatus', '')} {event.get('LogicalResourceId', '')} "
        f"({event.get('ResourceType', '')})"
    )
    return f"{text}: {reason}" if reason else text


def _failure(event: dict[str, Any]) -> str:
    return (
        f"{event.get('LogicalResourceId')} ({event.get('ResourceType')}) "
        f"{event.get('ResourceStatus')}: {event.get('ResourceStatusReason') or 'no reason given'}"
    )
