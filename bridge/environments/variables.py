"""The process environment of an execution environment, as Lambda builds it.

Lambda layers the variables: the function's own first, then the credentials,
then the runtime's and the platform's, later layers winning (TZ excepted: a
function that sets its own time zone keeps it). Nothing of the lab's shell is
inherited but PATH, so the developer's profile, credentials and time zone
cannot leak into the handler.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lambda_proxy import wire

LAMBDA_TZ = ":UTC"
LAMBDA_LANG = "en_US.UTF-8"

# The names Lambda refuses in a function's configuration: it sets them itself.
RESERVED_NAMES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


@dataclass(frozen=True)
class Platform:
    """What the lab adds that Lambda does not: where AWS is, and the scratch dir.

    The scratch dir is the environment's /tmp, named by TMPDIR unless
    `scratch_in_tmpdir` is off.
    """

    endpoint_url: str | None = None
    scratch_dir: str | None = None
    scratch_in_tmpdir: bool = True


def credential_variables(credentials: wire.Credentials) -> dict[str, str]:
    """The role's credentials as the variables boto3 and the AWS SDKs read."""
    variables = {
        "AWS_ACCESS_KEY_ID": credentials["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": credentials["secret_access_key"],
    }
    if credentials.get("session_token"):
        variables["AWS_SESSION_TOKEN"] = credentials["session_token"] or ""
    return variables


def lambda_environment(
    function: wire.FunctionIdentity,
    function_variables: Mapping[str, str],
    credentials: wire.Credentials,
    *,
    handler: str,
    runtime: str,
    code_dir: str,
    platform: Platform,
) -> dict[str, str]:
    """Every variable an execution environment of this function starts with."""
    variables = dict(function_variables)
    variables.update(credential_variables(credentials))
    variables.update(
        {
            "_HANDLER": handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": function["name"],
            "AWS_LAMBDA_FUNCTION_VERSION": function["version"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function["memory_mb"]),
            "AWS_LAMBDA_LOG_GROUP_NAME": function["log_group"],
            "AWS_LAMBDA_LOG_STREAM_NAME": function["log_stream"],
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": function["region"],
            "AWS_DEFAULT_REGION": function["region"],
            "LAMBDA_TASK_ROOT": code_dir,
            "LANG": LAMBDA_LANG,
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "TZ": function_variables.get("TZ", LAMBDA_TZ),
        }
    )
    if platform.endpoint_url:
        variables["AWS_ENDPOINT_URL"] = platform.endpoint_url
    if platform.scratch_dir and platform.scratch_in_tmpdir:
        variables["TMPDIR"] = platform.scratch_dir
    return variables
