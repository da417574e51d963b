"""The local cloud's gateway: AWS clients invoke functions there as in AWS."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.local_gateway import LocalGateway, function_name


@pytest.fixture
def gateway(local_cloud):
    gateway = LocalGateway(local_cloud.lambda_service, local_cloud.endpoint_url)
    yield gateway
    gateway.close()


def _client(service, gateway):
    return boto3.client(
        service,
        endpoint_url=gateway.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_invoke_through_the_gateway_runs_the_handler_in_the_lab(
    deployed_function, gateway
):
    name = deployed_function("echo.echo")

    response = _client("lambda", gateway).invoke(
        FunctionName=name, Payload=b'{"via": "gateway"}'
    )

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"via": "gateway"}


def test_a_function_error_keeps_lambdas_header(deployed_function, gateway):
    name = deployed_function("echo.fail")

    response = _client("lambda", gateway).invoke(FunctionName=name, Payload=b"{}")

    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "ValueError"


def test_other_calls_reach_moto_unchanged(local_cloud, gateway):
    s3 = _client("s3", gateway)
    s3.create_bucket(Bucket="through-the-gateway")
    s3.put_object(Bucket="through-the-gateway", Key="k", Body=b"v")

    direct = local_cloud.clients.client("s3")
    stored = direct.get_object(Bucket="through-the-gateway", Key="k")["Body"]
    assert stored.read() == b"v"


@pytest.mark.parametrize(
    ("path_part", "name"),
    [
        ("my-function", "my-function"),
        ("my-function%3Alive", "my-function"),
        ("arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af1", "f1"),
        ("arn:aws:lambda:us-east-1:123456789012:function:f1:7", "f1"),
    ],
)
def test_invoke_names_a_function_by_name_or_arn(path_part, name):
    assert function_name(path_part) == name


def test_invoking_a_function_that_does_not_exist_is_lambdas_not_found(gateway):
    lambda_client = _client("lambda", gateway)

    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName="no-such-function", Payload=b"{}")


def test_mless_local_refuses_a_timeout_outside_lambdas_range():
    result = CliRunner().invoke(main, ["local", "--function", "f", "--timeout", "0"])

    assert result.exit_code == 2
    assert "'--timeout': 0 is not in the range 1<=x<=900" in result.output
