-- One server, two databases: Airflow's metadata and rxaudit's data.
-- Change the passwords below before a real deployment (and in .env).
create role airflow login password 'airflow';
create database airflow owner airflow;
-- The group roles that rxaudit's migrations use (they create them too when absent).
create role rxaudit_loader nologin;
create role rxaudit_web nologin;
-- The pipeline's login, and the workspace's (which reads only the web views).
create role rxaudit login password 'rxaudit-change-me' in role rxaudit_loader;
create role rxaudit_web_app login password 'web-change-me' in role rxaudit_web;
create database rxaudit owner rxaudit;
