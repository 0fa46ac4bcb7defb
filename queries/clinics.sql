-- name: get_clinic :one
SELECT id::text AS id, name, plan, country_code, timezone
  FROM clinics
 WHERE id = %(clinic_id)s;

-- name: create_clinic :one
INSERT INTO clinics (name, plan, country_code, timezone)
VALUES (%(name)s, %(plan)s, %(country_code)s, %(timezone)s)
RETURNING id::text AS id, name, plan, country_code, timezone;

-- name: find_clinic_by_name :one
SELECT id::text AS id, name, plan, country_code, timezone
  FROM clinics
 WHERE name = %(name)s
 ORDER BY created_at
 LIMIT 1;
