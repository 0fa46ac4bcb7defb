// Deliberately wrong uses of the generated client: tests/test_openapi_node.py requires tsc to
// reject each line marked `// rejected: TSxxxx` with that error, and nothing else in this file.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

const client = createClient<paths>({ baseUrl: "http://127.0.0.1:8000" });

await client.GET("/api/patient", {}); // rejected: TS2345
await client.GET("/api/patients", { params: { query: { limit: "20" } } }); // rejected: TS2322
await client.GET("/api/patients/{patient_id}"); // rejected: TS2554
await client.PATCH("/api/patients/{patient_id}/block", { params: { path: { patient_id: "x" } }, body: { blocked: "yes" } }); // rejected: TS2322
await client.DELETE("/api/patients/{patient_id}", { params: { path: { patient_id: "x" } } }); // rejected: TS2345

const page = await client.GET("/api/patients");
export const name: string | undefined = page.data?.patients[0]?.fullName; // rejected: TS2551

export const error: components["schemas"]["Error"] = { code: "NOT_A_CODE", message: "", details: null }; // rejected: TS2322
