"""One endpoint for AWS clients on the local cloud: Invoke runs code, the rest is moto.

moto answers Lambda's Invoke without running anything. The gateway sits in
front of moto's server: an Invoke request (`POST /2015-03-31/functions/NAME/
invocations`) goes to the Lambda stand-in, which runs the deployed proxy and
so the handler in the lab; every other request is passed to moto unchanged.
So `aws --endpoint-url http://127.0.0.1:PORT lambda invoke ...` and boto3
with `endpoint_url=` behave as they would against AWS.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.exceptions import ClientError

from bridge.errors import MlessError
from bridge.lambda_service import LambdaService

logger = logging.getLogger(__name__)

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<function>[^/?]+)/invocations")
# Headers that describe one hop, not the request, and must not be forwarded.
_HOP_HEADERS = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    # The gateway has answered 100-continue itself, and moto's server drops
    # the body of a request that asks again.
    "expect",
}
_FORWARD_TIMEOUT_SECONDS = 60


class LocalGateway:
    """Serves the local cloud on one loopback port until `close`."""

    def __init__(self, lambda_service: LambdaService, moto_url: str, port: int = 0):
        handler = _handler_class(lambda_service, moto_url)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-gateway", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def function_name(path_part: str) -> str:
    """The function's name from Invoke's path: a name, ARN or partial ARN."""
    name = urllib.parse.unquote(path_part)
    if name.startswith("arn:"):
        return name.split(":")[6]
    return name.split(":")[0]


def _handler_class(
    lambda_service: LambdaService, moto_url: str
) -> type[BaseHTTPRequestHandler]:
    moto = urllib.parse.urlsplit(moto_url)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            match = _INVOKE_PATH.match(self.path)
            if match:
                self._invoke(function_name(match["function"]))
            else:
                self._forward()

        def do_GET(self) -> None:
            self._forward()

        def do_PUT(self) -> None:
            self._forward()

        def do_DELETE(self) -> None:
            self._forward()

        def do_HEAD(self) -> None:
            self._forward()

        def _invoke(self, name: str) -> None:
            body = self._body()
            invocation_type = self.headers.get(
                "X-Amz-Invocation-Type", "RequestResponse"
            )
            if invocation_type == "DryRun":
                self._answer(204, b"")
                return
            try:
                result = lambda_service.invoke(
                    name,
                    body or b"{}",
                    invocation_type,
                    self.headers.get("X-Amz-Client-Context"),
                )
            except MlessError as exc:
                # Lambda's answer to a payload it cannot parse.
                error = {"Type": "User", "message": str(exc)}
                self._answer(
                    400,
                    json.dumps(error).encode(),
                    {"X-Amzn-ErrorType": "InvalidRequestContentException"},
                )
                return
            except ClientError as exc:
                # Lambda's own answer, e.g. ResourceNotFoundException for a
                # function that does not exist.
                aws_error = exc.response.get("Error", {})
                status = exc.response.get("ResponseMetadata", {}).get(
                    "HTTPStatusCode", 400
                )
                refusal = {
                    "Type": "User",
                    "message": aws_error.get("Message", str(exc)),
                }
                self._answer(
                    status,
                    json.dumps(refusal).encode(),
                    {"X-Amzn-ErrorType": aws_error.get("Code", "ServiceException")},
                )
                return
            headers = {"X-Amz-Executed-Version": "$LATEST"}
            if result.function_error:
                headers["X-Amz-Function-Error"] = result.function_error
            self._answer(result.status_code, result.payload, headers)

        def _forward(self) -> None:
            # http.client sends the request as it came; urllib would add a
            # form Content-Type that moto's server then parses the body as.
            body = self._body() if self.command not in ("GET", "HEAD") else None
            headers = {
                key: value
                for key, value in self.headers.items()
                if key.lower() not in _HOP_HEADERS
            }
            connection = http.client.HTTPConnection(
                moto.hostname or "127.0.0.1",
                moto.port,
                timeout=_FORWARD_TIMEOUT_SECONDS,
            )
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                self._relay(response.status, response.getheaders(), response.read())
            finally:
                connection.close()

        def _relay(
            self, status: int, headers: list[tuple[str, str]], body: bytes
        ) -> None:
            kept = {k: v for k, v in headers if k.lower() not in _HOP_HEADERS}
            self._answer(status, body, kept)

        def _answer(
            self, status: int, body: bytes, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            if "Content-Type" not in (headers or {}):
                self.send_header("Content-Type", "application/json")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                return self._chunked_body()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _chunked_body(self) -> bytes:
            # boto3 streams S3 uploads in HTTP chunks (with AWS's own chunk
            # framing inside, which moto decodes); undo only the HTTP layer.
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("gateway: " + format, *args)

    return Handler
