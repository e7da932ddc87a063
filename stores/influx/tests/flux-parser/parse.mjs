// The real Flux parser for the tests: influxdata's libflux parser, compiled to WebAssembly in
// @influxdata/flux-lsp-browser (exact version in package-lock.json).
//
// Reads one JSON string (a Flux query) per line on stdin and writes one JSON line per query,
// shaped as InfluxDB's POST /api/v2/query/ast answers: {"ast": {"type": "Package", "package":
// "main", "files": [<the parsed file>]}}, or, when the parser reported errors, {"error":
// "<first error>"} (InfluxDB then answers 400 "invalid AST", after ast.Check).
// `node parse.mjs 'from(bucket: "b")'` prints one AST, indented, for a person to read.
//
// The package is built for bundlers (its glue module imports the .wasm file as an ES module,
// which Node cannot do without flags), so the glue is loaded with that one import replaced by
// a setter, and the WebAssembly is instantiated here.

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const dir = fileURLToPath(new URL("node_modules/@influxdata/flux-lsp-browser/", import.meta.url));
const IMPORT = "import * as wasm from './flux-lsp-browser_bg.wasm';";
const INIT = [
  "cachedInt32Memory0 = new Int32Array(wasm.memory.buffer);",
  "cachedUint8Memory0 = new Uint8Array(wasm.memory.buffer);",
];

async function loadParser() {
  let glue = readFileSync(dir + "flux-lsp-browser_bg.js", "utf8");
  if (!glue.startsWith(IMPORT) || !INIT.every((line) => glue.includes("\n" + line + "\n"))) {
    throw new Error("flux-lsp-browser's glue is not the one this loader knows (see package-lock.json)");
  }
  glue = glue.slice(IMPORT.length);
  for (const line of INIT) glue = glue.replace("\n" + line + "\n", "\n");
  glue =
    "let wasm;\nexport function __ogmSetWasm(w) { wasm = w; " + INIT.join(" ") + " }\n" + glue;
  const bg = await import("data:text/javascript;base64," + Buffer.from(glue).toString("base64"));
  const bytes = readFileSync(dir + "flux-lsp-browser_bg.wasm");
  const { instance } = await WebAssembly.instantiate(bytes, { "./flux-lsp-browser_bg.js": bg });
  bg.__ogmSetWasm(instance.exports);
  return bg.parse;
}

/** The first error the parser embedded in the AST (libflux reports errors in the tree). */
function firstError(node) {
  if (Array.isArray(node)) {
    for (const n of node) {
      const e = firstError(n);
      if (e) return e;
    }
  } else if (node && typeof node === "object") {
    if (Array.isArray(node.errors) && node.errors.length > 0) {
      return node.errors[0].msg ?? JSON.stringify(node.errors[0]);
    }
    if (node.type === "BadStatement" || node.type === "BadExpression") {
      return `${node.type}: ${node.text ?? ""}`;
    }
    for (const v of Object.values(node)) {
      const e = firstError(v);
      if (e) return e;
    }
  }
  return null;
}

function answer(parse, query) {
  const file = parse(query);
  const error = firstError(file);
  return error ? { error } : { ast: { type: "Package", package: "main", files: [file] } };
}

const parse = await loadParser();
if (process.argv.length > 2) {
  console.log(JSON.stringify(answer(parse, process.argv[2]), null, 2));
} else {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    let out;
    try {
      out = answer(parse, JSON.parse(line));
    } catch (e) {
      out = { error: `parser failed: ${e}` };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  }
}
