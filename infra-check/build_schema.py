#!/usr/bin/env python3
"""Rebuild the hashicorp/google provider schema from the npm package @cdktf/provider-google.

The package is generated from the provider (16.12.1 <- hashicorp/google 6.50.0) but ships no
schema JSON. Everything needed is in it, though:
  lib/<resource>/index.js  `<struct>ToHclTerraform` functions and `synthesizeHclAttributes()` list
                           every settable argument (snake_case name, isBlock, type, storage type);
                           `// name - computed: ...` comments with their getters give computed ones.
  .jsii                    each config interface's properties and whether they are optional.
The output has the shape of `terraform providers schema -json`, so the schema-only provider in
provider.py can serve it and a real Terraform can validate against it.

usage: build_schema.py PACKAGE_DIR OUT.json
"""
import json
import os
import re
import sys

PROVIDER_ADDR = "registry.terraform.io/hashicorp/google"

FUNC_RE = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{\n(.*?)^\}\n", re.M | re.S)
SYNTH_RE = re.compile(r"^    synthesizeHclAttributes\(\) \{\n(.*?)^    \}\n", re.M | re.S)
CLASS_RE = re.compile(r"^class (\w+) extends [\w.]+ \{\n(.*?)^\}\n", re.M | re.S)
ATTR_RE = re.compile(
    r"^\s+(\w+): \{\n\s+value: (.*?),\n\s+isBlock: (true|false),\n\s+type: \"(\w+)\",\n"
    r"\s+storageClassType: \"(\w+)\",\n\s+\},?\n",
    re.M | re.S,
)
COMMENT_RE = re.compile(
    r"^\s+// (\w+) - computed: (true|false), optional: (true|false), required: (true|false)\n(.*?)\n(.*?)\n",
    re.M,
)
RESTYPE_RE = re.compile(r"^(\w+)\.tfResourceType = \"(\w+)\";", re.M)

SIMPLE = {"string": "string", "number": "number", "boolean": "bool"}
ELEM = {
    "stringList": "string", "numberList": "number", "booleanList": "bool",
    "stringMap": "string", "numberMap": "number", "booleanMap": "bool",
}
GETTER = {
    "getStringAttribute": "string", "getNumberAttribute": "number",
    "getBooleanAttribute": "bool", "getListAttribute": ["list", "string"],
    "getNumberListAttribute": ["list", "number"], "getStringMapAttribute": ["map", "string"],
    "getNumberMapAttribute": ["map", "number"], "getBooleanMapAttribute": ["map", "bool"],
}
MAP_CLASS = {"StringMap": ["map", "string"], "NumberMap": ["map", "number"],
             "BooleanMap": ["map", "bool"]}


def lower_first(name):
    return name[:1].lower() + name[1:]


def upper_first(name):
    return name[:1].upper() + name[1:]


def attr_type(kind, storage):
    if kind == "simple":
        return SIMPLE.get(storage, "dynamic")
    if kind in ("list", "set", "map") and storage in ELEM:
        return [kind, ELEM[storage]]
    return "dynamic"


def jsii_name(value):
    """The camelCase property name in a value expression (`struct.cpuIdle`, `this._template`)."""
    m = re.search(r"struct\.(\w+)|this\._(\w+)", value)
    if not m:
        return None
    return m.group(1) or m.group(2)


