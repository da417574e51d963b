"""Which Python runs a function's execution environments, and what it can import.

A function runs under the Python its runtime names when the lab has one:

1. the interpreter or virtual environment named for it (`interpreter:` in
   mless.yaml), whatever its version;
2. the lab's own interpreter, when its version is the runtime's;
3. `pythonX.Y` on PATH (pyenv's shims skipped: they depend on `pyenv global`),
   then in pyenv's versions directory, then among uv's managed Pythons.

Otherwise it runs under the lab's own interpreter, and the pool says so once.

Lambda's Python runtimes include boto3, so handlers import it without shipping
it. An interpreter that cannot import boto3 by itself gets the lab's boto3,
with exactly the packages boto3 needs, from a directory appended to the *end*
of sys.path: the function's code, its layers and its own packages (a virtual
environment's) always come first. The same holds for the debugger packages
when a debugger is on. A directory of links to the lab's packages, rather than
the lab's whole site-packages, keeps the lab's other packages (moto, click,
...) out of the handler's reach.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import ConfigurationError

logger = logging.getLogger(__name__)

# Importing boto3 under an interpreter that has never compiled it takes a few
# seconds on a slow disk; the probe runs once per interpreter.
PROBE_TIMEOUT_SECONDS = 30

# Modules the probe looks for; the lab supplies boto3 and the debuggers when
# an interpreter lacks them, and prefers PyCharm's own build of pydevd.
PROBED_MODULES = ("boto3", "debugpy", "pydevd", "pydevd_pycharm")

_RUNTIME = re.compile(r"^python(\d+)\.(\d+)$")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

# Runs under the candidate interpreter (any Python 3), so it stays plain.
_PROBE = """
import importlib.util, json, sys
found = [name for name in sys.argv[2:] if importlib.util.find_spec(name)]
lab_boto3_error = None
if "boto3" not in found and sys.argv[1]:
    sys.path.append(sys.argv[1])
    try:
        import boto3
    except Exception as exc:
        lab_boto3_error = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps({"version": list(sys.version_info[:2]), "found": found,
                  "lab_boto3_error": lab_boto3_error}))
"""


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter, and what it can import without the lab's help."""

    path: str
    version: tuple[int, int]
    modules: frozenset[str]
    # Why the lab's boto3 does not import under it (None: it does, or the
    # interpreter has its own).
    lab_boto3_error: str | None = None

    @property
    def version_text(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def takes_lab_boto3(self) -> bool:
        """Whether the lab's boto3 must be, and can be, put within its reach."""
        return "boto3" not in self.modules and self.lab_boto3_error is None


@dataclass(frozen=True)
class InterpreterChoice:
    """The interpreter a function runs under, with what the lab must say once."""

    interpreter: Interpreter
    warnings: tuple[str, ...] = ()


def runtime_version(runtime: str) -> tuple[int, int] | None:
    """(3, 12) for python3.12; None for a runtime that is not Python's."""
    match = _RUNTIME.match(runtime)
    return (int(match[1]), int(match[2])) if match else None


def choose_interpreter(
    function: str, runtime: str, configured: str | None
) -> InterpreterChoice:
    """The interpreter for a Python function, as the module docstring orders them."""
    wanted = runtime_version(runtime)
    if configured:
        interpreter = _configured(function, configured)
        warnings = [_version_mismatch(function, runtime, interpreter)]
    else:
        found = find_python(wanted) if wanted else None
        interpreter = found or lab_interpreter()
        warnings = [None if found else _fallback(function, runtime, interpreter)]
    warnings.append(_boto3_warning(function, interpreter))
    return InterpreterChoice(interpreter, tuple(w for w in warnings if w))


def lab_interpreter() -> Interpreter:
    """The interpreter running the lab, which has everything mless installs."""
    found = [name for name in PROBED_MODULES if importlib.util.find_spec(name)]
    return Interpreter(sys.executable, sys.version_info[:2], frozenset(found))


def find_python(version: tuple[int, int]) -> Interpreter | None:
    """A working Python of this version on this machine, or None."""
    if sys.version_info[:2] == version:
        return lab_interpreter()
    for candidate in _candidates(version):
        interpreter = probe(str(candidate))
        if interpreter is not None and interpreter.version == version:
            return interpreter
    return None


def _candidates(version: tuple[int, int]) -> Iterator[Path]:
    number = f"{version[0]}.{version[1]}"
    name = f"python{number}"
    shims = (_pyenv_root() / "shims").resolve()
    path = os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and Path(entry).resolve() != shims
    )
    on_path = shutil.which(name, path=path)
    if on_path:
        yield Path(on_path)
    yield from _newest_first(_pyenv_root() / "versions", f"{number}.*", name)
    yield from _newest_first(_uv_root(), f"cpython-{number}.*", name)


