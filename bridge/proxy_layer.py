"""The proxy as a layer: what `mless attach` adds to a function it attaches.

`mless deploy` publishes the layer package (`packaging.build_proxy_layer_zip`)
as a version of the layer `<NamePrefix>-proxy`, described by the key of the
proxy package it was built with, so each version names its code and a second
deploy of the same code publishes nothing. It is published with Lambda's API
rather than by the stack's template because moto's CloudFormation, on which
the local cloud runs, answers a reference to a layer version with no ARN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.errors import calling_aws
from bridge.packaging import layer_key

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import LayerVersionsListItemTypeDef

_DESCRIPTION_PREFIX = "mless proxy "


def proxy_layer_name(name_prefix: str) -> str:
    """Return the name of the layer that holds the proxy for attached functions."""
    return f"{name_prefix}-proxy"


def find_proxy_layer(
    lambda_client: LambdaClient, layer_name: str, code_key: str
) -> str | None:
    """Return the ARN of the layer's version that holds this code, if published."""
    wanted = _description(code_key)
    for version in _versions(lambda_client, layer_name):
        if version.get("Description") == wanted:
            return version["LayerVersionArn"]
    return None


def publish_proxy_layer(
    lambda_client: LambdaClient, name_prefix: str, code_bucket: str, code_key: str
) -> str:
    """Publish the layer package uploaded beside this proxy package; return its ARN."""
    name = proxy_layer_name(name_prefix)
    with calling_aws(f"layer {name}"):
        return lambda_client.publish_layer_version(
            LayerName=name,
            Description=_description(code_key),
            Content={"S3Bucket": code_bucket, "S3Key": layer_key(code_key)},
            # Documentation only: Lambda checks neither. The proxy is pure
            # Python and an attached function runs it on python3.12.
            CompatibleRuntimes=["python3.12"],
            CompatibleArchitectures=["x86_64", "arm64"],
        )["LayerVersionArn"]


def delete_proxy_layer(lambda_client: LambdaClient, layer_name: str) -> None:
    """Delete every version of the proxy layer that mless published.

    Lambda keeps a deleted version for the functions still using it, so a
    function attached at that moment goes on working until it is detached.
    """
    for version in _versions(lambda_client, layer_name):
        if version.get("Description", "").startswith(_DESCRIPTION_PREFIX):
            with calling_aws(f"layer {layer_name}"):
                lambda_client.delete_layer_version(
                    LayerName=layer_name, VersionNumber=version["Version"]
                )


def unversioned(layer_version_arn: str) -> str:
    """Return a layer version's ARN without its version: the layer's own ARN."""
    return layer_version_arn.rsplit(":", 1)[0]


def _description(code_key: str) -> str:
    # The package's key names its content, so it tells the versions apart.
    return _DESCRIPTION_PREFIX + code_key


def _versions(
    lambda_client: LambdaClient, layer_name: str
) -> list[LayerVersionsListItemTypeDef]:
    pages = lambda_client.get_paginator("list_layer_versions").paginate(
        LayerName=layer_name
    )
    with calling_aws(f"layer {layer_name}"):
        return [item for page in pages for item in page.get("LayerVersions", [])]
