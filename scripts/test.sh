#!/usr/bin/env bash
# Runs every test berth has: formatting, lints, unit and integration tests
# against real registries and real containers. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
bash fixture/registry.sh up
# The ordinary user of the rootless and --userns remap tests.
user=$(scripts/test-user.sh)

cargo fmt --all -- --check
scripts/unused-deps.sh
python3 scripts/sizes.py
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-4}"

# Rootless: the run, lifecycle, exec, cp/top/stats, ps, commit and build tests again, with berth
# run by an ordinary user (the logs suite writes its fixtures as root), and
# the pasta suite, which runs only then.
for suite in run lifecycle exec cptop ps_format commit build pasta; do
	BERTH_TEST_USER="$user" cargo test -p berth --test "$suite" -- --test-threads="${BERTH_TEST_THREADS:-4}"
done

# cgroup v2: this machine kind is a v1 hybrid, so the cgroup, limits, escape,
# run, adapt and lifecycle suites run again in a small VM that is a pure v2 host (about 5
# minutes under software emulation; see fixture/v2vm.sh and the README).
fixture/v2vm.sh
