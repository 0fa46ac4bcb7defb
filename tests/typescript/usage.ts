// The dashboard's side of the Patients API: openapi-fetch over the types openapi-typescript made from
// the served /api/openapi.json (./schema.d.ts, written by generate.mjs), making every call the README
// shows and reading every kind of error body as the described Error. tests/test_openapi_node.py
// type-checks it (`tsc --strict`, exit 0 required) and runs the compiled file against a live gunicorn;
// each call prints one JSON line that the test compares exactly.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type ApiError = components["schemas"]["Error"];
type Details = ApiError["details"];

// Node's own globals, the two this file needs (no @types/node: a browser app has no `process`).
declare const process: { env: Record<string, string | undefined> };

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
}

function lines(text: string): string[] {
  return text.split(/\r?\n/).filter((line) => line !== "");
}

function report(call: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ call, ...fields }));
}

// What a dashboard does with an error's details: a field to mark, rows to list, columns to ask for.
function describe(details: Details): Record<string, unknown> {
  if (details === null) return { details: null };
  if (Array.isArray(details)) {
    return { rows: details.map((problem) => [problem.line, problem.column ?? null, problem.reason]) };
  }
  if ("field" in details) return { field: details.field, reason: details.reason };
  if ("missing" in details) return { missing: details.missing };
  return { unexpected: Object.keys(details) };
}

// A body exactly as the service sends it (the test compares it with the real one below), held as
// the described type, as a dashboard's test fixture would be: tsc rejects it when `details` is not
// described as what it is.
const sample: ApiError = {
  code: "VALIDATION_ERROR",
  message: "Invalid limit: must be from 1 to 200",
  details: { field: "limit", reason: "must be from 1 to 200" },
};

const baseUrl = env("API_BASE");
const staff = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${env("STAFF_TOKEN")}` } });
const admin = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${env("ADMIN_TOKEN")}` } });
const patientId = env("PATIENT_ID");

// The service (README "API description and docs page").
const health = await createClient<paths>({ baseUrl }).GET("/healthz");
if (!health.data) throw new Error(`health: ${health.response.status}`);
report("health", { status: health.data.status });

// List and search (README "Search and records").
const list = await staff.GET("/api/patients", { params: { query: { page: 1, limit: 20 } } });
if (!list.data) throw new Error(`list: ${list.response.status}`);
const page: components["schemas"]["PatientPage"] = list.data;
report("list", { status: list.response.status, total: page.total, names: page.patients.map((p) => p.full_name) });

const search = await staff.GET("/api/patients", { params: { query: { search: "7765-4321" } } });
if (!search.data) throw new Error(`search: ${search.response.status}`);
report("search", { total: search.data.total, phones: search.data.patients.map((p) => p.phone) });

// The record: an admin sees the DUI (and the reveal is audited).
const record = await admin.GET("/api/patients/{patient_id}", { params: { path: { patient_id: patientId } } });
if (!record.data) throw new Error(`record: ${record.response.status}`);
const appointments = record.data.appointments.map((a) => [a.appointment_date, a.start_time, a.status, a.doctors?.full_name ?? null]);
report("record", { dui: record.data.dui, notes: record.data.notes, appointments });
const staffRecord = await staff.GET("/api/patients/{patient_id}", { params: { path: { patient_id: patientId } } });
if (!staffRecord.data) throw new Error(`staff record: ${staffRecord.response.status}`);
report("staff record", { dui: staffRecord.data.dui });

// Block, then the blocked filter and the audit trail (README "Blocking ... and the audit trail").
const block = await staff.PATCH("/api/patients/{patient_id}/block", {
  params: { path: { patient_id: patientId } },
  body: { blocked: true, reason: "mensajes ofensivos" },
});
if (!block.data) throw new Error(`block: ${block.response.status}`);
report("block", { is_blocked: block.data.is_blocked });

const blocked = await staff.GET("/api/patients", { params: { query: { blocked: true } } });
if (!blocked.data) throw new Error(`blocked: ${blocked.response.status}`);
report("blocked", { ids: blocked.data.patients.map((p) => p.id) });

const audit = await admin.GET("/api/audit", { params: { query: { action: "patient.block", limit: 20 } } });
if (!audit.data) throw new Error(`audit: ${audit.response.status}`);
report("audit", {
  total: audit.data.total,
  entries: audit.data.entries.map((e) => [e.action, e.actor_id, e.actor_role, e.patient_id]),
});

const unblock = await staff.PATCH("/api/patients/{patient_id}/block", {
  params: { path: { patient_id: patientId } },
  body: { blocked: false },
});
if (!unblock.data) throw new Error(`unblock: ${unblock.response.status}`);
report("unblock", { is_blocked: unblock.data.is_blocked });

// Import a file, as the dashboard's <input type="file"> hands it over: a Blob in a FormData part.
function upload(csv: string, dryRun: boolean) {
  return staff.POST("/api/patients/import", {
    params: { query: { dry_run: dryRun } },
    body: { file: new Blob([csv], { type: "text/csv" }) },
    bodySerializer(body) {
      const form = new FormData();
      form.append("file", body.file, "pacientes.csv");
      return form;
    },
  });
}

const template = await staff.GET("/api/patients/import/template", { parseAs: "text" });
if (template.data === undefined) throw new Error(`template: ${template.response.status}`);
report("template", { lines: lines(template.data) });

const csv = env("PATIENTS_CSV");
const dry = await upload(csv, true);
if (!dry.data) throw new Error(`dry run: ${dry.response.status}`);
const imported = await upload(csv, false);
if (!imported.data) throw new Error(`import: ${imported.response.status}`);
const { created, updated, unchanged, columns } = imported.data;
report("import", { dry_run_created: dry.data.created, created, updated, unchanged, columns });

// Export: the CSV as text (README "Export").
const exported = await staff.GET("/api/patients/export", {
  params: { query: { search: "perez", blocked: false, delimiter: "semicolon" } },
  parseAs: "text",
});
if (exported.data === undefined) throw new Error(`export: ${exported.response.status}`);
report("export", { type: exported.response.headers.get("Content-Type"), lines: lines(exported.data) });

// Every kind of error body, read as the described Error.
const badLimit = await staff.GET("/api/patients", { params: { query: { limit: 500 } } });
const badRows = await upload("Nombre,Teléfono\nAna López,no es un teléfono\n", false);
const noPhone = await upload("Nombre,Notas\nAna López,hola\n", false);
const noToken = await createClient<paths>({ baseUrl }).GET("/api/patients");
for (const [call, result] of [["bad limit", badLimit], ["bad rows", badRows], ["no phone column", noPhone], ["no token", noToken]] as const) {
  const error: ApiError | undefined = result.error;
  if (error === undefined) throw new Error(`${call}: ${result.response.status} is not an error`);
  report(call, { status: result.response.status, code: error.code, message: error.message, ...describe(error.details) });
}
report("sample", { code: sample.code, message: sample.message, ...describe(sample.details) });
