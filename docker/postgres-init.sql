-- One server, two databases: Airflow's metadata and rxaudit's data.
create role airflow login password 'airflow';
create database airflow owner airflow;
create role rxaudit login password 'rxaudit-change-me';
create database rxaudit owner rxaudit;
