#!/bin/sh
# First start: initdb with the user, database and password the official image would create;
# then run the server on the container's interfaces (password authentication). Starts as root
# only to hand the data dir and the password file to the postgres user, as the official image.
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [ "$(id -u)" = 0 ]; then
    install -o postgres -g postgres -m 0600 \
        "${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE is required}" /tmp/.pg-password
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    POSTGRES_PASSWORD_FILE=/tmp/.pg-password
    export POSTGRES_USER POSTGRES_DB POSTGRES_PASSWORD_FILE
    exec setpriv --reuid=postgres --regid=postgres --init-groups /bin/sh "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb --username="$POSTGRES_USER" --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -w -o "-c listen_addresses=''" start >/dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        createdb --username="$POSTGRES_USER" "$POSTGRES_DB"
    fi
    pg_ctl -w stop >/dev/null
fi
rm -f /tmp/.pg-password
exec postgres -c listen_addresses='*'
