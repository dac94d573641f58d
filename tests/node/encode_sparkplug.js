#!/usr/bin/env node
// Encodes Sparkplug B payloads with the Eclipse Tahu library `sparkplug-payload`, so that the
// integration tests feed the ingest bridge messages built by code nobody in this project wrote.
//
// stdin:  JSON array of {"topic": "...", "payload": {timestamp, seq, metrics: [{name, alias,
//         type, value, timestamp, properties}]}} in Tahu's object shape (type names such as
//         "Double", "UInt64"; property values as {"type": "String", "value": "kWh"}).
// stdout: JSON array of {"topic": "...", "payload_b64": "<protobuf bytes, base64>"}.
"use strict";

const sparkplug = require("sparkplug-payload").get("spBv1.0");

function main(input) {
  const messages = JSON.parse(input);
  if (!Array.isArray(messages)) {
    throw new Error("stdin must be a JSON array of {topic, payload}");
  }
  const out = messages.map((m) => ({
    topic: m.topic,
    payload_b64: Buffer.from(sparkplug.encodePayload(m.payload)).toString("base64"),
  }));
  process.stdout.write(JSON.stringify(out));
}

let data = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { data += chunk; });
process.stdin.on("end", () => {
  try {
    main(data);
  } catch (err) {
    process.stderr.write(`encode_sparkplug: ${err.stack || err}\n`);
    process.exit(1);
  }
});
