#!/usr/bin/env python3
"""Drives updraft's compatibility doors with the platforms' own SDKs, as a migrating
team's scripts would: AWS's boto3 (Signature Version 4, `iot` client) against
/compat/aws and Aliyun's Python SDK (signature 1.0, HMAC-SHA1) against /compat/aliyun.
Run by crates/updraft/tests/compat_clients.rs; prints one JSON object of what each
client saw. Arguments: base URL, access key id, secret, firmware id for AWS, firmware
id for Aliyun, AWS target thing name, Aliyun product key."""
import json
import sys
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkiot.request.v20180120.CancelOTATaskByJobRequest import CancelOTATaskByJobRequest
from aliyunsdkiot.request.v20180120.CreateOTAStaticUpgradeJobRequest import CreateOTAStaticUpgradeJobRequest
from aliyunsdkiot.request.v20180120.QueryOTAJobRequest import QueryOTAJobRequest

url, key_id, secret, aws_firmware, aliyun_firmware, thing, product = sys.argv[1:8]
out = {}

# AWS: only the endpoint URL changes.
def iot(secret_key):
    return boto3.client(
        "iot",
        endpoint_url=f"{url}/compat/aws",
        region_name="eu-west-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret_key,
    )

client = iot(secret)
created = client.create_ota_update(
    otaUpdateId="spring",
    description="spring release",
    targets=[f"arn:aws:iot:eu-west-1:123456789012:thing/{thing}"],
    targetSelection="SNAPSHOT",
    files=[{"fileName": "app.bin", "fileLocation": {"s3Location": {"bucket": "updraft", "key": f"{aws_firmware}/app.bin"}}}],
    roleArn="arn:aws:iam::123456789012:role/ota",
)
out["aws_created"] = {k: created[k] for k in ("otaUpdateId", "awsIotJobId", "otaUpdateStatus")}
info = client.get_ota_update(otaUpdateId="spring")["otaUpdateInfo"]
out["aws_get"] = {"otaUpdateId": info["otaUpdateId"], "targetSelection": info["targetSelection"]}
out["aws_list"] = [u["otaUpdateId"] for u in client.list_ota_updates()["otaUpdates"]]
for name, call in [
    ("aws_wrong_secret", lambda: iot("not-the-secret").get_ota_update(otaUpdateId="spring")),
    ("aws_missing", lambda: client.get_ota_update(otaUpdateId="autumn")),
    ("aws_again", lambda: client.create_ota_update(
        otaUpdateId="spring",
        targets=[thing],
        files=[{"fileName": "app.bin", "fileLocation": {"s3Location": {"bucket": "updraft", "key": f"{aws_firmware}/app.bin"}}}],
        roleArn="arn:aws:iam::123456789012:role/ota",
    )),
]:
    try:
        call()
        out[name] = None
    except ClientError as e:
        out[name] = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]

# Aliyun: the SDK's endpoint names the host and the door's path.
endpoint = urlparse(url).netloc + "/compat/aliyun"

def acs(secret_key):
    return AcsClient(key_id, secret_key, "cn-shanghai")

def prepare(request):
    request.set_endpoint(endpoint)
    request.set_protocol_type("http")
    return request

create = prepare(CreateOTAStaticUpgradeJobRequest())
create.set_FirmwareId(aliyun_firmware)
create.set_ProductKey(product)
create.set_TargetSelection("ALL")
create.set_SrcVersions(["1.0.0"])
create.set_RetryInterval(10)
create.set_RetryCount(2)
create.set_TimeoutInMinutes(60)
created = json.loads(acs(secret).do_action_with_exception(create))
out["aliyun_created"] = {"Success": created["Success"], "JobId": created["Data"]["JobId"]}
query = prepare(QueryOTAJobRequest())
query.set_JobId(created["Data"]["JobId"])
queried = json.loads(acs(secret).do_action_with_exception(query))
out["aliyun_query"] = {"Success": queried["Success"], "JobId": queried["Data"]["JobId"]}
try:
    acs("not-the-secret").do_action_with_exception(query)
    out["aliyun_wrong_secret"] = None
except ServerException as e:
    out["aliyun_wrong_secret"] = [e.get_error_code(), e.get_http_status()]
cancel = prepare(CancelOTATaskByJobRequest())
cancel.set_JobId(created["Data"]["JobId"])
cancel.set_CancelQueuedTask(True)
out["aliyun_cancel"] = json.loads(acs(secret).do_action_with_exception(cancel))["Success"]

print(json.dumps(out))
