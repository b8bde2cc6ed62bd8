#!/usr/bin/env bash
# Installs (Debian packages) and starts a local PostgreSQL 15 for the PostgreSQL store's tests, creates the
# role and the database they use, and prints the one line to export:
#
#   eval "$(scripts/ci-postgres.sh)"    # → export NINES_TEST_PG_URL=postgres://nines:nines@127.0.0.1:5432/nines_test
#
# Idempotent: re-running it on a machine where the server is installed and running only checks things.
# Progress goes to stderr; stdout carries only the export line. Needs root (or passwordless sudo).
# Overrides: NINES_PG_VERSION (15), NINES_PG_USER (nines), NINES_PG_PASSWORD (nines), NINES_PG_DB (nines_test).
set -euo pipefail

version="${NINES_PG_VERSION:-15}"
cluster=main
user="${NINES_PG_USER:-nines}"
password="${NINES_PG_PASSWORD:-nines}"
db="${NINES_PG_DB:-nines_test}"

log() { echo "ci-postgres: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

for name in "$user" "$db"; do
  [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || die "role and database names must match [a-z_][a-z0-9_]*: $name"
done
[[ "$password" != *"'"* ]] || die 'the password must not contain a single quote'

if [[ $(id -u) -eq 0 ]]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
  as_root() { sudo -n "$@"; }
else
  die 'needs root or sudo to install and start PostgreSQL'
fi

# 1. Install.
if [[ ! -x /usr/lib/postgresql/$version/bin/postgres ]] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "installing postgresql-$version with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "postgresql-$version" postgresql-client-common >&2
fi

# 2. A cluster (the package creates one unless told not to; create it if it is missing).
if ! pg_lsclusters -h 2>/dev/null | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { f = 1 } END { exit !f }'; then
  log "creating cluster $version/$cluster"
  as_root pg_createcluster "$version" "$cluster" >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $3 }')
[[ -n "$port" ]] || die "cannot find the port of cluster $version/$cluster"

# 3. Start (containers have no systemd: skip the redirect to systemctl).
status=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $4 }')
if [[ "$status" != online* ]]; then
  log "starting cluster $version/$cluster on port $port"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start >&2
fi
for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$port" || die "PostgreSQL does not answer on 127.0.0.1:$port"

# 4. Role and database (C collation: the same byte order as SQLite's, so ORDER BY agrees across stores).
psql_admin() { as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }
psql_admin -d postgres >&2 <<SQL
SELECT format('CREATE ROLE %I LOGIN', '$user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$user')
\\gexec
ALTER ROLE "$user" WITH LOGIN PASSWORD '$password';
SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 ENCODING %L LC_COLLATE %L LC_CTYPE %L', '$db', '$user', 'UTF8', 'C', 'C')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db')
\\gexec
SQL

url="postgres://$user:$password@127.0.0.1:$port/$db"
psql -X -q -d "$url" -c 'SELECT 1' >/dev/null || die "cannot connect as $user to $db"
log "PostgreSQL $version ready: $url"
echo "export NINES_TEST_PG_URL=$url"
