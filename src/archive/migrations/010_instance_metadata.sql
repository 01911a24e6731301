-- WADO-RS metadata (PS3.18 10.4.1.1.2): each instance's attributes in the DICOM JSON model,
-- written soon after the instance is indexed, so a study's metadata is answered from here and
-- not from its files. A row whose instance is replaced (a new file) is dropped with it and
-- written again.
CREATE TABLE instance_metadata (
  instance_pk INTEGER PRIMARY KEY REFERENCES instances(pk) ON DELETE CASCADE,
  json TEXT NOT NULL
);
-- (The trigger is on one line: migrations are split into statements at ";" ending a line.)
CREATE TRIGGER instance_metadata_stale AFTER UPDATE OF file_path, file_size, received_at ON instances
BEGIN DELETE FROM instance_metadata WHERE instance_pk = NEW.pk; END;
