"""botocore's own failures, described in one line the user can act on."""

from __future__ import annotations

from botocore.exceptions import ParamValidationError, ReadTimeoutError

from bridge.errors import AwsUnreachableError, MlessError, from_botocore


def test_an_endpoint_that_never_answers_is_named_with_what_to_check():
    error = from_botocore(ReadTimeoutError(endpoint_url="http://127.0.0.1:4599/"))

    assert isinstance(error, AwsUnreachableError)
    assert str(error).startswith(
        'Read timeout on endpoint URL: "http://127.0.0.1:4599/". Check the network'
    )


def test_a_value_aws_refuses_before_sending_is_one_line():
    report = "Invalid value for parameter Timeout, value: 0, valid min value: 1"

    error = from_botocore(ParamValidationError(report=report))

    assert type(error) is MlessError
    assert "\n" not in str(error)
    assert str(error) == f"Parameter validation failed: {report}"
