#!/usr/bin/env node
// Real-client check with node `soap` (npm): load a service's WSDL from the
// facade with soap.createClient, call every operation through the client's
// own method for each SOAP port (forceSoap12Headers for a SOAP 1.2 port),
// and print what the client hands back — node soap's result object — as
// JSON on a `read` line for tests/clients/real_clients.rs to check against
// the contract's rules. A fault must reach the callback as node soap's
// fault error (err.root.Envelope.Body.Fault) with soapgate's code, or, for a
// fault the WSDL declares, with the fault's element in its parsed detail
// (printed on a `read` line too); an async operation's ticket is polled
// with Get{Op}Result until DONE.
//
// The arguments are the sample request's payload as node soap's users
// write them: an object per element, children by local name, a list for a
// repeated element, `attributes` and `$value` for an element with
// attributes (read with sax, node soap's own XML parser). node soap's
// wsdl.xmlToObject is not used for this: it turns xs:date and xs:dateTime
// values into Date objects, which its serializer then writes as empty
// elements.
//
// Usage: node node_client.js NODE_SOAP_DIR BASE_URL MANIFEST SERVICE
// NODE_SOAP_DIR holds node_modules/soap. MANIFEST: see
// tests/clients/real_clients.rs. Exits 1 when any check failed.

"use strict";

const fs = require("fs");
const path = require("path");

const SOAPGATE_NS = "urn:soapgate:v1";
const ENVELOPE_NS = new Set([
  "http://schemas.xmlsoap.org/soap/envelope/",
  "http://www.w3.org/2003/05/soap-envelope",
]);
const SOAP_CODES = {
  NOT_MAPPED: ["Server", "Receiver"],
  MODEL_THROTTLED: ["Server", "Receiver"],
  INVALID_REQUEST: ["Client", "Sender"],
};

// xs:date, xs:dateTime and xs:time values are read as their text, with
// node soap's documented customDeserializer option: by default it makes
// them Date objects, which loses an xs:date's form (2024-12-12 reads back
// as 2024-12-12T00:00:00.000Z).
const KEEP_TEXT = { date: (text) => text, dateTime: (text) => text, time: (text) => text };

let failures = 0;

