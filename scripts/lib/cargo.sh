# Sourced by the scripts that run what Cargo built: TARGET_DIR is where Cargo
# puts its builds, as `cargo metadata` reports it (CARGO_TARGET_DIR and
# .cargo/config.toml included), never a literal `target/`.
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export TARGET_DIR