def _newest_first(root: Path, pattern: str, name: str) -> Iterator[Path]:
    if not root.is_dir():
        return
    installs = [path for path in root.glob(pattern) if (path / "bin" / name).exists()]
    for install in sorted(installs, key=_patch_level, reverse=True):
        yield install / "bin" / name


def _patch_level(install: Path) -> tuple[int, ...]:
    # "3.12.1" for pyenv, "cpython-3.12.1-linux-x86_64-gnu" for uv.
    match = re.search(r"\d+(\.\d+)*", install.name)
    return tuple(int(part) for part in match[0].split(".")) if match else ()


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _uv_root() -> Path:
    configured = os.environ.get("UV_PYTHON_INSTALL_DIR")
    if configured:
        return Path(configured)
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "uv" / "python"


def interpreter_path(configured: str) -> Path:
    """The python executable a setting names: a path, a virtual environment, a name.

    A bare name that is not a path here (python3.12) is looked up on PATH.
    The path is made absolute, since environments start in the code directory,
    but its links are kept: a virtual environment's python is a link whose
    target would not know the environment's packages.
    """
    path = Path(configured).expanduser()
    if path.is_dir():
        path = path / "bin" / "python"
    elif not path.exists() and os.sep not in configured:
        path = Path(shutil.which(configured) or configured)
    return path.absolute()


def _configured(function: str, configured: str) -> Interpreter:
    path = interpreter_path(configured)
    if str(path) == sys.executable:
        return lab_interpreter()
    if not os.access(path, os.X_OK) or path.is_dir():
        raise ConfigurationError(
            f"The interpreter {configured!r} of function {function!r} is not a "
            "Python executable or a virtual environment holding bin/python."
        )
    interpreter = probe(str(path))
    if interpreter is None:
        raise ConfigurationError(
            f"The interpreter {configured!r} of function {function!r} did not "
            "start; run it by hand to see why."
        )
    return interpreter


_probe_lock = threading.Lock()
_probed: dict[str, Interpreter | None] = {}


def probe(path: str) -> Interpreter | None:
    """Ask an interpreter its version and what it imports; None if it fails."""
    with _probe_lock:
        if path not in _probed:
            _probed[path] = _run_probe(path)
        return _probed[path]


