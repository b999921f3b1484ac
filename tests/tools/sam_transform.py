"""Prints template.yaml transformed by the SAM translator (samtranslator, which
cfn-lint brings), as CloudFormation JSON: what `sam deploy` would send. Offline: the
template names no managed policies, so none is looked up.

    python3 tests/tools/sam_transform.py template.yaml [Name=Value ...]
"""
import json
import os
import sys

# The translator only needs a region to name pseudo-parameter values.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


def main():
    with open(sys.argv[1]) as f:
        template = yaml_parse(f.read())
    # As `sam package` does: local code becomes an S3 object.
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://packaged/flowlog-forwarder.zip"
    parameters = dict(arg.split("=", 1) for arg in sys.argv[2:])
    output = transform(template, parameters, NoManagedPolicies())
    json.dump(output, sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    main()
