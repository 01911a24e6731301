CREATE TABLE nodes (
  name TEXT PRIMARY KEY,
  body TEXT NOT NULL
);

CREATE TABLE patients (
  pk INTEGER PRIMARY KEY,
  patient_id TEXT NOT NULL,
  issuer TEXT NOT NULL DEFAULT '',
  patient_name TEXT NOT NULL DEFAULT '',
  birth_date TEXT NOT NULL DEFAULT '',
  sex TEXT NOT NULL DEFAULT '',
  UNIQUE (patient_id, issuer, patient_name)
);

CREATE TABLE studies (
  pk INTEGER PRIMARY KEY,
  patient_pk INTEGER NOT NULL REFERENCES patients(pk),
  study_uid TEXT NOT NULL UNIQUE,
  study_date TEXT NOT NULL DEFAULT '',
  study_time TEXT NOT NULL DEFAULT '',
  accession_number TEXT NOT NULL DEFAULT '',
  study_id TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  referring_physician TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX studies_patient ON studies(patient_pk);
CREATE INDEX studies_date ON studies(study_date);

CREATE TABLE series (
  pk INTEGER PRIMARY KEY,
  study_pk INTEGER NOT NULL REFERENCES studies(pk),
  series_uid TEXT NOT NULL UNIQUE,
  modality TEXT NOT NULL DEFAULT '',
  series_number TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  body_part TEXT NOT NULL DEFAULT ''
);
CREATE INDEX series_study ON series(study_pk);

CREATE TABLE instances (
  pk INTEGER PRIMARY KEY,
  series_pk INTEGER NOT NULL REFERENCES series(pk),
  sop_uid TEXT NOT NULL UNIQUE,
  sop_class_uid TEXT NOT NULL DEFAULT '',
  instance_number TEXT NOT NULL DEFAULT '',
  transfer_syntax_uid TEXT NOT NULL DEFAULT '',
  file_path TEXT NOT NULL,
  file_size INTEGER NOT NULL,
  received_at TEXT NOT NULL,
  source_ae TEXT NOT NULL DEFAULT '',
  receiver_ae TEXT NOT NULL DEFAULT ''
);
CREATE INDEX instances_series ON instances(series_pk);
