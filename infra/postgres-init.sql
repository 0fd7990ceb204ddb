-- Run once by the postgres image on an empty volume: Prefect's database and the catalog's.
CREATE DATABASE prefect;
CREATE DATABASE catalog;
