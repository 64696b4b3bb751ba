#!/usr/bin/env python3
"""A schema-only hashicorp/google provider for offline `terraform validate` and `terraform test`.

It answers GetProviderSchema from the schema rebuilt by build_schema.py and accepts every
Validate* call, so Terraform itself checks each resource, attribute, nested block and type
against the real provider's schema. It cannot plan or apply real resources: `terraform test`
runs use `mock_provider "google" {}`.

The schema file is named by INFRA_CHECK_SCHEMA; its protobuf form is cached beside it.
"""
import json
import os
import sys

from tf import runner
import tf.provider
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as rpc

ADDR = "registry.terraform.io/hashicorp/google"
NESTING = {"single": pb.Schema.NestedBlock.SINGLE, "list": pb.Schema.NestedBlock.LIST,
           "set": pb.Schema.NestedBlock.SET, "map": pb.Schema.NestedBlock.MAP}


def to_block(block):
    attrs = [
        pb.Schema.Attribute(
            name=name, type=json.dumps(a["type"]).encode(), required=a.get("required", False),
            optional=a.get("optional", False), computed=a.get("computed", False),
            description_kind=pb.PLAIN)
        for name, a in sorted(block.get("attributes", {}).items())
    ]
    blocks = [
        pb.Schema.NestedBlock(
            type_name=name, block=to_block(b["block"]), nesting=NESTING[b["nesting_mode"]],
            min_items=b.get("min_items", 0), max_items=b.get("max_items", 0))
        for name, b in sorted(block.get("block_types", {}).items())
    ]
    return pb.Schema.Block(attributes=attrs, block_types=blocks, description_kind=pb.PLAIN)


def schema_response():
    path = os.environ["INFRA_CHECK_SCHEMA"]
    cache = path + ".pb"
    if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(path):
        with open(cache, "rb") as f:
            return pb.GetProviderSchema.Response.FromString(f.read())
    with open(path) as f:
        s = json.load(f)["provider_schemas"][ADDR]
    resp = pb.GetProviderSchema.Response(
        provider=pb.Schema(block=to_block(s["provider"]["block"])),
        provider_meta=pb.Schema(block=pb.Schema.Block()),
        resource_schemas={k: pb.Schema(version=v.get("version", 0), block=to_block(v["block"]))
                          for k, v in s["resource_schemas"].items()},
        data_source_schemas={k: pb.Schema(version=v.get("version", 0), block=to_block(v["block"]))
                             for k, v in s["data_source_schemas"].items()},
    )
    tmp = f"{cache}.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(resp.SerializeToString())
    os.replace(tmp, cache)
    return resp


class SchemaOnly(rpc.ProviderServicer):
    def __init__(self, _provider):
        self._schema = None

    def GetMetadata(self, request, context):
        return pb.GetMetadata.Response(server_capabilities=pb.ServerCapabilities())

    def GetProviderSchema(self, request, context):
        if self._schema is None:
            self._schema = schema_response()
        return self._schema

    def ValidateProviderConfig(self, request, context):
        return pb.ValidateProviderConfig.Response()

    def ValidateResourceConfig(self, request, context):
        return pb.ValidateResourceConfig.Response()

    def ValidateDataResourceConfig(self, request, context):
        return pb.ValidateDataResourceConfig.Response()

    def ConfigureProvider(self, request, context):
        return pb.ConfigureProvider.Response()

    def StopProvider(self, request, context):
        return pb.StopProvider.Response()


class _Name:
    """run_provider only asks the provider object for its full name (in --dev mode)."""

    def full_name(self):
        return ADDR


if __name__ == "__main__":
    tf.provider.ProviderServicer = SchemaOnly
    runner.run_provider(_Name(), sys.argv)
