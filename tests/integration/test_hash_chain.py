"""The S3 hash chain: notifications from S3 run the example handler in the lab."""

from __future__ import annotations

from bridge.demo import demo_files, run_demo


def test_every_uploaded_object_gets_its_sha1_written_next_to_it(local_cloud, lab_log):
    checks = run_demo(lab_log, lambda text: None, cloud=local_cloud)

    assert [check.key for check in checks] == list(demo_files())
    assert all(check.ok for check in checks), [c for c in checks if not c.ok]
