// Parse an AsyncAPI document with the official parser; list every diagnostic,
// exit 1 if any has severity error (or the document could not be parsed).
// Usage: node validate.js path/to/asyncapi.yaml
'use strict';
const { Parser, fromFile, DiagnosticSeverity } = require('@asyncapi/parser');

const SEVERITY = ['error', 'warning', 'information', 'hint'];

async function main(path) {
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, path).parse();
  let errors = 0;
  for (const d of diagnostics) {
    if (d.severity === DiagnosticSeverity.Error) errors += 1;
    const where = (d.path || []).join('/');
    console.log(`${SEVERITY[d.severity] || d.severity} ${d.code} at /${where}: ${d.message}`);
  }
  if (!document || errors) {
    console.log(`${errors} error(s): ${path} is not a valid AsyncAPI document`);
    process.exit(1);
  }
  console.log(`ok: ${path} is valid AsyncAPI ${document.version()} ` +
    `(${document.channels().length} channels, ${document.messages().length} messages)`);
}

main(process.argv[2]).catch((err) => { console.error(err); process.exit(2); });