function report(ok, what, detail) {
  if (!ok) failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? ": " + detail : ""}`);
}

function readLine(service, op, version, kind, label, tree) {
  console.log(["read", service, op, version, kind, label, JSON.stringify(tree)].join("\t"));
}

function readManifest(file, service) {
  const ops = [];
  for (const raw of fs.readFileSync(file, "utf8").split("\n")) {
    if (!raw || raw.startsWith("#")) continue;
    const [svc, name, style, versions, oneWay, sample, expect] = raw.split("\t");
    if (svc !== service) continue;
    ops.push({ name, style, versions: versions.split(","), oneWay: oneWay === "1", sample, expect });
  }
  return ops;
}

// The sample's Body payload as a tree of {name, ns, attrs, children, text}.
function parseSample(sax, file) {
  const parser = sax.parser(true, { xmlns: true, trim: false });
  const stack = [];
  let root = null;
  parser.onopentag = (node) => {
    const el = { name: node.local, ns: node.uri, attrs: {}, children: [], text: "" };
    for (const a of Object.values(node.attributes)) {
      if (a.prefix === "xmlns" || a.name === "xmlns" || a.uri === "http://www.w3.org/2001/XMLSchema-instance") continue;
      el.attrs[a.local] = a.value;
    }
    if (stack.length) stack[stack.length - 1].children.push(el);
    else root = el;
    stack.push(el);
  };
  parser.ontext = (t) => {
    if (stack.length) stack[stack.length - 1].text += t;
  };
  parser.oncdata = parser.ontext;
  parser.onclosetag = () => stack.pop();
  parser.write(fs.readFileSync(file, "utf8")).close();
  if (ENVELOPE_NS.has(root.ns)) {
    const body = root.children.find((c) => c.name === "Body");
    if (!body || !body.children.length) throw new Error(`${file}: envelope without a payload`);
    return body.children[0];
  }
  return root;
}

// An element's content as node soap's argument object. In an rpc/literal
// operation a repeated element is named ":name": node soap writes the
// items of a list with the operation's namespace prefix there, though the
// schema leaves them unqualified, and ":" is its documented way to drop
// the prefix (README, "Overriding the namespace prefix").
function toArgs(el, rpc) {
  const hasAttrs = Object.keys(el.attrs).length > 0;
  if (!el.children.length) {
    return hasAttrs ? { attributes: { ...el.attrs }, $value: el.text } : el.text;
  }
  const out = hasAttrs ? { attributes: { ...el.attrs } } : {};
  const counts = {};
  for (const c of el.children) counts[c.name] = (counts[c.name] || 0) + 1;
  for (const c of el.children) {
    const v = toArgs(c, rpc);
    const key = rpc && counts[c.name] > 1 ? ":" + c.name : c.name;
    if (counts[c.name] > 1) {
      (out[key] = out[key] || []).push(v);
    } else {
      out[key] = v;
    }
  }
  return out;
}

// node soap's result as plain data for the rules: attributes as "@name",
// an element's text beside attributes as "#text".
function plain(v) {
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Date) return v.toISOString();
  if (v && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === "attributes" && x && typeof x === "object") {
        for (const [a, av] of Object.entries(x)) {
          if (a.startsWith("xmlns") || a.startsWith("xsi:")) continue;
          out["@" + a] = av;
        }
      } else if (k === "$value") {
        out["#text"] = plain(x);
      } else {
        out[k] = plain(x);
      }
    }
    return out;
  }
  return v;
}

// {port name: "1.1" | "1.2"} of a service, from the WSDL text: the
// namespace of each binding's soap:binding child.
function portSoapVersions(sax, xml, service) {
  const WSDL = "http://schemas.xmlsoap.org/wsdl/";
  const SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/";
  const SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/";
  const parser = sax.parser(true, { xmlns: true });
  const bindings = {};
  const portBinding = {};
  let binding = null;
  let inService = false;
  parser.onopentag = (node) => {
    if (node.uri === WSDL && node.local === "binding") binding = node.attributes.name.value;
    else if (binding && node.local === "binding" && node.uri === SOAP11) bindings[binding] = "1.1";
    else if (binding && node.local === "binding" && node.uri === SOAP12) bindings[binding] = "1.2";
    else if (node.uri === WSDL && node.local === "service") inService = node.attributes.name.value === service;
    else if (inService && node.uri === WSDL && node.local === "port") {
      portBinding[node.attributes.name.value] = node.attributes.binding.value.split(":").pop();
    }
  };
  parser.write(xml).close();
  const out = {};
  for (const [port, b] of Object.entries(portBinding)) out[port] = bindings[b];
  return out;
}

function call(method, args) {
  return new Promise((resolve) => {
    method(args, (err, result) => resolve({ err, result }), { timeout: 60000 });
  });
}

function faultOf(err) {
  const body = err && err.root && err.root.Envelope && err.root.Envelope.Body;
  return body && body.Fault;
}

function describe(err) {
  return `${err && err.constructor ? err.constructor.name : typeof err}: ${err && err.message ? err.message : err}`;
}

function judgeFault(what, want, version, outcome) {
  if (!outcome.err) {
    report(false, what, `no fault; the call returned ${JSON.stringify(plain(outcome.result))}`);
    return;
  }
  const fault = faultOf(outcome.err);
  if (!fault) {
    report(false, what, `${describe(outcome.err)} instead of a SOAP fault`);
    return;
  }
  // SOAP 1.1: faultcode/faultstring/detail; 1.2: Code/Reason/Detail.
  const code = version === "1.1" ? fault.faultcode : fault.Code && fault.Code.Value;
  const text = version === "1.1" ? fault.faultstring : fault.Reason && fault.Reason.Text;
  const detail = version === "1.1" ? fault.detail : fault.Detail;
  const got = detail && detail.Error && detail.Error.Code;
  const wantSoap = SOAP_CODES[want][version === "1.1" ? 0 : 1];
  const problems = [];
  if (got !== want) problems.push(`soapgate code ${JSON.stringify(got)}, expected ${want}`);
  if (String(code || "").split(":").pop() !== wantSoap) problems.push(`SOAP fault code ${JSON.stringify(code)}, expected ${wantSoap}`);
  const message = typeof text === "object" && text ? text.$value : text;
  if (!message) problems.push("empty fault text");
  if (problems.length) report(false, what, `${problems.join("; ")} (fault: ${JSON.stringify(fault)})`);
  else report(true, what, `node soap fault ${code} ${got}: ${message}`);
}

// A fault the WSDL declares (expect: declared:NAME:CODE:LOCAL:NS): node
// soap's fault error with the SOAP code, whose parsed detail holds the
// detail element; what node soap read goes out on a `read` line.
function judgeDeclared(what, service, op, version, outcome) {
  const [, name, code, local] = op.expect.split(":");
  const wantSoap = version === "1.1" ? code : { Client: "Sender", Server: "Receiver" }[code];
  if (!outcome.err) {
    report(false, what, `no fault; the call returned ${JSON.stringify(plain(outcome.result))}`);
    return;
  }
  const fault = faultOf(outcome.err);
  if (!fault) {
    report(false, what, `${describe(outcome.err)} instead of a SOAP fault`);
    return;
  }
  const soapCode = String((version === "1.1" ? fault.faultcode : fault.Code && fault.Code.Value) || "");
  if (soapCode.split(":").pop() !== wantSoap) {
    report(false, what, `SOAP fault code ${JSON.stringify(soapCode)}, expected ${wantSoap}`);
    return;
  }
  const detail = version === "1.1" ? fault.detail : fault.Detail;
  const value = detail && detail[local];
  if (value === undefined) {
    report(false, what, `no ${local} in the fault's detail: ${JSON.stringify(detail)}`);
    return;
  }
  readLine(service, op.name, version, "fault", `${what}: declared fault ${name} as node soap fault ${soapCode}`, plain(value));
}

