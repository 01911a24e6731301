-- Nothing changes on SQLite (PostgreSQL's autovacuum settings: migrations/postgresql/016).
SELECT 1;
