// openapi-typescript over the served description, as a dashboard team runs it: its Node API with
// the transform its documentation gives for uploads (a `format: binary` string is a Blob, so a
// multipart file part can be a browser's File). Usage: node generate.mjs <openapi.json> <out.d.ts>
import { readFileSync, writeFileSync } from "node:fs";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const [source, target] = process.argv.slice(2);
const BLOB = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier("Blob"));

const ast = await openapiTS(JSON.parse(readFileSync(source, "utf8")), {
  transform(schema) {
    if (schema.format === "binary") {
      return BLOB;
    }
    return undefined;
  },
});
writeFileSync(target, astToString(ast));