async function pollTicket(port, service, op, version, label, outcome) {
  if (outcome.err) {
    report(false, label, describe(outcome.err));
    return;
  }
  const ticket = outcome.result || {};
  const jobId = ticket.jobId;
  if (!jobId || !["QUEUED", "RUNNING", "DONE"].includes(ticket.status)) {
    report(false, label, `ticket ${JSON.stringify(ticket)}`);
    return;
  }
  const poll = port[`Get${op.name}Result`];
  if (typeof poll !== "function") {
    report(false, label, `no Get${op.name}Result method: ${Object.keys(port)}`);
    return;
  }
  const deadline = Date.now() + 120000;
  let polls = 0;
  for (;;) {
    const answer = await call(poll, { jobId });
    polls++;
    if (answer.err) {
      report(false, label, `polling: ${describe(answer.err)}`);
      return;
    }
    const a = answer.result || {};
    if (a.jobId !== jobId) {
      report(false, label, `poll answered job ${JSON.stringify(a.jobId)}, not ${jobId}`);
      return;
    }
    if (a.status === "DONE") {
      const result = plain(a.result);
      const names = result && typeof result === "object" ? Object.keys(result) : [];
      if (names.length !== 1) {
        report(false, label, `DONE without one result element: ${JSON.stringify(a)}`);
        return;
      }
      readLine(service, op.name, version, "ticket", `${label} (job ${jobId}, ${polls} poll(s))`, result[names[0]]);
      return;
    }
    if (a.status === "FAILED" || Date.now() > deadline) {
      report(false, label, `status ${a.status} after ${polls} poll(s): ${a.faultCode} ${a.faultText}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main() {
  if (process.argv.length !== 6) {
    console.error("usage: node node_client.js NODE_SOAP_DIR BASE_URL MANIFEST SERVICE");
    return 2;
  }
  const [rawDir, base, manifest, service] = process.argv.slice(2);
  const dir = path.resolve(rawDir);
  const soap = require(path.join(dir, "node_modules", "soap"));
  const sax = require(path.join(dir, "node_modules", "sax"));
  const version = require(path.join(dir, "node_modules", "soap", "package.json")).version;
  const ops = readManifest(manifest, service);
  if (!ops.length) {
    report(false, `${service}: manifest`, "no operations listed");
    return 1;
  }
  const wsdlUrl = `${base}/soap/${service}?wsdl`;
  const endpoint = `${base}/soap/${service}`;
  const versions = [...new Set(ops.flatMap((o) => o.versions))].sort();
  for (const v of versions) {
    let client;
    try {
      client = await soap.createClientAsync(wsdlUrl, {
        forceSoap12Headers: v === "1.2",
        disableCache: true,
        customDeserializer: KEEP_TEXT,
      });
    } catch (e) {
      report(false, `${service}: load ${wsdlUrl} (SOAP ${v})`, describe(e));
      continue;
    }
    const svc = client.wsdl.services[service];
    if (!svc) {
      report(false, `${service}: service`, `node soap lists ${Object.keys(client.wsdl.services)}`);
      continue;
    }
    // The ports of this SOAP version, by the namespace of their binding
    // in the WSDL node soap loaded (it keeps no SOAP version per port).
    const portVersions = portSoapVersions(sax, client.wsdl.xml, service);
    const ports = Object.entries(svc.ports).filter(([name]) => portVersions[name] === v);
    report(ports.length > 0, `${service}: SOAP ${v} port`, ports.map(([n]) => n).join(", ") || "node soap found none");
    for (const [portName, portDef] of ports) {
      const where = `${service}[${portName} SOAP ${v}]`;
      report(portDef.location === endpoint, `${where}: address`, portDef.location);
      const port = client[service][portName];
      let invalidDone = false;
      for (const op of ops) {
        if (!op.versions.includes(v)) continue;
        const what = `${where} ${op.name}`;
        if (typeof port[op.name] !== "function") {
          report(false, `${what}: listed`, `node soap lists ${Object.keys(port)}`);
          continue;
        }
        let payload;
        try {
          payload = parseSample(sax, op.sample);
        } catch (e) {
          report(false, `${what}: sample`, describe(e));
          continue;
        }
        const label = `${what}: sample request`;
        const rpc = op.style === "rpc";
        const outcome = await call(port[op.name], toArgs(payload, rpc));
        if (op.expect === "response") {
          if (outcome.err) report(false, label, describe(outcome.err));
          else readLine(service, op.name, v, "response", label, plain(outcome.result));
        } else if (op.expect === "accepted") {
          report(!outcome.err, label, outcome.err ? describe(outcome.err) : "accepted, the callback got no error");
        } else if (op.expect === "ticket") {
          await pollTicket(port, service, op, v, label, outcome);
        } else if (op.expect.startsWith("declared:")) {
          judgeDeclared(label, service, op, v, outcome);
        } else {
          judgeFault(label, op.expect, v, outcome);
        }
        if (invalidDone || op.expect !== "response" || !payload.children.length) continue;
        // The sample's arguments without the payload's first child.
        const first = payload.children[0];
        const broken = { ...payload, children: payload.children.slice(1) };
        invalidDone = true;
        judgeFault(`${what}: invalid request (${first.name} left out)`, "INVALID_REQUEST", v,
          await call(port[op.name], toArgs(broken, rpc)));
      }
    }
  }
  console.log(`node soap ${version}: ${service}: ${failures} failed check(s)`);
  return failures ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.log(`FAIL node client: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
