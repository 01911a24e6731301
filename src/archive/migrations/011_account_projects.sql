-- The projects an account may see through the DICOMweb server (one per line; empty: all).
ALTER TABLE users ADD COLUMN projects TEXT NOT NULL DEFAULT '';
