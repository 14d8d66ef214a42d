// Validates KEDA custom resources against KEDA's own schemas (npm @kubernetes-models/keda),
// which kubernetes-validate does not know.
//
//   node validate-keda.mjs NODE_MODULES_DIR DOCS.json [DOCS.json ...]
//
// Each DOCS.json is an array of manifests (check_manifests.py writes them). A kind without a
// model here is an error, so that no custom resource goes unvalidated.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
const models = {
  "keda.sh/v1alpha1/ScaledObject": "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject.js",
  "keda.sh/v1alpha1/TriggerAuthentication": "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication.js",
};

let failures = 0;
for (const file of files) {
  let count = 0;
  for (const doc of JSON.parse(readFileSync(file, "utf8"))) {
    const key = `${doc.apiVersion}/${doc.kind}`;
    const where = `${file}: ${doc.kind}/${doc.metadata?.name}`;
    if (!(key in models)) {
      console.error(`  ${where}: no validator for ${key}`);
      failures++;
      continue;
    }
    const mod = await import(pathToFileURL(join(modules, models[key])).href);
    try {
      new mod[doc.kind](doc).validate();
      count++;
    } catch (e) {
      console.error(`  ${where}: ${e.message}`);
      failures++;
    }
  }
  console.log(`  ${file.replace(/^.*\//, "")}: ${count} KEDA resource(s) valid`);
}
process.exit(failures ? 1 : 0);
