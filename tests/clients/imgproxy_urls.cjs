// Builds imgproxy URLs with imgproxy's official Node URL builder, for tests/clients/test_imgproxy_node.py.
//
//   node imgproxy_urls.cjs <npm --prefix folder>  < requests.json  > answer.json
//
// stdin: a JSON list of requests, each
//   {"kind": "image" | "info", "endpoint": "http://…/", "url": {"value": "…", "displayAs": "plain" | "base64"},
//    "options": {…builder options…}, "key": "<hex>" | null, "salt": "<hex>" | null}
// stdout: {"versions": {"<package>": "<version>", …}, "results": [{"url": "…"} | {"error": "…"}, …]}
// in the order of the requests. One process builds every URL of a test session.
"use strict";

const fs = require("fs");
const path = require("path");

const PACKAGES = ["@imgproxy/imgproxy-node", "@imgproxy/imgproxy-js-core"];

const prefix = process.argv[2];
if (!prefix) {
  process.stderr.write("usage: node imgproxy_urls.cjs <npm --prefix folder>\n");
  process.exit(2);
}
const modules = path.join(path.resolve(prefix), "node_modules");
const builder = require(path.join(modules, "@imgproxy", "imgproxy-node"));

const versions = {};
for (const name of PACKAGES) {
  versions[name] = JSON.parse(fs.readFileSync(path.join(modules, name, "package.json"), "utf8")).version;
}

const requests = JSON.parse(fs.readFileSync(0, "utf8"));
const results = requests.map((request) => {
  const generate = request.kind === "info" ? builder.generateImageInfoUrl : builder.generateImageUrl;
  const params = { endpoint: request.endpoint, url: request.url, options: request.options };
  // Absent key/salt: the builder falls back to IMGPROXY_KEY/IMGPROXY_SALT (the test clears them) or "insecure".
  if (request.key !== null) params.key = request.key;
  if (request.salt !== null) params.salt = request.salt;
  try {
    return { url: generate(params) };
  } catch (error) {
    return { error: String(error && error.message ? error.message : error) };
  }
});

process.stdout.write(JSON.stringify({ versions, results }));
