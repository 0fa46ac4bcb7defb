-- Plain PostgreSQL's export: the same SELECT as queries/export.sql (export_patients, no filter),
-- through the same matching_patients() that PostgreSQL inlines,
-- straight from the server to psql's stdout. COPY … TO STDOUT is what psql's `\copy … to stdout`
-- runs; the plain form lets :'clinic_id' in.
-- psql -v clinic_id=<uuid> -f bench/psql/export.sql
COPY (
    SELECT CASE WHEN left(ltrim(p.full_name, ''''), 1) IN ('=', '+', '-', '@', E'\t', E'\r', E'\n')
                THEN '''' || p.full_name ELSE p.full_name END AS "Nombre",
           phone_international(p.phone) AS "Teléfono",
           CASE WHEN left(ltrim(p.email, ''''), 1) IN ('=', '+', '-', '@', E'\t', E'\r', E'\n')
                THEN '''' || p.email ELSE p.email END AS "Email",
           to_char(p.created_at AT TIME ZONE c.timezone, 'YYYY-MM-DD') AS "Registrado"
      FROM matching_patients(:'clinic_id', NULL, NULL, NULL) p
      JOIN clinics c ON c.id = p.clinic_id
     ORDER BY p.full_name, p.id
) TO STDOUT WITH (FORMAT csv, HEADER true, ENCODING 'UTF8', FORCE_QUOTE ("Nombre", "Email"));
