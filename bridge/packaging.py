"""The proxy's deployment packages: zips of `lambda_proxy`, the same bytes each time.

Two packages hold the same files: the function's, with `lambda_proxy/` at
its root, and the layer's, with it under `python/`, where Lambda's Python
runtimes look in /opt. A deploy uploads the function's package under a key
derived from its content and the layer's under the same key prefixed with
`layer/`, so the stack's `ProxyCodeKey` parameter changes exactly when the
code does, and a second deploy of the same code finds nothing to update.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile
from pathlib import Path

from bridge.errors import ConfigurationError

PROXY_PACKAGE = "lambda_proxy"

# The earliest time a zip header can hold; any fixed value would do.
_FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
# rw-r--r--, as a regular file, in the upper half of external_attr.
_FILE_MODE = 0o100644 << 16
# Headers say "made on Unix" wherever the zip is built.
_UNIX = 3


# Where a layer's Python packages go, inside the layer's zip.
LAYER_PYTHON_DIR = "python/"
# The layer package's key is the function package's key with this in front.
LAYER_KEY_PREFIX = "layer/"


def build_proxy_zip() -> bytes:
    """Return the proxy's deployment package; the same sources give the same bytes."""
    return _zip_proxy_package(prefix="")


def build_proxy_layer_zip() -> bytes:
    """Return the proxy as a layer package; the same sources give the same bytes."""
    return _zip_proxy_package(prefix=LAYER_PYTHON_DIR)


def layer_key(function_code_key: str) -> str:
    """Return the S3 key of the layer package built with this function package."""
    return LAYER_KEY_PREFIX + function_code_key


def _zip_proxy_package(prefix: str) -> bytes:
    root = proxy_package_dir()
    buffer = io.BytesIO()
    files = {
        prefix + p.relative_to(root.parent).as_posix(): p for p in root.rglob("*.py")
    }
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE_TIME)
            # Stored, not deflated: deflate's output can differ between zlib
            # builds, and the package must hash the same on every machine.
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = _FILE_MODE
            info.create_system = _UNIX
            archive.writestr(info, files[name].read_bytes())
    return buffer.getvalue()


def code_key(zip_bytes: bytes) -> str:
    """Return the S3 key that names this package by its content."""
    digest = hashlib.sha256(zip_bytes).hexdigest()
    return f"mless/proxy-{digest[:16]}.zip"


def proxy_package_dir() -> Path:
    """Return the directory of the installed `lambda_proxy` package."""
    spec = importlib.util.find_spec(PROXY_PACKAGE)
    locations = spec.submodule_search_locations if spec else None
    # An editable install adds a path-hook entry that is not a directory.
    directories = [Path(entry) for entry in locations or () if Path(entry).is_dir()]
    if not directories:
        raise ConfigurationError(
            f"The {PROXY_PACKAGE} package is not installed; reinstall mless."
        )
    return directories[0]
