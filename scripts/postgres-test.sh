#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL cluster:
#   bash scripts/postgres-test.sh cargo test -p enclava-store
# Starts a fresh cluster (initdb + pg_ctl) in a temporary directory, as an unprivileged user
# (`nobody` when run as root: PostgreSQL refuses to run as root), listening on loopback TCP on a
# free port with password (SCRAM) authentication, exports its URL as ENCLAVA_TEST_POSTGRES_URL,
# runs the command, and stops and deletes the cluster at exit, whatever the command's outcome.
# Installs Debian's `postgresql` package when the server binaries are missing; fails loudly when
# it cannot. Without a command it starts the cluster, prints the URL and waits for Ctrl-C.
set -euo pipefail

die() { printf 'postgres-test: error: %s\n' "$*" >&2; exit 1; }

find_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

bindir="$(find_bindir)"
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  [ "$(id -u)" = 0 ] || die "PostgreSQL server binaries not found and not root: install Debian's postgresql package"
  echo "postgres-test: installing Debian's postgresql package ..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || die "cannot install the postgresql package"
  bindir="$(find_bindir)"
  [ -n "$bindir" ] && [ -x "$bindir/initdb" ] || die "postgresql installed but initdb not found under /usr/lib/postgresql"
fi

# Run as an unprivileged user: `nobody` when we are root, ourselves otherwise.
if [ "$(id -u)" = 0 ]; then
  as_pg() { runuser -u nobody -- "$@"; }
  pg_owner=nobody
else
  as_pg() { "$@"; }
  pg_owner="$(id -un)"
fi

# Under /tmp by default: the unprivileged user must reach it (a TMPDIR under /root would not do).
dir="$(mktemp -d "${ENCLAVA_PG_TMPDIR:-/tmp}/enclava-pg.XXXXXX")"
chmod 700 "$dir"
chown "$pg_owner" "$dir"
cleanup() {
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$password" >"$dir/pwfile"
chown "$pg_owner" "$dir/pwfile"
chmod 600 "$dir/pwfile"
as_pg "$bindir/initdb" -D "$dir/data" -U enclava --auth=scram-sha-256 --pwfile="$dir/pwfile" \
  --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
rm -f "$dir/pwfile"

# A free loopback port: probe from a random start.
port=""
start=$(( 20000 + $(od -An -tu2 -N2 /dev/urandom | tr -d ' ') % 30000 ))
for p in $(seq "$start" $((start + 200))); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || die "no free TCP port found on 127.0.0.1"

# TLS material for the tests of encrypted connections: a throwaway CA and a server certificate for
# 127.0.0.1/localhost (the server key readable by the cluster's owner only).
mkdir "$dir/tls"
(
  cd "$dir/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
    -days 2 -subj /CN=enclava-test-ca
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
    -subj /CN=localhost
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
    -extfile ext.cnf
) >"$dir/tls.log" 2>&1 || { cat "$dir/tls.log" >&2; die "cannot make the test TLS certificates (openssl)"; }
chown "$pg_owner" "$dir/tls/server.key" "$dir/tls/server.crt"
chmod 600 "$dir/tls/server.key"

# fsync off: a test cluster has nothing to keep across a crash, and it is much faster.
pg_opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c max_connections=400 -c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key"
as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$pg_opts" start >/dev/null \
  || { cat "$dir/server.log" >&2; die "the PostgreSQL test cluster did not start"; }

# For tests of database outages: `$ENCLAVA_TEST_POSTGRES_CTL stop` stops the cluster (fast
# shutdown: connections are closed), `... start` starts it again on the same port, `... kill`
# stops it hard (immediate: like a crash). Runs as the cluster's owner.
if [ "$(id -u)" = 0 ]; then run_as="runuser -u $pg_owner --"; else run_as=""; fi
cat >"$dir/pgctl" <<CTL
#!/bin/sh
set -e
case "\$1" in
  stop) exec $run_as "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop ;;
  kill) exec $run_as "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop ;;
  start) exec $run_as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$pg_opts" start ;;
  *) echo "usage: \$0 stop|kill|start" >&2; exit 2 ;;
esac
CTL
chmod 755 "$dir/pgctl"
export ENCLAVA_TEST_POSTGRES_CTL="$dir/pgctl"

# sslmode=disable: the suite's plain connections; the TLS tests ask for sslmode=require and trust
# ENCLAVA_TEST_POSTGRES_CA.
export ENCLAVA_TEST_POSTGRES_URL="postgres://enclava:$password@127.0.0.1:$port/postgres?sslmode=disable"
export ENCLAVA_TEST_POSTGRES_CA="$dir/tls/ca.crt"
# The same server's Unix socket directory (same port, user and password), for the tests of
# socket connections.
export ENCLAVA_TEST_POSTGRES_SOCKET_DIR="$dir"
echo "postgres-test: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
echo "postgres-test: ENCLAVA_TEST_POSTGRES_URL=postgres://enclava:***@127.0.0.1:$port/postgres?sslmode=disable"

if [ "$#" -eq 0 ]; then
  echo "ENCLAVA_TEST_POSTGRES_URL=$ENCLAVA_TEST_POSTGRES_URL"
  echo "postgres-test: running; Ctrl-C stops and deletes the cluster"
  while true; do sleep 3600; done
fi
"$@"
