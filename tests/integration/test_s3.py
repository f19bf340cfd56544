from __future__ import annotations

from typing import Any

from vectorlake.config import Config


def _s3(cfg: Config) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=cfg.s3_endpoint_url,
        region_name=cfg.s3.region,
        aws_access_key_id="testing",  # moto accepts any credentials; real ones come from the environment
        aws_secret_access_key="testing",  # noqa: S106
    )


def test_put_get_delete_on_the_local_s3(cfg: Config, unique_name: str) -> None:
    s3 = _s3(cfg)
    bucket = unique_name
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key="images/L1/0.jpg", Body=b"\xff\xd8jpeg bytes")
        assert s3.get_object(Bucket=bucket, Key="images/L1/0.jpg")["Body"].read() == b"\xff\xd8jpeg bytes"
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert listed == ["images/L1/0.jpg"]
        s3.delete_object(Bucket=bucket, Key="images/L1/0.jpg")
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    finally:
        s3.delete_bucket(Bucket=bucket)


def test_object_versions_are_kept_and_can_all_be_deleted(cfg: Config, unique_name: str) -> None:
    s3 = _s3(cfg)
    bucket = unique_name
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"v1", b"v2"):
        s3.put_object(Bucket=bucket, Key="k", Body=body)
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert len(versions) == 2
    for v in versions:
        s3.delete_object(Bucket=bucket, Key="k", VersionId=v["VersionId"])
    listing = s3.list_object_versions(Bucket=bucket)
    assert "Versions" not in listing and "DeleteMarkers" not in listing
    s3.delete_bucket(Bucket=bucket)
