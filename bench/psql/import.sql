-- Plain PostgreSQL's import: \copy the file (psql's stdin) into a temp table, then the service's
-- own upsert (queries/imports.sql upsert_import_rows: same INSERT … ON CONFLICT, same SET list).
-- Phones are brought to E.164 in SQL (the file has 7765-4321, +503 7765 4321, ...) and one row
-- per phone is kept. DUIs are not encrypted (plain SQL has no key): the service does that on top,
-- with a second COPY and UPDATE.
-- psql -v clinic_id=<uuid> -f bench/psql/import.sql < file.csv
BEGIN;
CREATE TEMP TABLE staging (nombre text, telefono text, email text, dui text) ON COMMIT DROP;
\copy staging FROM pstdin WITH (FORMAT csv, HEADER)
CREATE TEMP TABLE import_rows ON COMMIT DROP AS
SELECT DISTINCT ON (phone) btrim(nombre) AS full_name, phone, nullif(btrim(email), '') AS email
  FROM (SELECT *, '+503' || right(regexp_replace(telefono, '\D', '', 'g'), 8) AS phone
          FROM staging) s
 ORDER BY phone;
INSERT INTO patients AS p (clinic_id, full_name, phone, email)
SELECT :'clinic_id'::uuid, r.full_name, r.phone, r.email
  FROM import_rows r
 ORDER BY r.phone
ON CONFLICT (clinic_id, phone) DO UPDATE
   SET full_name = coalesce(nullif(EXCLUDED.full_name, ''), p.full_name),
       email     = coalesce(EXCLUDED.email, p.email)
 WHERE coalesce(nullif(EXCLUDED.full_name, ''), p.full_name) IS DISTINCT FROM p.full_name
    OR coalesce(EXCLUDED.email, p.email) IS DISTINCT FROM p.email;
COMMIT;
