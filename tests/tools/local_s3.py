"""Loads the objects of events/s3 (events/s3/BUCKET/KEY) into a local S3 API server, so
that the S3 events of events/ work through the real S3 client:

    moto_server -p 5000 &
    python3 tests/tools/local_s3.py [ENDPOINT]      (default http://127.0.0.1:5000)

boto3 comes with moto (pip install 'moto[server]').
"""
import pathlib
import sys

import boto3

endpoint = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000"
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
root = pathlib.Path(__file__).resolve().parents[2] / "events" / "s3"
for bucket in sorted(p for p in root.iterdir() if p.is_dir()):
    s3.create_bucket(Bucket=bucket.name)
    for path in sorted(p for p in bucket.rglob("*") if p.is_file()):
        key = path.relative_to(bucket).as_posix()
        s3.upload_file(str(path), bucket.name, key)
        print(f"s3://{bucket.name}/{key}")
