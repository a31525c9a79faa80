#!/usr/bin/env bash
# One server, two databases: Airflow's metadata and rxaudit's data. The
# passwords come from the postgres service's environment (docker-compose.yml
# requires each to be set); they are passed to psql as variables, never
# written in a file.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
  -v airflow_pw="$AIRFLOW_DB_PASSWORD" -v rxaudit_pw="$RXAUDIT_DB_PASSWORD" \
  -v web_pw="$RXAUDIT_WEB_DB_PASSWORD" <<'SQL'
create role airflow login password :'airflow_pw';
create database airflow owner airflow;
-- The group roles that rxaudit's migrations use (they create them too when absent).
create role rxaudit_loader nologin;
create role rxaudit_web nologin;
-- The pipeline's login, and the workspace's (a member of rxaudit_web only:
-- it reads the web views and nothing else).
create role rxaudit login password :'rxaudit_pw' in role rxaudit_loader;
create role rxaudit_web_app login password :'web_pw' in role rxaudit_web;
create database rxaudit owner rxaudit;
SQL
