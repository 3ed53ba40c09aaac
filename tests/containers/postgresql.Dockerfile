# A PostgreSQL server image for tests/test_container_image.py, built from the same debootstrap
# base as the areamesh image (public image registries are not reachable on the test machines).
# It reads the variables of the official postgres image that deploy/compose.replicas.yaml uses:
# POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD_FILE.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# As in the official image the data and socket dirs are writable by any uid it runs as
# (PGDATA is a subdirectory that initdb creates); the areamesh uid, which compose.replicas.yaml
# runs it as, gets an account because initdb needs one.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && install -d -m 1777 /var/lib/postgresql/data \
 && install -d -m 3777 /var/run/postgresql \
 && useradd --system --uid 10001 --no-create-home --home-dir /var/lib/postgresql pgserver
COPY postgresql-entrypoint.sh /usr/local/bin/postgresql-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:${PATH} PGDATA=/var/lib/postgresql/data/pgdata
EXPOSE 5432
ENTRYPOINT ["/bin/sh", "/usr/local/bin/postgresql-entrypoint.sh"]
