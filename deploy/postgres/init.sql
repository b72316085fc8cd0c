-- One database per service, each owned by a role of the same name (password = name: for local and
-- docker-compose use only). Run once by the postgres image (/docker-entrypoint-initdb.d) and by
-- `make pg-up` (deploy/local/postgres.sh with PG_INIT_SQL).
CREATE ROLE intake LOGIN PASSWORD 'intake';
CREATE DATABASE intake OWNER intake;
CREATE ROLE deadline LOGIN PASSWORD 'deadline';
CREATE DATABASE deadline OWNER deadline;
CREATE ROLE apology LOGIN PASSWORD 'apology';
CREATE DATABASE apology OWNER apology;
CREATE ROLE metrics LOGIN PASSWORD 'metrics';
CREATE DATABASE metrics OWNER metrics;
