-- The CSV export (GET /api/patients/export), written by PostgreSQL itself.

-- name: export_session :exec
-- A big export to a slow client may outlast the pool's 30 s statement limit; ten minutes still
-- bounds how long one download can hold a connection and a snapshot.
SET LOCAL statement_timeout = '10min';

-- name: export_patients :sql
-- The whole file after the BOM, header line included, sent through cursor.copy() one row at a
-- time: one statement is one snapshot (an import running meanwhile is in it entirely or not at
-- all), and the COPY's row count is exactly what the file holds.
-- The filter is the list's own (matching_patients() in schema.sql; tests/test_export.py holds the
-- two to the same rows), and so is the order. A free-text cell whose first character a
-- spreadsheet would run as a formula (= + - @ tab CR LF) gets a leading ' (OWASP), and every name and email is quoted. So does one that
-- already starts with ' before such a character ('=x goes out as ''=x), which keeps the rule
-- reversible: the import takes one ' off a cell of ' characters then a formula character. Phones
-- go out in libphonenumber's INTERNATIONAL format (`+503 7765 4321`, phone_international() in
-- schema.sql), which spreadsheets keep as text: an E.164 `+50377654321` is read as the number
-- 50377654321 and loses its +. Registrado is the day the patient was created, in the clinic's time
-- zone.
COPY (
    SELECT CASE WHEN left(ltrim(p.full_name, ''''), 1) IN ('=', '+', '-', '@', E'\t', E'\r', E'\n')
                THEN '''' || p.full_name ELSE p.full_name END AS "Nombre",
           phone_international(p.phone) AS "Teléfono",
           CASE WHEN left(ltrim(p.email, ''''), 1) IN ('=', '+', '-', '@', E'\t', E'\r', E'\n')
                THEN '''' || p.email ELSE p.email END AS "Email",
           to_char(p.created_at AT TIME ZONE c.timezone, 'YYYY-MM-DD') AS "Registrado"
      FROM matching_patients(%(clinic_id)s, %(blocked)s, %(term)s, %(phone_digits)s) p
      JOIN clinics c ON c.id = p.clinic_id
     ORDER BY p.full_name, p.id
) TO STDOUT WITH (FORMAT csv, HEADER true, DELIMITER %(delimiter)s, ENCODING 'UTF8',
                  FORCE_QUOTE ("Nombre", "Email"));
