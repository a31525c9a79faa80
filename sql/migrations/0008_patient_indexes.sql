-- 0008: prescriptions and therapy sessions by patient, for incremental
-- audits (which read only the touched patients' rows). A large batch
-- rebuilds these after its insert rather than maintaining them row by row.
create index if not exists prescriptions_patient_idx on core.prescriptions (patient_id)
    where is_current;
create index if not exists therapy_sessions_patient_idx on core.therapy_sessions (patient_id)
    where is_current;
