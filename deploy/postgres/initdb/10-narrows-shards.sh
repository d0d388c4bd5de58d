#!/bin/sh
# Creates the demo's shard databases ${NARROWS_SHARD_DB_PREFIX}0 … N-1 (default narrows_shard_0 …
# narrows_shard_3, N = NARROWS_SHARDS). The postgres image runs this on the first start of an
# empty volume; it is idempotent, so after raising NARROWS_SHARDS run it again with
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/10-narrows-shards.sh
set -eu
shards="${NARROWS_SHARDS:-4}"
prefix="${NARROWS_SHARD_DB_PREFIX:-narrows_shard_}"
case "$shards" in
  '' | *[!0-9]*) echo "NARROWS_SHARDS must be a number, got '$shards'" >&2; exit 1 ;;
esac
case "$prefix" in
  '' | *[!a-z0-9_]*) echo "NARROWS_SHARD_DB_PREFIX must be [a-z0-9_]+, got '$prefix'" >&2; exit 1 ;;
esac
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" \
  --dbname "${POSTGRES_DB:-postgres}" --set=shards="$shards" --set=prefix="$prefix" <<'SQL'
SELECT format('CREATE DATABASE %I', :'prefix' || i)
FROM generate_series(0, :shards - 1) AS i
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'prefix' || i)
\gexec
SQL
