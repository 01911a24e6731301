-- The archive served as a PACS (C-FIND on receivers): the keys callers match on most.
CREATE INDEX IF NOT EXISTS patients_name ON patients(patient_name);
CREATE INDEX IF NOT EXISTS studies_accession ON studies(accession_number);
CREATE INDEX IF NOT EXISTS series_modality ON series(study_pk, modality);
