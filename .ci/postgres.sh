# Sourced by .ci/run (and usable by hand: `source .ci/postgres.sh`).
# Makes sure the local PostgreSQL runs, creates a fresh database for this run, exports
# BERTBOT_TEST_POSTGRES_URL, and drops the database when the shell exits.
# With CI=true any failure here fails the run.

_pg_fail() {
  echo "postgres: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  return 1
}

_pg_setup() {
  local host=${BERTBOT_TEST_PGHOST:-127.0.0.1} port=${BERTBOT_TEST_PGPORT:-5432} user=${BERTBOT_TEST_PGUSER:-postgres}
  command -v psql >/dev/null || { _pg_fail "psql not found (apt-get install postgresql-client)"; return 1; }
  if ! pg_isready -q -h "$host" -p "$port"; then
    echo "postgres: not running, starting it" >&2
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    fi
    for _ in $(seq 1 30); do pg_isready -q -h "$host" -p "$port" && break; sleep 1; done
    pg_isready -q -h "$host" -p "$port" || { _pg_fail "PostgreSQL at $host:$port did not come up"; return 1; }
  fi
  local db="bertbot_ci_$(date +%s)_$$"
  psql -q -h "$host" -p "$port" -U "$user" -d postgres -c "CREATE DATABASE \"$db\"" \
    || { _pg_fail "cannot create database $db"; return 1; }
  export BERTBOT_TEST_POSTGRES_URL="postgresql://$user@$host:$port/$db"
  _BERTBOT_PG_DROP="psql -q -h $host -p $port -U $user -d postgres -c 'DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)'"
  trap 'eval "$_BERTBOT_PG_DROP" >/dev/null 2>&1 || true' EXIT
  echo "postgres: using $BERTBOT_TEST_POSTGRES_URL" >&2
}

_pg_setup