def _run_probe(path: str) -> Interpreter | None:
    lab_boto3 = lab_packages("boto3")
    command = [path, "-c", _PROBE, str(lab_boto3 or ""), *PROBED_MODULES]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            # As the execution environment sees it: no PYTHONPATH, no venv.
            env={"PATH": os.environ.get("PATH", ""), "LANG": "en_US.UTF-8"},
            cwd=tempfile.gettempdir(),
            check=True,
        )
        answer = json.loads(completed.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        logger.debug("Interpreter %s did not answer the probe: %s", path, exc)
        return None
    major, minor = answer["version"]
    return Interpreter(
        path, (major, minor), frozenset(answer["found"]), answer["lab_boto3_error"]
    )


def _version_mismatch(
    function: str, runtime: str, interpreter: Interpreter
) -> str | None:
    # Naming the lab's own interpreter is deliberate (the local cloud runs the
    # proxy that way); any other mismatch is worth a word.
    if interpreter.path == sys.executable:
        return None
    if runtime_version(runtime) in (None, interpreter.version):
        return None
    return (
        f"Function {function} declares {runtime}, but the interpreter named for it "
        f"({interpreter.path}) is Python {interpreter.version_text}; it runs there."
    )


def _fallback(function: str, runtime: str, interpreter: Interpreter) -> str:
    version = runtime[len("python") :]
    return (
        f"Function {function} declares {runtime}, but the lab found no Python "
        f"{version} (looked for python{version} on PATH, in {_pyenv_root()}/versions "
        f"and among uv's Pythons); it runs under Python {interpreter.version_text} "
        "instead. Install that version, or name an interpreter for the function "
        "in mless.yaml."
    )


def _boto3_warning(function: str, interpreter: Interpreter) -> str | None:
    if interpreter.lab_boto3_error is None:
        return None
    return (
        f"Function {function} runs under Python {interpreter.version_text} "
        f"({interpreter.path}), which has no boto3 of its own and cannot import "
        f"the lab's ({interpreter.lab_boto3_error}); its handler cannot import "
        "boto3. Give the function a virtual environment with boto3 installed "
        "(interpreter: path/to/.venv in mless.yaml)."
    )


# --- The lab's packages, lent to interpreters that lack them ----------------

_lent_lock = threading.Lock()
_lent: dict[str, Path | None] = {}


def lab_packages(distribution: str) -> Path | None:
    """A directory holding the lab's `distribution` and its requirements, only.

    Made once per lab process (links, not copies) and removed when it exits;
    None when the lab itself does not have the distribution.
    """
    with _lent_lock:
        if distribution not in _lent:
            _lent[distribution] = _link_packages(distribution)
        return _lent[distribution]


def _link_packages(distribution: str) -> Path | None:
    try:
        closure = _requirement_closure(distribution)
    except importlib.metadata.PackageNotFoundError:
        logger.debug("The lab has no %s to lend to other interpreters", distribution)
        return None
    directory = Path(tempfile.mkdtemp(prefix=f"mless-{distribution}-"))
    atexit.register(shutil.rmtree, directory, True)
    for dist in closure:
        for entry in _top_level_entries(dist):
            target = directory / entry
            if not target.exists():
                target.symlink_to(Path(str(dist.locate_file(entry))))
    return directory


def _requirement_closure(name: str) -> list[importlib.metadata.Distribution]:
    """The distribution and, transitively, every one it requires (extras aside)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [name]
    while pending:
        current = pending.pop()
        key = re.sub(r"[-_.]+", "-", current).lower()
        if key in found:
            continue
        dist = importlib.metadata.distribution(current)
        found[key] = dist
        pending.extend(_required_names(dist.requires or []))
    return list(found.values())


def _required_names(requirements: Sequence[str]) -> list[str]:
    names = []
    for requirement in requirements:
        _, _, marker = requirement.partition(";")
        # Requirements of an extra are optional; version markers are kept,
        # since the borrowing interpreter's version is not the lab's.
        match = _REQUIREMENT_NAME.match(requirement)
        if match and "extra" not in marker:
            names.append(match[1])
    return names


def _top_level_entries(dist: importlib.metadata.Distribution) -> set[str]:
    """Names directly under site-packages that belong to the distribution."""
    entries = set()
    for file in dist.files or []:
        top = file.parts[0]
        if top not in ("..", "__pycache__"):
            entries.add(top)
    return entries


# --- The command ------------------------------------------------------------


def python_command(
    interpreter: Interpreter,
    worker: Path,
    layers: Sequence[str],
    *,
    lent: Sequence[Path] = (),
    prelude: Sequence[str] = (),
) -> list[str]:
    """The command that starts the Python worker under `interpreter`.

    With nothing to lend and no prelude it is `python python_worker.py LAYER...`.
    Otherwise a short program given with -c appends the lent directories to
    sys.path, runs the prelude (which starts a debugger) and then runs the
    worker as `python python_worker.py` would. It is one argument, so that
    the pool still passes the control pipes right after it.
    """
    if not lent and not prelude:
        return [interpreter.path, str(worker), *layers]
    program = [
        "import runpy, sys",
        f"sys.argv[0] = {str(worker)!r}",
        f"sys.path[0] = {str(worker.parent)!r}",
        *(f"sys.path.append({str(directory)!r})" for directory in lent),
        *prelude,
        "runpy.run_path(sys.argv[0], run_name='__main__')",
    ]
    return [interpreter.path, "-c" + "\n".join(program), *layers]
