-- The count columns of C-FIND and QIDO-RS (NumberOfStudyRelatedInstances, …) are answered by
-- index-only scans of instances and series, which read the table itself for every row on a page
-- not yet marked all-visible by a VACUUM. By default autovacuum visits a table after inserts of
-- 20 % of its rows: an archive of 10 M instances would answer from the heap for its last 2 M.
-- Here it visits after 1 % (PostgreSQL 13 and later; 12 has no insert-driven autovacuum).
DO $$ BEGIN IF current_setting('server_version_num')::int >= 130000 THEN EXECUTE 'ALTER TABLE instances SET (autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02)'; EXECUTE 'ALTER TABLE series SET (autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02)'; EXECUTE 'ALTER TABLE studies SET (autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02)'; END IF; END $$;
