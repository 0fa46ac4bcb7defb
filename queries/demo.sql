-- Bulk loading for the demo clinic (seed-demo) and the benchmark's data set.

-- name: create_doctor :exec
INSERT INTO doctors (id, clinic_id, full_name, specialty)
VALUES (%(id)s, %(clinic_id)s, %(full_name)s, %(specialty)s);

-- name: copy_patients_in :sql
COPY patients (id, clinic_id, full_name, phone, email, dui_ciphertext, dui_key_id, no_show_count, created_at)
FROM STDIN;

-- name: copy_appointments_in :sql
COPY appointments (clinic_id, patient_id, doctor_id, appointment_date, start_time, status)
FROM STDIN;

-- The README's examples' patients (patients/ops/demo_data.py SHOWCASE), added to the demo clinic
-- once: found again by phone on later runs, never overwritten.

-- name: find_patient_by_phone :scalar
SELECT id::text
  FROM patients
 WHERE clinic_id = %(clinic_id)s AND phone = %(phone)s;

-- name: create_showcase_patient :exec
INSERT INTO patients (id, clinic_id, full_name, phone, email, dui_ciphertext, dui_key_id, notes,
                      no_show_count, is_blocked)
VALUES (%(id)s, %(clinic_id)s, %(full_name)s, %(phone)s, %(email)s, %(dui_ciphertext)s,
        %(dui_key_id)s, %(notes)s, %(no_show_count)s, %(is_blocked)s)
ON CONFLICT (clinic_id, phone) DO NOTHING;

-- name: create_showcase_appointment :exec
INSERT INTO appointments (clinic_id, patient_id, doctor_id, appointment_date, start_time, status)
VALUES (%(clinic_id)s, %(patient_id)s, %(doctor_id)s, %(appointment_date)s, %(start_time)s,
        %(status)s);

-- name: first_doctor :scalar
SELECT id::text
  FROM doctors
 WHERE clinic_id = %(clinic_id)s
 ORDER BY full_name, id
 LIMIT 1;

-- name: claim_whatsapp_number :exec
-- The demo clinic takes the demo number unless a clinic has it already (the column is unique).
UPDATE clinics
   SET whatsapp_phone_number_id = %(number_id)s
 WHERE id = %(clinic_id)s
   AND whatsapp_phone_number_id IS NULL
   AND NOT EXISTS (SELECT 1 FROM clinics WHERE whatsapp_phone_number_id = %(number_id)s);
