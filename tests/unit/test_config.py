"""mless.yaml and SAM templates become the lab's function settings, or a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ProjectConfig, load_project_config
from bridge.errors import ConfigFileError, ConfigurationError
from bridge.function_catalog import (
    DeployedFunction,
    FunctionCatalog,
    load_catalog,
    served_functions,
)
from bridge.function_settings import DebuggerKind, DebuggerSettings
from bridge.templates import (
    default_context,
    load_template,
    resolve,
    sam_stack_name,
    template_functions,
)

SAM_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
Globals:
  Function:
    Runtime: python3.12
    Handler: app.handler
    Timeout: 10
    Layers:
      - !Ref CommonLayer
    Environment:
      Variables:
        STAGE: !Ref Stage
        TABLE: global-table
Resources:
  CommonLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/common
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
  HashFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/hash
      Layers:
        - arn:aws:lambda:us-east-1:123456789012:layer:remote:3
      Environment:
        Variables:
          TABLE: !Ref Table
          TABLE_ARN: !GetAtt Table.Arn
          PREFIX: !Sub "${AWS::StackName}-${Stage}-${AWS::Region}"
          LITERAL: !Sub "${!NotAVariable}"
          JOINED: !Join ["/", [!Ref Stage, "x"]]
  NamedFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "named-${Stage}"
      CodeUri: src/named
      Handler: index.handler
      Runtime: nodejs20.x
  PlainFunction:
    Type: AWS::Lambda::Function
    Properties:
      Code: src/plain
      Handler: main.handler
      Runtime: python3.11
      Role: !GetAtt PlainRole.Arn
  PlainRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A SAM project: a template, its code directories and a layer."""
    for folder in ("src/hash", "src/named", "src/plain", "layers/common"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "template.yaml").write_text(SAM_TEMPLATE)
    return tmp_path


def _write(folder: Path, text: str) -> Path:
    path = folder / "mless.yaml"
    path.write_text(text)
    return path


# --- SAM templates -------------------------------------------------------------


