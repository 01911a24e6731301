-- Each write of an instance's row counts up its version, so that WADO-RS metadata made from a
-- file is stored only if that file is still the instance's (a replacement within the same
-- second keeps file_path and received_at; it cannot keep the version).
ALTER TABLE instances ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER instance_metadata_stale;
CREATE TRIGGER instance_metadata_stale AFTER UPDATE OF version, file_path, file_size, received_at ON instances BEGIN DELETE FROM instance_metadata WHERE instance_pk = NEW.pk; END;
