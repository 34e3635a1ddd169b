// Validates an OpenAPI document with @apidevtools/swagger-parser: the
// OpenAPI 3.1 JSON Schema plus the specification's rules the schema cannot
// express (unique operationIds, path parameters declared, $refs resolved).
// Run by openapi_test.go: node openapi.mjs <file>. Prints "valid" or the
// errors, and exits 1 on errors.
import SwaggerParser from "@apidevtools/swagger-parser";

const [file] = process.argv.slice(2);
try {
  await SwaggerParser.validate(file);
  console.log("valid");
} catch (e) {
  console.log(e.message);
  for (const d of e.details ?? []) console.log(JSON.stringify(d));
  process.exit(1);
}
