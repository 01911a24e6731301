-- Modality Performed Procedure Steps: those we sent to a node (N-CREATE, then N-SET) and those
-- a modality reported to one of our receivers. One row per step and direction; `attributes` is
-- the step as it stands (the N-CREATE's data set with each N-SET merged in), in the DICOM JSON
-- model, UTF-8; the other columns are taken from it for lists and links to studies. `history`
-- is a JSON array of what happened: [{"at", "command", "status", "outcome"}].
CREATE TABLE mpps (
  direction TEXT NOT NULL,
  sop_instance_uid TEXT NOT NULL,
  node TEXT NOT NULL DEFAULT '',
  receiver_ae TEXT NOT NULL DEFAULT '',
  calling_ae TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  accession_number TEXT NOT NULL DEFAULT '',
  study_instance_uid TEXT NOT NULL DEFAULT '',
  patient_id TEXT NOT NULL DEFAULT '',
  patient_name TEXT NOT NULL DEFAULT '',
  scheduled_step_id TEXT NOT NULL DEFAULT '',
  modality TEXT NOT NULL DEFAULT '',
  attributes TEXT NOT NULL DEFAULT '{}',
  history TEXT NOT NULL DEFAULT '[]',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (direction, sop_instance_uid)
);
CREATE INDEX mpps_accession ON mpps(accession_number);
CREATE INDEX mpps_study ON mpps(study_instance_uid);
CREATE INDEX mpps_updated ON mpps(updated_at);
