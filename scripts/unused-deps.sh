#!/usr/bin/env bash
# Fails when a crate declares a dependency its code never names: a
# declaration that is never used still costs a compile, and hides what a
# crate really stands on. A dependency counts as used when its crate's
# code has a path into it (`name::`) in src/ (dev-dependencies: also
# tests/, benches/). Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
for manifest in crates/*/Cargo.toml; do
	crate=${manifest%/Cargo.toml}
	section=""
	while IFS= read -r line; do
		case "$line" in
		\[dependencies\]) section=src ;;
		\[dev-dependencies\]) section=dev ;;
		\[*) section="" ;;
		[a-z]*)
			[ -n "$section" ] || continue
			name=${line%%[ .=]*}
			ident=${name//-/_}
			dirs=("$crate/src")
			[ "$section" = dev ] && dirs+=("$crate/tests" "$crate/benches")
			existing=()
			for d in "${dirs[@]}"; do [ -d "$d" ] && existing+=("$d"); done
			if ! grep -rqE -- "(^|[^A-Za-z0-9_])${ident}::" "${existing[@]}"; then
				echo "unused-deps: $manifest declares $name ($section), which its code never names" >&2
				status=1
			fi
			;;
		esac
	done <"$manifest"
done
exit $status
