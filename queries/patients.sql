-- Reading patients: the list (with or without a search term) and the full record.
-- Every query filters on the caller's clinic_id. The pool plans every statement with its actual
-- parameters (plan_cache_mode=force_custom_plan), so NULL filters fold away and the search pattern
-- is a constant the planner can weigh against the trigram indexes.

-- name: list_patients :one
-- One page in list order (walking patients_clinic_name_idx), with the exact total, as the
-- response body's JSON.
WITH listed AS NOT MATERIALIZED (
    SELECT *
      FROM patients
     WHERE clinic_id = %(clinic_id)s
       AND (%(blocked)s::boolean IS NULL OR is_blocked = %(blocked)s)
)
SELECT json_build_object(
           'patients', coalesce((SELECT json_agg(patient_list_item(p) ORDER BY p.full_name, p.id)
                                   FROM (SELECT * FROM listed
                                          ORDER BY full_name, id
                                          LIMIT %(limit)s OFFSET %(offset)s) p), '[]'::json),
           'total', (SELECT count(*) FROM listed),
           'page', %(page)s::int,
           'limit', %(limit)s::int)::text AS body;

-- name: search_patients :one
-- Like list_patients, narrowed to the patients matching_patients() finds (schema.sql: folded
-- names containing the folded term, or phones containing `phone_digits`).
-- For terms of three characters or more (the trigram indexes narrow them): the matches' keys are
-- collected once through the indexes, then counted and sorted. Left to plan the page on its own,
-- PostgreSQL guesses a term's frequency from a 100-name sample and may walk the whole clinic's
-- name index hunting for 50 matches of a rare name (200 ms instead of 20 at 200,000 patients,
-- changing from one ANALYZE to the next).
WITH matches AS MATERIALIZED (
    SELECT id, full_name
      FROM matching_patients(%(clinic_id)s, %(blocked)s, %(term)s, %(phone_digits)s)
),
page AS (
    SELECT id, full_name
      FROM matches
     ORDER BY full_name, id
     LIMIT %(limit)s OFFSET %(offset)s
)
SELECT json_build_object(
           'patients', coalesce((SELECT json_agg(patient_list_item(p) ORDER BY page.full_name, page.id)
                                   FROM page
                                   JOIN patients p ON p.clinic_id = %(clinic_id)s AND p.id = page.id),
                                '[]'::json),
           'total', (SELECT count(*) FROM matches),
           'page', %(page)s::int,
           'limit', %(limit)s::int)::text AS body;

-- name: search_patients_short_term :one
-- search_patients for terms under three characters, which no trigram index can narrow: the
-- matches are most of the clinic, so the page walks the name index and stops after `limit` rows.
-- Otherwise as search_patients.
-- NOT MATERIALIZED: the page and the count are planned apart, so the page can stop early on the
-- name index while the count, which must be exact, uses whatever finds all matches fastest.
WITH matches AS NOT MATERIALIZED (
    SELECT * FROM matching_patients(%(clinic_id)s, %(blocked)s, %(term)s, %(phone_digits)s)
)
SELECT json_build_object(
           'patients', coalesce((SELECT json_agg(patient_list_item(p) ORDER BY p.full_name, p.id)
                                   FROM (SELECT * FROM matches
                                          ORDER BY full_name, id
                                          LIMIT %(limit)s OFFSET %(offset)s) p), '[]'::json),
           'total', (SELECT count(*) FROM matches),
           'page', %(page)s::int,
           'limit', %(limit)s::int)::text AS body;

-- name: get_patient_record :one
-- The full record in one round trip: the patient, its appointments newest first, each with its
-- doctor, as the answer's JSON text (`body`, sent as it is; it ends in `"dui" : null}`, which
-- @reveals_dui replaces with the clear DUI for an admin). The DUI leaves as ciphertext: only
-- @reveals_dui opens it. With `reveal` (an admin reads: @reveals_dui decides) the same statement
-- writes the dui.reveal audit row for a patient that has a DUI, so the reveal and its audit row
-- are one statement in one transaction; `audit_id` names that row (NULL when none was written).
WITH record AS (
    SELECT p.id,
           p.dui_ciphertext,
           p.dui_key_id,
           -- patient_list_item's fields, then the record's own: two JSON objects made one.
           left(patient_list_item(p)::text, -1) || ', ' || substr(json_build_object(
               'notes', p.notes,
               'appointments', coalesce((
                   SELECT json_agg(json_build_object(
                              'id', a.id,
                              'appointment_date', to_char(a.appointment_date, 'YYYY-MM-DD'),
                              'start_time', to_char(a.start_time, 'HH24:MI:SS'),
                              'status', a.status,
                              'doctors', CASE WHEN d.id IS NULL THEN NULL
                                              ELSE json_build_object('full_name', d.full_name,
                                                                     'specialty', d.specialty) END)
                          ORDER BY a.appointment_date DESC, a.start_time DESC, a.id)
                     FROM appointments a
                     LEFT JOIN doctors d ON d.clinic_id = a.clinic_id AND d.id = a.doctor_id
                    WHERE a.clinic_id = p.clinic_id AND a.patient_id = p.id), '[]'::json),
               'dui', NULL)::text, 2) AS body
      FROM patients p
     WHERE p.clinic_id = %(clinic_id)s AND p.id = %(patient_id)s
),
revealed AS (
    INSERT INTO audit_log (clinic_id, actor_id, actor_role, action, patient_id, details, request_id,
                           client_ip)
    SELECT %(clinic_id)s, %(actor_id)s, %(actor_role)s, 'dui.reveal', r.id, '{}', %(request_id)s,
           %(client_ip)s::inet
      FROM record r
     WHERE %(reveal)s AND r.dui_ciphertext IS NOT NULL
    RETURNING id
)
SELECT r.id::text AS id, r.dui_ciphertext, r.dui_key_id, r.body,
       (SELECT id FROM revealed) AS audit_id
  FROM record r;
