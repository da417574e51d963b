"""A small HTTP API behind API Gateway (payload format 2.0) that answers at once.

    GET  /hello?name=Ada   a JSON greeting
    GET  /badge.png        a PNG image: a binary body, base64-encoded as
                           API Gateway expects, with isBase64Encoded set
    POST /echo             the request's body back as it came, text or binary
    anything else          404, as JSON

API Gateway waits for the answer, so the lab runs this synchronously: the
client's HTTP request is open while the handler runs on your machine.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib

BADGE_SIDE_PIXELS = 16
BADGE_RGB = (255, 153, 0)


def handler(event, context):
    method = event["requestContext"]["http"]["method"]
    path = event["rawPath"]
    print(f"{method} {path}")
    if (method, path) == ("GET", "/hello"):
        return hello(event)
    if (method, path) == ("GET", "/badge.png"):
        return binary(badge_png(), "image/png")
    if (method, path) == ("POST", "/echo"):
        return echo(event)
    return json_response(404, {"message": f"No route for {method} {path}"})


def hello(event):
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return json_response(200, {"message": f"Hello, {name}!"})


def echo(event):
    content_type = event.get("headers", {}).get("content-type", "text/plain")
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return binary(base64.b64decode(body), content_type)
    return {"statusCode": 200, "headers": {"content-type": content_type}, "body": body}


def json_response(status, document):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(document),
    }


def binary(data, content_type):
    # API Gateway decodes the body back to bytes before it reaches the client.
    return {
        "statusCode": 200,
        "headers": {"content-type": content_type},
        "isBase64Encoded": True,
        "body": base64.b64encode(data).decode("ascii"),
    }


def badge_png():
    """A square of one colour, as a PNG file: signature, IHDR, IDAT, IEND."""
    row = b"\x00" + bytes(BADGE_RGB) * BADGE_SIDE_PIXELS  # filter type 0: none
    pixels = zlib.compress(row * BADGE_SIDE_PIXELS)
    side = BADGE_SIDE_PIXELS
    # 8 bits per channel, colour type 2 (RGB), default compression and
    # filtering, no interlace.
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


def _chunk(kind, data):
    checksum = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)
