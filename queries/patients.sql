-- Reading patients: the list (with or without a search term) and the full record.
-- Every query filters on the caller's clinic_id.

-- name: list_patients :one
-- One page in list order, with the exact total, as the response body's JSON.
SELECT json_build_object(
           'patients', coalesce((SELECT json_agg(patient_list_item(p) ORDER BY p.full_name, p.id)
                                   FROM (SELECT *
                                           FROM patients
                                          WHERE clinic_id = %(clinic_id)s
                                            AND (%(blocked)s::boolean IS NULL OR is_blocked = %(blocked)s)
                                          ORDER BY full_name, id
                                          LIMIT %(limit)s OFFSET %(offset)s) p), '[]'::json),
           'total', (SELECT count(*)
                       FROM patients
                      WHERE clinic_id = %(clinic_id)s
                        AND (%(blocked)s::boolean IS NULL OR is_blocked = %(blocked)s)),
           'page', %(page)s::int,
           'limit', %(limit)s::int)::text AS body;

-- name: search_patients :one
-- Like list_patients, narrowed to names containing the term (case and accents folded) or phones
-- containing its digits. Patterns arrive escaped: %% _ and \ in the user's term are literal.
WITH matches AS (
    SELECT *
      FROM patients
     WHERE clinic_id = %(clinic_id)s
       AND (%(blocked)s::boolean IS NULL OR is_blocked = %(blocked)s)
       AND (search_name LIKE fold_search(%(name_pattern)s) ESCAPE '\'
            OR phone LIKE %(phone_pattern)s ESCAPE '\')
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
-- The full record in one round trip: the patient, its appointments newest first, each with its doctor.
SELECT p.id::text AS id,
       patient_list_item(p) AS fields,
       p.notes,
       p.dui_ciphertext,
       p.dui_key_id,
       coalesce((SELECT json_agg(json_build_object(
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
                  WHERE a.clinic_id = p.clinic_id AND a.patient_id = p.id), '[]'::json) AS appointments
  FROM patients p
 WHERE p.clinic_id = %(clinic_id)s AND p.id = %(patient_id)s;
