#!/usr/bin/env python3
"""Static checks of the deployment that Terraform itself does not make.

usage: checks.py variables TERRAFORM_DIR     every variable declared is used, every one used is
                                             declared, each has a description and (non-bool) a
                                             validation block; the tfvars example matches
       checks.py public TERRAFORM_DIR        allUsers / allAuthenticatedUsers only on the frontend
       checks.py runtime-roles TERRAFORM_DIR the runtime service accounts get project roles only
                                             from local.runtime_roles (google_project_iam_member.runtime)
       checks.py dashboards TERRAFORM_DIR    dashboards/*.json are JSON with a filter on each chart
       checks.py cloudbuild FILE SCHEMA      cloudbuild.yaml against a JSON Schema of the Cloud Build
                                             config fields used, plus substitution, waitFor and
                                             service-account rules Cloud Build enforces
       checks.py filters TERRAFORM_DIR       print every alert, SLO and log-metric filter as JSON
                                             lines, interpolations resolved (for the filter parser),
                                             one set per instance of a resource with a known count
Exit status 1 with one message per problem on stderr.
"""
import glob
import json
import os
import re
import sys

import hcl2

INTERP = re.compile(r"\$\{([^{}]*)\}")


def load_tf(tf_dir):
    docs = {}
    for path in sorted(glob.glob(os.path.join(tf_dir, "*.tf"))):
        with open(path) as f:
            text = f.read()
        docs[path] = (text, hcl2.loads(text))
    return docs