def test_template_with_intrinsic_tags_loads_in_cloudformations_json_form(
    project: Path,
) -> None:
    template = load_template(project / "template.yaml")

    hash_function = template["Resources"]["HashFunction"]["Properties"]
    variables = hash_function["Environment"]["Variables"]
    assert variables["TABLE"] == {"Ref": "Table"}
    assert variables["TABLE_ARN"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert variables["PREFIX"] == {
        "Fn::Sub": "${AWS::StackName}-${Stage}-${AWS::Region}"
    }


def test_template_functions_apply_globals_as_sam_does(project: Path) -> None:
    functions = template_functions(project / "template.yaml")

    hash_function = functions["HashFunction"]
    assert hash_function.handler == "app.handler"
    assert hash_function.runtime == "python3.12"
    assert hash_function.code_dir == (project / "src/hash").resolve()
    # Maps merge (the function's TABLE replaces the global one), lists are
    # prepended: the local layer from Globals, the remote ARN is not local.
    assert hash_function.layers == ((project / "layers/common").resolve(),)
    assert functions["NamedFunction"].runtime == "nodejs20.x"
    assert functions["PlainFunction"].code_dir == (project / "src/plain").resolve()
    assert set(functions) == {"HashFunction", "NamedFunction", "PlainFunction"}


def test_template_variables_resolve_what_is_known_and_leave_out_the_rest(
    project: Path,
) -> None:
    functions = template_functions(
        project / "template.yaml",
        region="eu-west-1",
        stack_name="app",
        physical_ids={"Table": "app-Table-ABC"},
    )

    variables = dict(functions["HashFunction"].environment)
    assert variables == {
        "STAGE": "dev",
        "TABLE": "app-Table-ABC",
        "PREFIX": "app-dev-eu-west-1",
        "LITERAL": "${NotAVariable}",
        "JOINED": "dev/x",
    }
    assert functions["NamedFunction"].function_name == "named-dev"


def test_a_value_only_cloudformation_knows_resolves_to_none(project: Path) -> None:
    context = default_context(load_template(project / "template.yaml"))

    assert resolve({"Fn::GetAtt": ["Table", "Arn"]}, context) is None
    assert resolve({"Fn::Sub": "${AWS::Region}"}, context) is None
    assert resolve({"Ref": "Stage"}, context) == "dev"


def test_broken_template_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Resources:\n  A: [unclosed\n")

    with pytest.raises(
        ConfigFileError, match=r"template\.yaml: line \d+: is not valid"
    ):
        load_template(path)


def test_samconfig_names_the_stack_deployed_from_the_template(project: Path) -> None:
    (project / "samconfig.toml").write_text(
        'version = 0.1\n[default.deploy.parameters]\nstack_name = "my-app"\n'
    )

    assert sam_stack_name(project / "template.yaml") == "my-app"


# --- mless.yaml ----------------------------------------------------------------


def test_mless_yaml_gives_each_function_its_lab_settings(project: Path) -> None:
    path = _write(
        project,
        "stack: dev-stack\n"
        "template: template.yaml\n"
        "template_stack: my-app\n"
        "reload: false\n"
        "functions:\n"
        "  HashFunction:\n"
        "    interpreter: .venv/bin/python\n"
        "    concurrency: 2\n"
        "    layers: [layers/common]\n"
        "    environment: {DEBUG: true, RETRIES: 3}\n"
        "    debugger: {kind: debugpy, port: 5679}\n",
    )

    config = load_project_config(path)

    assert (config.stack, config.template_stack, config.reload) == (
        "dev-stack",
        "my-app",
        False,
    )
    assert config.template == project / "template.yaml"
    function = config.functions["HashFunction"]
    assert function.interpreter == str(project.resolve() / ".venv/bin/python")
    assert function.concurrency == 2
    assert function.layers == ((project / "layers/common").resolve(),)
    assert function.environment == (("DEBUG", "true"), ("RETRIES", "3"))
    assert function.debugger == DebuggerSettings(DebuggerKind.DEBUGPY, port=5679)


def test_no_mless_yaml_is_an_empty_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert load_project_config(None) == ProjectConfig()


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("stak: x\n", "stak", "unknown key; expected one of stack, template"),
        (
            "functions:\n  F:\n    concurrency: two\n",
            "functions.F.concurrency",
            "expected a whole number of at least 1; got 'two'",
        ),
        (
            "functions:\n  F:\n    concurrency: 0\n",
            "functions.F.concurrency",
            "expected a whole number of at least 1; got 0",
        ),
        (
            "functions:\n  F:\n    debugger: {kind: gdb}\n",
            "functions.F.debugger.kind",
            "expected one of debugpy, pydevd, node-inspect; got 'gdb'",
        ),
        (
            "functions:\n  F:\n    debugger: {kind: pydevd, port: 70000}\n",
            "functions.F.debugger.port",
            "expected a whole number from 1 to 65535; got 70000",
        ),
        (
            "functions:\n  F:\n    code_dir: nowhere\n",
            "functions.F.code_dir",
            "expected the path of an existing directory; got 'nowhere'",
        ),
        ("reload: sometimes\n", "reload", "expected true or false; got 'sometimes'"),
        ("functions: [a, b]\n", "functions", "expected a mapping of keys to values"),
        (
            "functions:\n  F:\n    environment: {A: [1]}\n",
            "functions.F.environment.A",
            "expected a string, number or boolean; got [1]",
        ),
        (
            "functions:\n  F:\n    environment: {AWS_REGION: eu-west-1}\n",
            "functions.F.environment.AWS_REGION",
            "reserved: Lambda sets it, and a function cannot.",
        ),
    ],
)
def test_bad_mless_yaml_names_the_file_the_key_and_what_was_expected(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(ConfigFileError) as caught:
        load_project_config(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert expected in message
    assert "\n" not in message


def test_mless_yaml_that_is_not_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "functions:\n  F: {handler: app.handler\n")

    with pytest.raises(ConfigFileError, match=r"mless\.yaml: line \d+: is not valid"):
        load_project_config(path)


# --- From both to the lab ------------------------------------------------------


def test_logical_ids_find_their_names_through_the_deployed_stack(project: Path) -> None:
    config = load_project_config(_write(project, "template_stack: my-app\n"))
    asked = []

    def physical_ids(stack: str) -> dict[str, str]:
        asked.append(stack)
        return {"HashFunction": "my-app-HashFunction-1A2B", "Table": "t"}

    catalog = load_catalog(
        config, project / "template.yaml", physical_ids_of=physical_ids
    )

    assert asked == ["my-app"]
    assert catalog.aws_name("HashFunction") == "my-app-HashFunction-1A2B"
    assert catalog.aws_name("NamedFunction") == "named-dev"
    # A name the files do not know is taken as a name in AWS.
    assert catalog.aws_name("elsewhere") == "elsewhere"
    with pytest.raises(ConfigurationError, match="PlainFunction"):
        catalog.aws_name("PlainFunction")


def test_mless_yaml_wins_over_the_template_and_the_template_over_aws(
    project: Path,
) -> None:
    config = load_project_config(
        _write(
            project,
            "functions:\n"
            "  HashFunction:\n"
            "    name: hash\n"
            "    handler: other.handler\n"
            "    environment: {STAGE: lab}\n",
        )
    )
    catalog = load_catalog(config, project / "template.yaml")

    settings = catalog.settings(
        "hash", DeployedFunction("hash", "deployed.handler", "python3.9")
    )

    assert settings.handler == "other.handler"
    assert settings.runtime == "python3.12"
    variables = dict(settings.environment)
    assert variables["STAGE"] == "lab"
    # The function's own TABLE (a !Ref only the deployed stack knows) replaces
    # the global one and is left to the proxy, which forwards its value.
    assert "TABLE" not in variables


def test_a_function_known_only_in_aws_runs_its_deployed_handler_from_here(
    tmp_path: Path,
) -> None:
    catalog = FunctionCatalog(ProjectConfig())

    settings = catalog.settings(
        "orders", DeployedFunction("orders", "orders.main", "nodejs20.x"), tmp_path
    )

    assert (settings.handler, settings.runtime, settings.code_dir) == (
        "orders.main",
        "nodejs20.x",
        tmp_path,
    )


def test_a_function_served_by_the_stacks_proxy_takes_its_name(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    config = load_project_config(
        _write(
            tmp_path,
            "functions:\n"
            "  hash:\n"
            "    proxy: true\n"
            "    code_dir: code\n"
            "    handler: app.handler\n",
        )
    )

    catalog = FunctionCatalog(config, proxy_function_name="mless-proxy")

    assert catalog.names() == ["mless-proxy"]
    assert catalog.settings("mless-proxy").code_dir == (tmp_path / "code").resolve()


def test_served_functions_skip_the_incomplete_unless_required(project: Path) -> None:
    config = load_project_config(_write(project, "template_stack: my-app\n"))
    catalog = load_catalog(
        config,
        project / "template.yaml",
        physical_ids_of=lambda stack: {"HashFunction": "hash-1"},
    )

    served = served_functions(catalog, [], lambda name: None, project)

    # PlainFunction's name in AWS is unknown, so nothing could reach it.
    assert sorted(f.name for f in served) == ["hash-1", "named-dev"]
    with pytest.raises(ConfigurationError, match="handler of function 'gone'"):
        served_functions(catalog, ["gone"], lambda name: None, project)


def test_the_hash_examples_mless_yaml_serves_the_proxy_with_its_handler() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "hash"
    config = load_project_config(example / "mless.yaml")

    settings = FunctionCatalog(config, proxy_function_name="mless-proxy").settings(
        "mless-proxy"
    )

    assert (settings.handler, settings.code_dir) == ("app.handler", example)
    assert (example / "app.py").is_file()


def test_concurrency_defaults_to_the_reserved_concurrency_unless_set(
    tmp_path: Path,
) -> None:
    deployed = DeployedFunction("orders", "app.handler", "python3.12", 3)
    plain = FunctionCatalog(ProjectConfig())
    (tmp_path / "mless.yaml").write_text(
        "functions:\n  orders:\n    code_dir: .\n    concurrency: 7\n"
    )
    configured = FunctionCatalog(load_project_config(tmp_path / "mless.yaml"))

    assert plain.settings("orders", deployed, tmp_path).concurrency == 3
    assert configured.settings("orders", deployed, tmp_path).concurrency == 7
    unreserved = DeployedFunction("orders", "app.handler", "python3.12")
    assert plain.settings("orders", unreserved, tmp_path).concurrency == 10
