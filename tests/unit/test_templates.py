"""The CloudFormation templates parse, pass cfn-lint, and agree with bridge/stack.py."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import lint_file

from bridge.stack import TEMPLATE_PATH, StackOutputs, StackSettings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [ROOT / "cloudformation", ROOT / "examples"]


class CloudFormationLoader(yaml.SafeLoader):
    """A YAML loader that reads `!Ref x` as {"Ref": x}, `!Sub y` as {"Fn::Sub": y}."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> Any:
    """Parse a YAML or JSON template, intrinsic function tags included."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=CloudFormationLoader)


def _templates() -> list[Path]:
    """Every file under the template folders that holds a Resources section."""
    found = []
    for folder in TEMPLATE_DIRS:
        for path in sorted(folder.rglob("*")):
            if path.suffix in {".yaml", ".yml", ".json"} and path.is_file():
                document = load_template(path)
                if isinstance(document, dict) and "Resources" in document:
                    found.append(path)
    return found


TEMPLATES = _templates()
MLESS = load_template(TEMPLATE_PATH)


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_stack_and_the_hash_example_are_found() -> None:
    names = {_id(path) for path in TEMPLATES}
    assert {"cloudformation/mless.yaml", "examples/hash/template.yaml"} <= names


@pytest.mark.parametrize("path", TEMPLATES, ids=_id)
def test_template_passes_cfn_lint(path: Path) -> None:
    assert [str(match) for match in lint_file(path)] == []


@pytest.mark.parametrize("path", TEMPLATES, ids=_id)
def test_template_is_described_and_its_parameters_constrained(path: Path) -> None:
    template = load_template(path)
    assert template.get("Description")
    for name, parameter in template.get("Parameters", {}).items():
        assert parameter.get("Description"), name
        constraints = {"AllowedPattern", "AllowedValues", "MinValue", "MinLength"}
        assert constraints & parameter.keys(), name


@pytest.mark.parametrize("path", TEMPLATES, ids=_id)
def test_logical_ids_are_pascal_case(path: Path) -> None:
    template = load_template(path)
    for section in ("Parameters", "Resources", "Outputs"):
        for name in template.get(section, {}):
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", name), name


def test_every_field_the_cli_reads_is_an_output() -> None:
    not_outputs = {"stack_name", "code_bucket", "code_key"}
    wanted = {
        "".join(word.capitalize() for word in field.name.split("_"))
        for field in dataclasses.fields(StackOutputs)
        if field.name not in not_outputs
    }
    assert wanted == set(MLESS["Outputs"])


def test_stack_settings_defaults_are_the_templates() -> None:
    parameters = StackSettings().parameters("a-bucket", "a-key.zip")
    for name, value in parameters.items():
        if name not in {"ProxyCodeBucket", "ProxyCodeKey"}:
            assert str(MLESS["Parameters"][name]["Default"]) == value, name
    assert set(parameters) == set(MLESS["Parameters"])


def test_proxy_function_runs_the_proxy_handler_with_its_settings() -> None:
    function = MLESS["Resources"]["ProxyFunction"]["Properties"]
    assert function["Handler"] == "lambda_proxy.handler.handler"
    assert function["Runtime"] == "python3.12"
    assert function["Code"] == {
        "S3Bucket": {"Ref": "ProxyCodeBucket"},
        "S3Key": {"Ref": "ProxyCodeKey"},
    }
    assert set(function["Environment"]["Variables"]) == {
        "MLESS_REQUEST_QUEUE_URL",
        "MLESS_REPLY_QUEUE_PREFIX",
        "MLESS_PAYLOAD_BUCKET",
        "MLESS_MODE",
    }


def test_request_queue_hides_a_request_for_the_proxy_timeout() -> None:
    queue = MLESS["Resources"]["RequestQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == {"Ref": "ProxyTimeoutSeconds"}
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }


def test_queues_and_payload_bucket_refuse_plain_http() -> None:
    resources = MLESS["Resources"]
    policies = [
        resource["Properties"]["PolicyDocument"]["Statement"]
        for resource in resources.values()
        if resource["Type"] in {"AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy"}
    ]
    assert len(policies) == 2
    for statements in policies:
        denials = [s for s in statements if s["Effect"] == "Deny"]
        assert [s["Condition"] for s in denials] == [
            {"Bool": {"aws:SecureTransport": "false"}}
        ]
