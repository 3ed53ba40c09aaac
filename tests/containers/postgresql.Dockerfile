# A PostgreSQL server image for tests/test_container_image.py, built from the same debootstrap
# base as the areamesh image (public image registries are not reachable on the test machines).
# It reads the variables of the official postgres image that deploy/compose.replicas.yaml uses:
# POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD_FILE.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY postgresql-entrypoint.sh /usr/local/bin/postgresql-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:${PATH} PGDATA=/var/lib/postgresql/data

EXPOSE 5432
ENTRYPOINT ["/bin/sh", "/usr/local/bin/postgresql-entrypoint.sh"]
