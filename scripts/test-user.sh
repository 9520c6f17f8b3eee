#!/usr/bin/env bash
# The ordinary user rootless tests run berth as: created if missing, with a
# subordinate uid/gid range (for newuidmap/newgidmap). Prints its name.
set -euo pipefail
user="${BERTH_TEST_USER:-berthtest}"
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /usr/sbin/nologin "$user"
fi
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  if ! grep -q "^$user:" "$f"; then
    # A range clear of the ones useradd hands out (100000 and up).
    flag=--add-subuids; [ "$f" = /etc/subgid ] && flag=--add-subgids
    usermod "$flag" 300000-365535 "$user"
  fi
done
echo "$user"
