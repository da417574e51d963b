"""Figure 7: a 5 MB event and response through the bridge, against S3 itself."""

from __future__ import annotations

import json
import uuid

from bench import cpu
from bench.figures import BridgeRig
from bench.stats import Figure, Summary, timed_ms

EVENT = json.dumps({"data": "x" * 5_000_000}).encode()


def large_payloads(rig: BridgeRig, rounds: int) -> Figure:
    """The bridge carrying 5 MB each way, against putting and reading the bytes."""
    s3 = rig.cloud.clients.client("s3")
    bucket = rig.cloud.stack.payload_bucket_name

    def through_bridge() -> None:
        result = rig.cloud.lambda_service.invoke("bench-noop", EVENT)
        if result.function_error or len(result.payload) != len(EVENT):
            raise RuntimeError(result.payload[:200].decode(errors="replace"))

    def through_s3() -> None:
        # The event goes one way and the response the other: two puts, two reads.
        for _ in range(2):
            key = f"bench/{uuid.uuid4().hex}"
            s3.put_object(Bucket=bucket, Key=key, Body=EVENT)
            s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            s3.delete_object(Bucket=bucket, Key=key)

    through_bridge()
    bridge: list[float] = []
    direct: list[float] = []
    for _ in range(rounds):
        direct.append(timed_ms(through_s3))
        bridge.append(timed_ms(through_bridge))
    figure = Figure(
        "large payloads (5 MB each way)",
        "ms",
        Summary.of(bridge),
        Summary.of(direct),
        "the same bytes put to and read from S3 directly, both ways",
        "at most 3 x",
    )
    count = max(2, rounds // 3)
    return Figure(
        figure.name,
        figure.unit,
        figure.measured,
        figure.baseline,
        figure.baseline_name,
        figure.target,
        (figure.ratio_median or 99) <= 3,
        [
            "CPU per invocation, ms, bridge: "
            + cpu.described(cpu.cpu_ms_per_action(through_bridge, count)),
            "CPU per invocation, ms, S3 directly: "
            + cpu.described(cpu.cpu_ms_per_action(through_s3, count)),
        ],
    )