class Module:
    def __init__(self, text, interfaces):
        self.funcs = {m.group(1): m.group(2) for m in FUNC_RE.finditer(text)}
        self.classes = {m.group(1): m.group(2) for m in CLASS_RE.finditer(text)}
        self.interfaces = interfaces

    def comments(self, class_name):
        """{snake_name: (computed, optional, required, line1, line2)} from a class body."""
        body = self.classes.get(class_name, "")
        out = {}
        for m in COMMENT_RE.finditer(body):
            out[m.group(1)] = (m.group(2) == "true", m.group(3) == "true", m.group(4) == "true",
                               m.group(5), m.group(6))
        return out

    def computed_type(self, line1, line2, depth=0):
        for getter, typ in GETTER.items():
            if getter + "(" in line2:
                return typ
        m = re.search(r"new cdktf\.(\w+)\(", line1)
        if m and m.group(1) in MAP_CLASS:
            return MAP_CLASS[m.group(1)]
        m = re.search(r"new (\w+)List\(this, \"\w+\", (true|false)\)", line1)
        if m and depth < 6:
            obj = self.object_type(m.group(1) + "OutputReference", depth + 1)
            return ["set" if m.group(2) == "true" else "list", obj]
        return "dynamic"

    def object_type(self, class_name, depth):
        attrs = {}
        for name, (_, _, _, l1, l2) in self.comments(class_name).items():
            attrs[name] = self.computed_type(l1, l2, depth)
        return ["object", attrs] if attrs else "dynamic"

    def block(self, body, class_name, interface_name):
        """One schema block from an attrs listing, its class comments and its jsii interface."""
        props = self.interfaces.get(interface_name, {})
        notes = self.comments(class_name)
        block = {"attributes": {}, "block_types": {}}
        for m in ATTR_RE.finditer(body):
            name, value, is_block, kind, storage = m.groups()
            jname = jsii_name(value)
            required = jname is not None and props.get(jname) is False
            if is_block == "true":
                fm = re.search(r"(\w+)ToHclTerraform", value)
                sub_name = fm.group(1) if fm else None
                if sub_name is None or sub_name not in self.funcs:
                    continue
                sub = self.block(self.funcs[sub_name], upper_first(sub_name) + "OutputReference",
                                 upper_first(sub_name))
                repeated = "listMapperHcl" in value
                nb = {"nesting_mode": "single" if kind == "struct" else ("set" if kind == "set" else "list"),
                      "block": sub}
                if kind != "struct" and not repeated:
                    nb["max_items"] = 1
                if required and kind != "struct":
                    nb["min_items"] = 1
                block["block_types"][name] = nb
            else:
                computed = notes.get(name, (False,))[0]
                a = {"type": attr_type(kind, storage)}
                if required:
                    a["required"] = True
                else:
                    a["optional"] = True
                    # The package only marks computed-only attributes; `id` is always computed.
                    if computed or name == "id":
                        a["computed"] = True
                block["attributes"][name] = a
        for name, (computed, optional, req, l1, l2) in notes.items():
            if computed and not optional and not req and name not in block["attributes"] \
                    and name not in block["block_types"]:
                block["attributes"][name] = {"type": self.computed_type(l1, l2), "computed": True}
        return block

    def top_block(self, class_name):
        body = self.classes[class_name]
        m = SYNTH_RE.search(body)
        return self.block(m.group(1) if m else "", class_name, class_name + "Config")


def load_interfaces(jsii_path):
    with open(jsii_path) as f:
        types = json.load(f)["types"]
    out = {}
    for t in types.values():
        if t.get("kind") == "interface":
            out[t["name"]] = {p["name"]: bool(p.get("optional")) for p in t.get("properties", [])}
    return out


def main(pkg, out_path):
    interfaces = load_interfaces(os.path.join(pkg, ".jsii"))
    resources, data_sources, provider = {}, {}, None
    lib = os.path.join(pkg, "lib")
    for entry in sorted(os.listdir(lib)):
        path = os.path.join(lib, entry, "index.js")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            text = f.read()
        mod = Module(text, interfaces)
        if entry == "provider":
            provider = {"version": 0, "block": mod.top_block("GoogleProvider")}
            continue
        for m in RESTYPE_RE.finditer(text):
            class_name, type_name = m.groups()
            schema = {"version": 0, "block": mod.top_block(class_name)}
            (data_sources if class_name.startswith("DataGoogle") else resources)[type_name] = schema
    doc = {
        "format_version": "1.0",
        "provider_schemas": {PROVIDER_ADDR: {
            "provider": provider,
            "resource_schemas": resources,
            "data_source_schemas": data_sources,
        }},
    }
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, sort_keys=True)
    os.replace(tmp, out_path)
    print(f"schema: {len(resources)} resources, {len(data_sources)} data sources", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