def unescape(value):
    """python-hcl2 keeps HCL string escapes: a quote stays backslash-quote. Undo them."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        return re.sub(r'\\(["\\])', r"\1", value)
    return value


def strip_comments(text):
    return re.sub(r"(?m)^\s*(#|//).*$", "", text)


def check_variables(tf_dir):
    problems = []
    docs = load_tf(tf_dir)
    declared = {}
    for path, (_, doc) in docs.items():
        for block in doc.get("variable", []):
            for name, body in block.items():
                declared[name] = (path, body)
    used = set()
    for path, (text, _) in docs.items():
        used |= set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", strip_comments(text)))
    for name in sorted(used - set(declared)):
        problems.append(f"variable {name} is used but not declared")
    for name, (path, body) in sorted(declared.items()):
        if name not in used:
            problems.append(f"variable {name} ({os.path.basename(path)}) is declared but never used")
        if not body.get("description", [""])[0].strip():
            problems.append(f"variable {name} has no description")
        if body.get("type", [""])[0] != "${bool}" and not body.get("validation"):
            problems.append(f"variable {name} has no validation block")
    example = os.path.join(tf_dir, "terraform.tfvars.example")
    if not os.path.exists(example):
        problems.append("terraform.tfvars.example is missing")
    else:
        with open(example) as f:
            text = f.read()
        keys = set(re.findall(r"(?m)^\s*#?\s*([a-z_][a-z0-9_]*)\s*=", text))
        for key in sorted(keys - set(declared)):
            problems.append(f"terraform.tfvars.example sets undeclared variable {key}")
        for name, (_, body) in sorted(declared.items()):
            if "default" not in body and name not in keys:
                problems.append(f"terraform.tfvars.example lacks required variable {name}")
    return problems


def resources(docs):
    for path, (_, doc) in docs.items():
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for rname, body in named.items():
                    yield rtype, rname, body


def check_public(tf_dir):
    problems = []
    for rtype, rname, body in resources(load_tf(tf_dir)):
        members = json.dumps([body.get(k) for k in ("member", "members")])
        if "allUsers" in members or "allAuthenticatedUsers" in members:
            target = body.get("name", [""])[0]
            if rtype != "google_cloud_run_v2_service_iam_member" or \
                    target != "${google_cloud_run_v2_service.frontend.name}":
                problems.append(f"{rtype}.{rname} grants access to the public: only the frontend's "
                                "invoker binding may")
    return problems


def check_dashboards(tf_dir):
    problems = []
    files = sorted(glob.glob(os.path.join(tf_dir, "dashboards", "*.json")))
    if not files:
        problems.append("no dashboards/*.json")
    for path in files:
        try:
            with open(path) as f:
                dash = json.load(f)
        except ValueError as e:
            problems.append(f"{path}: not JSON: {e}")
            continue
        tiles = dash.get("mosaicLayout", {}).get("tiles", [])
        if not dash.get("displayName") or not tiles:
            problems.append(f"{path}: needs displayName and mosaicLayout.tiles")
        for tile in tiles:
            for ds in tile.get("widget", {}).get("xyChart", {}).get("dataSets", []):
                flt = ds.get("timeSeriesQuery", {}).get("timeSeriesFilter", {}).get("filter", "")
                if "metric.type=" not in flt:
                    problems.append(f"{path}: chart {tile['widget'].get('title')!r} has no metric.type filter")
    return problems


PROJECT_IAM_TYPES = ("google_project_iam_member", "google_project_iam_binding", "google_project_iam_policy")


def check_runtime_roles(tf_dir):
    """The runtime identities get project roles from one place: google_project_iam_member.runtime,
    over local.runtime_roles (iam.tf), which terraform test pins. A grant anywhere else would
    slip past that test."""
    problems = []
    for rtype, rname, body in resources(load_tf(tf_dir)):
        if rtype not in PROJECT_IAM_TYPES or (rtype, rname) == ("google_project_iam_member", "runtime"):
            continue
        members = json.dumps([body.get(k) for k in ("member", "members", "policy_data")])
        if "google_service_account.runtime" in members:
            role = unescape(body.get("role", ["(a policy)"]))
            problems.append(f"{rtype}.{rname} grants {role} to a runtime identity: its project roles come only "
                            "from local.runtime_roles (google_project_iam_member.runtime in iam.tf)")
    return problems


BUILTIN_SUBST = {"PROJECT_ID", "PROJECT_NUMBER", "LOCATION", "BUILD_ID", "TRIGGER_NAME", "COMMIT_SHA",
                 "SHORT_SHA", "REVISION_ID", "REPO_NAME", "REPO_FULL_NAME", "BRANCH_NAME", "TAG_NAME",
                 "REF_NAME", "TRIGGER_BUILD_CONFIG_PATH", "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT"}


def check_cloudbuild(path, schema_path):
    import jsonschema
    import yaml

    with open(path) as f:
        try:
            cfg = yaml.safe_load(f)
        except yaml.YAMLError as e:
            return [f"{path}: not YAML: {e}"]
    with open(schema_path) as f:
        schema = json.load(f)
    problems = [f"{path}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in jsonschema.Draft7Validator(schema).iter_errors(cfg)]
    if problems:
        return problems
    declared = set(cfg.get("substitutions", {}))
    text = json.dumps(cfg)
    used = set(re.findall(r"(?<!\$)\$\{?([A-Z_][A-Z0-9_]*)\}?", text))
    for name in sorted(used - declared - BUILTIN_SUBST):
        problems.append(f"{path}: ${name} is used but not a declared substitution")
    loose = cfg.get("options", {}).get("substitutionOption") == "ALLOW_LOOSE"
    for name in sorted(declared - used):
        if not loose:
            problems.append(f"{path}: substitution {name} is declared but never used (Cloud Build rejects that)")
    seen = set()
    for i, step in enumerate(cfg["steps"]):
        for dep in step.get("waitFor", []):
            if dep != "-" and dep not in seen:
                problems.append(f"{path}: steps[{i}] waits for unknown or later step {dep!r}")
        if "id" in step:
            seen.add(step["id"])
    opts = cfg.get("options", {})
    if "serviceAccount" in cfg and "logsBucket" not in cfg and \
            opts.get("logging") not in ("CLOUD_LOGGING_ONLY", "NONE"):
        problems.append(f"{path}: a build with serviceAccount needs options.logging CLOUD_LOGGING_ONLY "
                        "(or NONE) or a logsBucket")
    if opts.get("logging") != "CLOUD_LOGGING_ONLY":
        problems.append(f"{path}: build logs must go to Cloud Logging only")
    if "serviceAccount" not in cfg:
        problems.append(f"{path}: the build must run as its own service account")
    image = cfg.get("substitutions", {}).get("_IMAGE", "")
    if "SHORT_SHA" not in image or "docker.pkg.dev" not in image:
        problems.append(f"{path}: the image must be pushed to Artifact Registry tagged with $SHORT_SHA")
    deploys = " ".join(" ".join(s.get("args", [])) for s in cfg["steps"])
    for svc in ("frontend", "backend"):
        if not re.search(r"gcloud run deploy \"?\$\{_SERVICE\}-" + svc, deploys):
            problems.append(f"{path}: no `gcloud run deploy` of the {svc}")
    return problems


def resolver(tf_dir):
    """Resolve ${...} references of filter strings: locals, variable defaults, resource names."""
    docs = load_tf(tf_dir)
    env = {}
    for _, (_, doc) in docs.items():
        for block in doc.get("variable", []):
            for name, body in block.items():
                if "default" in body:
                    env[f"var.{name}"] = body["default"]
        for block in doc.get("locals", []):
            for name, value in block.items():
                if not name.startswith("__"):
                    env[f"local.{name}"] = value
    res = {(t, n): b for t, n, b in resources(docs)}

    def lookup(expr, depth):
        expr = expr.strip()
        if expr in env:
            return unescape(env[expr])
        item = re.fullmatch(r"local\.(\w+)\[(\d+)\](?:\.(\w+))?", expr)
        if item and isinstance(unescape(env.get("local." + item.group(1))), list):
            items = unescape(env["local." + item.group(1)])
            if int(item.group(2)) < len(items):
                value = items[int(item.group(2))]
                if item.group(3) is None:
                    return value
                if isinstance(value, dict) and item.group(3) in value:
                    return unescape(value[item.group(3)])
        parts = expr.split(".")
        if parts[0] == "local" and len(parts) == 3 and isinstance(unescape(env.get("local." + parts[1])), dict):
            return unescape(unescape(env["local." + parts[1]])[parts[2]])
        if len(parts) == 3 and (parts[0], parts[1]) in res:
            body = res[(parts[0], parts[1])]
            if parts[2] in body:
                return unescape(body[parts[2]])
        return "<" + expr + ">"

    def resolve(value, depth=0, index=None):
        """`index` is the `count.index` of the instance being listed, if any."""
        if not isinstance(value, str) or depth > 10:
            return value

        def one(match):
            expr = match.group(1)
            if index is not None:
                expr = re.sub(r"\bcount\.index\b", str(index), expr)
            return str(resolve(lookup(expr, depth), depth + 1, index))
        return INTERP.sub(one, value)

    def instances(body):
        """The `count.index` values of a resource whose count is a number or `length(local.LIST)`;
        [None] when it has no count or one that needs the plan (such as a variable's condition)."""
        count = unescape(body.get("count"))
        if isinstance(count, int):
            return list(range(count))
        listed = re.fullmatch(r"\$\{length\(local\.(\w+)\)\}", count or "") if isinstance(count, str) else None
        if listed and isinstance(unescape(env.get("local." + listed.group(1))), list):
            return list(range(len(unescape(env["local." + listed.group(1)]))))
        return [None]

    return docs, resolve, instances


FILTER_KEYS = {
    "filter": None, "denominator_filter": None, "distribution_filter": None,
    "total_service_filter": None, "bad_service_filter": None, "good_service_filter": None,
}


def walk_filters(node, path):
    if isinstance(node, dict):
        for k, v in node.items():
            if k.startswith("__"):
                continue
            if k in FILTER_KEYS and isinstance(v, list) and v and isinstance(v[0], str):
                yield path + [k], v[0]
            else:
                yield from walk_filters(v, path + [k])
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_filters(v, path + ([str(i)] if len(node) > 1 else []))


def list_filters(tf_dir):
    docs, resolve, instances = resolver(tf_dir)
    for rtype, rname, body in resources(docs):
        for index in instances(body):
            address = f"{rtype}.{rname}" if index is None else f"{rtype}.{rname}[{index}]"
            for path, raw in walk_filters(body, []):
                language = "logging" if rtype == "google_logging_metric" else "monitoring"
                print(json.dumps({"resource": address, "attribute": ".".join(path),
                                  "language": language, "filter": resolve(unescape(raw), index=index)}))
    return []


def main(argv):
    cmd = argv[0]
    if cmd == "variables":
        problems = check_variables(argv[1])
    elif cmd == "public":
        problems = check_public(argv[1])
    elif cmd == "runtime-roles":
        problems = check_runtime_roles(argv[1])
    elif cmd == "dashboards":
        problems = check_dashboards(argv[1])
    elif cmd == "cloudbuild":
        problems = check_cloudbuild(argv[1], argv[2])
    elif cmd == "filters":
        problems = list_filters(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
