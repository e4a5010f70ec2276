#!/bin/sh
# Runs once, when the postgres service initialises an empty data volume (the official
# image runs /docker-entrypoint-initdb.d/*). It creates `puente_app`, the role the API,
# the worker and beat connect as: it may read and write Puente's tables but owns none of
# them, so it cannot drop or disable the audit trail's append-only triggers (only the
# owner `puente`, which the migrate service connects as, could). For a data volume that
# predates this script, run it once by hand:
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/10-puente-app-role.sh
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set app_password="$APP_DB_PASSWORD" --set db="$POSTGRES_DB" \
    --set owner="$POSTGRES_USER" <<'SQL'
CREATE ROLE puente_app LOGIN PASSWORD :'app_password';
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO puente_app;
GRANT USAGE ON SCHEMA public TO puente_app;
-- Tables and sequences the owner creates later (every migration) are granted as created.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO puente_app;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO puente_app;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT EXECUTE ON FUNCTIONS TO puente_app;
SQL
