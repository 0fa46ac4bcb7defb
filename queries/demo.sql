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
