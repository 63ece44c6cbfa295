# A private PostgreSQL server for the test scripts, sourced: `. tests/tools/private_pg.sh`.
#
#   pg_start            creates a cluster in a fresh temporary directory and starts its server
#                       (as the postgres user, which it must be: PostgreSQL refuses root), listening
#                       only on a Unix socket in that directory; durability off (fsync), as the
#                       data is thrown away. Sets PG_DIR.
#   pg_database NAME    creates database NAME and prints its URL (postgresql://postgres@/NAME?host=…)
#   pg_stop             stops the server and removes the directory. The caller's EXIT trap should
#                       call it, set before pg_start (a failed start leaves its directory too);
#                       calling it twice, or before pg_start, is harmless.
#
# The same server as the Rust tests' `control::testing::PrivatePostgres`, for the Python and shell
# suites (openstacksdk, the differential test, Tempest) run on the PostgreSQL store.

pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -x "$d/postgres" ] || { echo "no PostgreSQL server under /usr/lib/postgresql" >&2; return 1; }
    echo "$d"
}

pg_start() {
    local bin
    bin=$(pg_bin) || return 1
    PG_DIR=$(mktemp -d -t qs-pg.XXXXXX)
    chown postgres: "$PG_DIR" || return 1
    runuser -u postgres -- "$bin/initdb" -A trust -U postgres --locale=C -E UTF8 \
        -D "$PG_DIR/data" >/dev/null || return 1
    runuser -u postgres -- "$bin/pg_ctl" start -w -t 60 -D "$PG_DIR/data" -l "$PG_DIR/log" \
        -o "-c listen_addresses= -c unix_socket_directories=$PG_DIR -c max_connections=300 -c fsync=off" \
        >/dev/null || { cat "$PG_DIR/log" >&2; return 1; }
}

pg_database() {
    local bin
    bin=$(pg_bin) || return 1
    runuser -u postgres -- "$bin/createdb" -h "$PG_DIR" "$1" >&2 || return 1
    echo "postgresql://postgres@/$1?host=$PG_DIR"
}

pg_stop() {
    [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ] || return 0
    local bin
    bin=$(pg_bin) || return 0
    runuser -u postgres -- "$bin/pg_ctl" stop -D "$PG_DIR/data" -m immediate >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=
}
