#!/usr/bin/env python3
"""Real-client check with gSOAP: wsdl2h and soapcpp2 generate C++ proxy
classes from the facade's published WSDL, and a C++ program compiled with
g++ against libgsoap++ calls the facade through them.

gSOAP has no reflection, so this script writes the C++ program too: one
function per generated proxy method, which reads the request into the
method's own generated request struct with gSOAP's deserializer
(soap_read_*), calls the proxy method, and writes the response object the
proxy deserialized back out with the generated serializer (soap_write_*); a
fault is printed from gSOAP's fault structure (soap_fault_string, the
typed members of SOAP_ENV__Detail a wsdl:fault declares, written back out
the same way, and the rest of the detail as XML).

Usage:
  gsoap_client.py build WORKDIR BASE_URL SERVICE...
      generate and compile WORKDIR/SERVICE/client for each service
  gsoap_client.py run WORKDIR BASE_URL MANIFEST SERVICE
      call every operation of SERVICE listed in MANIFEST (see
      tests/clients/real_clients.rs) through WORKDIR/SERVICE/client

`run` prints one line per check; a response read by the C++ program is
printed as JSON on a `read` line for tests/clients/real_clients.rs to check
against the contract's rules. Exit status 1 when any check failed.

wsdl2h writes one namespace table for all bindings of a service (the SOAP
1.2 envelope first when the WSDL has a 1.2 binding) and marks every
operation plainly "SOAP"; with -N each binding gets a proxy class of its
own, and the program gives each proxy that table with the envelope and
encoding namespaces of the SOAP version of the binding the WSDL says it
came from (gSOAP takes its SOAP version from that table).
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

from lxml import etree

SOAPGATE_NS = "urn:soapgate:v1"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
ENVELOPE_NS = {
    "http://schemas.xmlsoap.org/soap/envelope/",
    "http://www.w3.org/2003/05/soap-envelope",
}
SOAP_CODES = {
    "NOT_MAPPED": ("Server", "Receiver"),
    "MODEL_THROTTLED": ("Server", "Receiver"),
    "INVALID_REQUEST": ("Client", "Sender"),
}
GSOAP_IMPORT = "/usr/share/gsoap/import"

failures = 0


def report(ok, what, detail=""):
    global failures
    if not ok:
        failures += 1
    line = f"{'ok  ' if ok else 'FAIL'} {what}"
    if detail:
        line += f": {detail}"
    print(line, flush=True)


# --- build --------------------------------------------------------------


def binding_versions(wsdl_url):
    """{binding name: "1.1" | "1.2"} of the SOAP bindings of the WSDL."""
    with urllib.request.urlopen(wsdl_url, timeout=30) as r:
        root = etree.fromstring(r.read())
    out = {}
    for b in root.iter(f"{{{WSDL_NS}}}binding"):
        if b.find(f"{{{WSDL_SOAP11}}}binding") is not None:
            out[b.get("name")] = "1.1"
        elif b.find(f"{{{WSDL_SOAP12}}}binding") is not None:
            out[b.get("name")] = "1.2"
    return out


def split_params(text):
    """Split a C++ parameter list on its top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def param_name(param):
    return re.search(r"(\w+)\s*$", param).group(1)


def param_type(param):
    """The type of a `T &name` parameter, without `struct` and the `&`."""
    t = re.sub(r"&?\s*\w+\s*$", "", param).strip().rstrip("&").strip()
    return re.sub(r"^struct\s+", "", t)


def proxy_methods(proxy_h, proxy_cpp):
    """[(method, request struct, [input names], response type or None)]"""
    header = open(proxy_h, encoding="utf-8").read()
    source = open(proxy_cpp, encoding="utf-8").read()
    methods = []
    pattern = re.compile(
        r"virtual int (\w+)\(const char \*soap_endpoint_url, const char \*soap_action, (.*?)\) \{ return (.*?); \}"
    )
    for m in pattern.finditer(header):
        name, params, body = m.group(1), split_params(m.group(2)), m.group(3)
        if name.startswith(("send_", "recv_")):
            continue
        struct = re.search(
            rf"::send_{name}\(.*?\n\{{\n\s*struct (\w+) soap_tmp_", source, re.S
        )
        if struct is None:
            raise RuntimeError(f"no request struct for {name} in {proxy_cpp}")
        one_way = "soap_recv_empty_response" in body
        response = None if one_way else param_type(params[-1])
        inputs = params if one_way else params[:-1]
        methods.append((name, struct.group(1), [param_name(p) for p in inputs], response))
    return methods


def detail_members(svc_h):
    """The typed members (pointer, name) wsdl2h put in SOAP_ENV__Detail for
    the declared faults."""
    text = open(svc_h, encoding="utf-8").read()
    m = re.search(r"struct SOAP_ENV__Detail\s*\{(.*?)\};", text, re.S)
    if not m:
        return []
    out = []
    for line in m.group(1).splitlines():
        line = line.split("///")[0].strip()
        d = re.match(r"(\w+)\s*\*\s*(\w+)\s*;", line)
        if d and d.group(2) != "fault":
            out.append((d.group(1), d.group(2)))
    return out


ENVELOPES = {
    "1.1": ("http://schemas.xmlsoap.org/soap/envelope/", "http://schemas.xmlsoap.org/soap/encoding/"),
    "1.2": ("http://www.w3.org/2003/05/soap-envelope", "http://www.w3.org/2003/05/soap-encoding"),
}


def namespace_table(name, nsmap_text, version):
    """A C++ namespace table from the rows of a wsdl2h .nsmap, with the
    SOAP-ENV and SOAP-ENC rows of the given SOAP version."""
    rows = re.findall(r'\{\s*"([^"]+)",\s*"([^"]+)",\s*(NULL|"[^"]*"),\s*NULL\s*\}', nsmap_text)
    env, enc = ENVELOPES[version]
    other = "1.2" if version == "1.1" else "1.1"
    out = [f"static const struct Namespace {name}[] = {{"]
    for prefix, uri, alt in rows:
        if prefix == "SOAP-ENV":
            uri, alt = env, f'"{ENVELOPES[other][0]}"'
        elif prefix == "SOAP-ENC":
            uri, alt = enc, f'"{ENVELOPES[other][1]}"'
        out.append(f'  {{ "{prefix}", "{uri}", {alt}, NULL }},')
    out.append("  { NULL, NULL, NULL, NULL }")
    out.append("};")
    return "\n".join(out)


def generate_main(service, proxies, detail, nsmap, nsmap_text):
    """The C++ program: `client ENDPOINT PROXY METHOD REQUEST_FILE VERSION`."""
    out = [
        "// Generated by tests/clients/gsoap_client.py for " + service + ".",
        '#include "soapH.h"',
    ]
    out += [f'#include "soap{p}Proxy.h"' for p in proxies]
    # The global table the generated code refers to.
    out += [f'#include "{nsmap}"']
    out += [
        "// The namespace table of each SOAP version: wsdl2h wrote one for all",
        "// bindings; the envelope and encoding entries pick the version.",
        namespace_table("ns11", nsmap_text, "1.1"),
        namespace_table("ns12", nsmap_text, "1.2"),
        "#include <cstring>",
        "#include <fstream>",
        "#include <iostream>",
        "",
        "static struct soap *writer() {",
        "  struct soap *w = soap_new1(SOAP_C_UTFSTRING);",
        "  w->os = &std::cout;",
        "  return w;",
        "}",
        "",
        "static int print_fault(struct soap *soap) {",
        '  std::cout << "@@FAULT\\n";',
        "  const char **code = soap_faultcode(soap);",
        "  const char **sub = soap_faultsubcode(soap);",
        '  std::cout << (code && *code ? *code : "") << "\\n";',
        '  std::cout << (sub && *sub ? *sub : "") << "\\n";',
        '  const char *text = soap_fault_string(soap);',
        '  std::cout << (text ? text : "") << "\\n";',
        "  struct SOAP_ENV__Detail *d = NULL;",
        "  if (soap->fault) d = soap->version == 2 ? soap->fault->SOAP_ENV__Detail : soap->fault->detail;",
        "  if (d) {",
    ]
    for t, name in detail:
        out += [
            f"    if (d->{name}) {{",
            f'      std::cout << "@@TYPED {t}\\n";',
            f"      soap_write_{t}(writer(), d->{name});",
            '      std::cout << "\\n";',
            "    }",
        ]
    out += [
        '    if (d->__any) std::cout << "@@DETAIL\\n" << d->__any << "\\n";',
        "  }",
        "  return 0;",
        "}",
        "",
        "int main(int argc, char **argv) {",
        "  if (argc != 6) {",
        '    std::cerr << "usage: client ENDPOINT PROXY METHOD REQUEST_FILE VERSION\\n";',
        "    return 2;",
        "  }",
        "  const char *endpoint = argv[1];",
        "  std::string proxy = argv[2], method = argv[3];",
        "  int version = std::strcmp(argv[5], \"1.2\") == 0 ? 2 : 1;",
        "  std::ifstream in(argv[4]);",
        "  struct soap *r = soap_new1(SOAP_C_UTFSTRING);",
        "  r->is = &in;",
    ]
    for proxy, methods in proxies.items():
        out += [f'  if (proxy == "{proxy}") {{', f"    {proxy}Proxy p(SOAP_C_UTFSTRING);",
                "    soap_set_namespaces(p.soap, version == 2 ? ns12 : ns11);",
                "    p.soap->connect_timeout = 30;", "    p.soap->recv_timeout = 60;",
                "    p.soap->send_timeout = 30;"]
        for name, struct, inputs, response in methods:
            args = ", ".join(["endpoint", "NULL"] + [f"req.{i}" for i in inputs] + (["resp"] if response else []))
            out += [
                f'    if (method == "{name}") {{',
                f"      struct {struct} req;",
                f"      soap_default_{struct}(r, &req);",
                f"      if (soap_read_{struct}(r, &req)) {{",
                '        std::cout << "@@ERROR\\nreading the request: ";',
                "        soap_stream_fault(r, std::cout);",
                "        return 3;",
                "      }",
            ]
            if response:
                # recv_* default-initializes the response itself.
                out += [f"      {response} resp;"]
            out += [
                f"      int rc = p.{name}({args});",
                "      if (rc == SOAP_OK) {",
            ]
            if response:
                out += [
                    '        std::cout << "@@RESPONSE\\n";',
                    f"        soap_write_{response}(writer(), &resp);",
                    '        std::cout << "\\n";',
                ]
            else:
                out += ['        std::cout << "@@ACCEPTED\\n";']
            out += [
                "        return 0;",
                "      }",
                "      if (rc == SOAP_FAULT) return print_fault(p.soap);",
                '      std::cout << "@@ERROR\\n";',
                "      soap_stream_fault(p.soap, std::cout);",
                "      return 3;",
                "    }",
            ]
        out += ["  }"]
    out += [
        '  std::cout << "@@ERROR\\nno generated method " << proxy << "::" << method << "\\n";',
        "  return 4;",
        "}",
        "",
    ]
    return "\n".join(out)


def build_service(workdir, base_url, service):
    """wsdl2h, soapcpp2, the generated main.cpp and g++: a log of the steps,
    and whether the client was built."""
    d = os.path.join(workdir, service)
    os.makedirs(d, exist_ok=True)
    wsdl_url = f"{base_url}/soap/{service}?wsdl"
    log = []

    def step(*cmd):
        p = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
        log.append(f"$ {' '.join(cmd)}\n[exit {p.returncode}]\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
        return p.returncode == 0

    if not step("wsdl2h", "-Nb", "-o", "svc.h", wsdl_url):
        return False, log
    if not step("soapcpp2", "-j", "-C", "-x", "-I" + GSOAP_IMPORT, "svc.h"):
        return False, log
    versions = binding_versions(wsdl_url)
    proxies = {}
    for f in sorted(os.listdir(d)):
        m = re.fullmatch(r"soap(\w+)Proxy\.h", f)
        if m:
            proxies[m.group(1)] = proxy_methods(
                os.path.join(d, f), os.path.join(d, f"soap{m.group(1)}Proxy.cpp")
            )
    nsmaps = sorted(f for f in os.listdir(d) if f.endswith(".nsmap"))
    if not proxies or not nsmaps:
        log.append(f"soapcpp2 wrote no proxy or namespace table: {sorted(os.listdir(d))}")
        return False, log
    with open(os.path.join(d, "proxies.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                p: {"version": versions.get(p), "methods": [m[0] for m in methods]}
                for p, methods in proxies.items()
            },
            f,
        )
    with open(os.path.join(d, "main.cpp"), "w", encoding="utf-8") as f:
        nsmap_text = open(os.path.join(d, nsmaps[0]), encoding="utf-8").read()
        f.write(generate_main(service, proxies, detail_members(os.path.join(d, "svc.h")), nsmaps[0], nsmap_text))
    sources = ["main.cpp", "soapC.cpp"] + [f"soap{p}Proxy.cpp" for p in proxies]
    ok = step("g++", "-O0", "-w", "-o", "client", *sources, "-lgsoap++")
    return ok, log


def build(workdir, base_url, services):
    ok = True
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda s: (s, build_service(workdir, base_url, s)), services)
        for service, (built, log) in results:
            print(f"=== gSOAP build {service}: {'ok' if built else 'FAILED'}")
            print("\n".join(log))
            ok = ok and built
    return 0 if ok else 1


# --- run ----------------------------------------------------------------


def read_manifest(path, service):
    ops = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            raw = raw.rstrip("\n")
            if not raw or raw.startswith("#"):
                continue
            svc, op, style, versions, one_way, sample, expect = raw.split("\t")
            if svc == service:
                ops.append(
                    {
                        "name": op,
                        "style": style,
                        "versions": versions.split(","),
                        "one_way": one_way == "1",
                        "sample": sample,
                        "expect": expect,
                    }
                )
    return ops


def sample_payload(path):
    root = etree.parse(path).getroot()
    if etree.QName(root).namespace in ENVELOPE_NS:
        ns = etree.QName(root).namespace
        body = root.find(f"{{{ns}}}Body")
        if body is None or len(body) == 0:
            raise ValueError(f"{path}: envelope without a payload")
        return [c for c in body if isinstance(c.tag, str)][0]
    return root


def to_tree(el):
    """An element as plain data: children by local name (repeated ones as a
    list), attributes as "@name", text of a leaf as a string."""
    children = [c for c in el if isinstance(c.tag, str)]
    attrs = {f"@{etree.QName(k).localname}": v for k, v in el.attrib.items()
             if etree.QName(k).namespace != "http://www.w3.org/2001/XMLSchema-instance"}
    if not children and not attrs:
        return el.text or ""
    out = dict(attrs)
    if not children:
        out["#text"] = el.text or ""
        return out
    for c in children:
        name = etree.QName(c).localname
        value = to_tree(c)
        if name in out:
            if not isinstance(out[name], list):
                out[name] = [out[name]]
            out[name].append(value)
        else:
            out[name] = value
    return out


class Client:
    def __init__(self, workdir, endpoint, service):
        self.dir = os.path.join(workdir, service)
        self.exe = os.path.join(self.dir, "client")
        self.endpoint = endpoint
        self.calls = 0

    def call(self, proxy, method, request_xml, version):
        """(kind, sections) — kind RESPONSE, ACCEPTED, FAULT or ERROR."""
        self.calls += 1
        path = os.path.join(self.dir, f"request-{os.getpid()}-{self.calls}.xml")
        with open(path, "wb") as f:
            f.write(request_xml)
        p = subprocess.run(
            [self.exe, self.endpoint, proxy, method, path, version],
            capture_output=True,
            timeout=120,
        )
        os.unlink(path)
        text = p.stdout.decode("utf-8", "replace")
        sections = {}
        current = None
        for line in text.split("\n"):
            if line.startswith("@@"):
                current = line[2:]
                sections[current] = []
            elif current is not None:
                sections[current].append(line)
        sections = {k: "\n".join(v).strip() for k, v in sections.items()}
        kind = next(iter(sections), None)
        if kind is None:
            return "ERROR", {"ERROR": f"exit {p.returncode}: {text} {p.stderr.decode('utf-8', 'replace')}"}
        return kind.split()[0], sections


def response_tree(xml):
    root = etree.fromstring(xml.encode("utf-8"))
    tree = to_tree(root)
    return tree if isinstance(tree, dict) else {etree.QName(root).localname: tree}


def soapgate_code(detail_xml):
    if not detail_xml:
        return None
    try:
        root = etree.fromstring(f"<d>{detail_xml}</d>".encode("utf-8"))
    except etree.XMLSyntaxError:
        return None
    el = root.find(f".//{{{SOAPGATE_NS}}}Code")
    return el.text if el is not None else None


def judge_fault(what, want, version, kind, sections):
    if kind != "FAULT":
        report(False, what, f"{kind} instead of a fault: {sections}")
        return
    code, sub, text = (sections["FAULT"].split("\n") + ["", "", ""])[:3]
    got = soapgate_code(sections.get("DETAIL"))
    want_soap = SOAP_CODES[want][0 if version == "1.1" else 1]
    problems = []
    if got != want:
        problems.append(f"soapgate code {got!r}, expected {want}")
    if code.split(":")[-1] != want_soap:
        problems.append(f"SOAP fault code {code!r}, expected {want_soap}")
    if not text:
        problems.append("empty fault string")
    if problems:
        report(False, what, "; ".join(problems) + f" (detail: {sections.get('DETAIL')})")
    else:
        report(True, what, f"gSOAP SOAP_FAULT {code} {got}: {text}")


def judge_declared(what, service, op, version, kind, sections):
    """A fault the WSDL declares (expect: declared:NAME:CODE:LOCAL:NS): a
    SOAP_FAULT with the SOAP code whose detail gSOAP read into the member of
    SOAP_ENV__Detail that wsdl2h generated for the fault's element (written
    back out by the program); its content goes out on a read line."""
    _, name, code, local, ns = op["expect"].split(":", 4)
    want_soap = code if version == "1.1" else {"Client": "Sender", "Server": "Receiver"}[code]
    if kind != "FAULT":
        report(False, what, f"{kind} instead of a fault: {sections}")
        return
    soap_code = sections["FAULT"].split("\n")[0]
    if soap_code.split(":")[-1] != want_soap:
        report(False, what, f"SOAP fault code {soap_code!r}, expected {want_soap}")
        return
    for key, xml in sections.items():
        if not key.startswith("TYPED "):
            continue
        root = etree.fromstring(xml.encode("utf-8"))
        if etree.QName(root).localname == local and etree.QName(root).namespace == ns:
            read_line(service, op["name"], version, "fault",
                      f"{what}: declared fault {name} as gSOAP SOAP_FAULT {soap_code} ({key.split()[1]})",
                      to_tree(root))
            return
    report(False, what, f"gSOAP read no typed detail {{{ns}}}{local}: {sections}")


def run(workdir, base_url, manifest, service):
    ops = read_manifest(manifest, service)
    if not ops:
        report(False, f"{service}: manifest", "no operations listed")
        return 1
    try:
        proxies = json.load(open(os.path.join(workdir, service, "proxies.json"), encoding="utf-8"))
    except OSError as e:
        report(False, f"{service}: generated client", str(e))
        return 1
    client = Client(workdir, f"{base_url}/soap/{service}", service)
    for version in sorted({v for op in ops for v in op["versions"]}):
        ports = [p for p, info in proxies.items() if info["version"] == version]
        report(bool(ports), f"{service}: SOAP {version} proxy", ", ".join(ports) or "soapcpp2 generated none")
        for proxy in ports:
            where = f"{service}[{proxy}Proxy SOAP {version}]"
            methods = proxies[proxy]["methods"]
            invalid_done = False
            for op in ops:
                if version not in op["versions"]:
                    continue
                what = f"{where} {op['name']}"
                if op["name"] not in methods:
                    report(False, f"{what}: generated method", f"the proxy has {methods}")
                    continue
                payload = sample_payload(op["sample"])
                label = f"{what}: sample request"
                kind, sections = client.call(proxy, op["name"], etree.tostring(payload), version)
                if op["expect"] == "response":
                    if kind == "RESPONSE":
                        read_line(service, op["name"], version, "response", label,
                                  response_tree(sections["RESPONSE"]))
                    else:
                        report(False, label, f"{kind}: {sections}")
                elif op["expect"] == "accepted":
                    report(kind == "ACCEPTED", label,
                           "accepted, the one-way method returned SOAP_OK" if kind == "ACCEPTED" else f"{kind}: {sections}")
                elif op["expect"] == "ticket":
                    poll_ticket(client, proxy, methods, service, op, version, label, kind, sections)
                elif op["expect"].startswith("declared:"):
                    judge_declared(label, service, op, version, kind, sections)
                else:
                    judge_fault(label, op["expect"], version, kind, sections)
                if invalid_done or op["expect"] != "response" or len(payload) == 0:
                    continue
                # The sample with its payload's first child left out, read
                # by gSOAP's deserializer into the request struct as usual.
                broken = etree.fromstring(etree.tostring(payload))
                first = [c for c in broken if isinstance(c.tag, str)][0]
                broken.remove(first)
                invalid_done = True
                kind, sections = client.call(proxy, op["name"], etree.tostring(broken), version)
                judge_fault(f"{what}: invalid request ({etree.QName(first).localname} left out)",
                            "INVALID_REQUEST", version, kind, sections)
    print(f"gSOAP: {service}: {failures} failed check(s)")
    return 1 if failures else 0


def read_line(service, op, version, kind, label, tree):
    print("\t".join(["read", service, op, version, kind, label, json.dumps(tree)]), flush=True)


def poll_ticket(client, proxy, methods, service, op, version, label, kind, sections):
    if kind != "RESPONSE":
        report(False, label, f"{kind} instead of a ticket: {sections}")
        return
    ticket = response_tree(sections["RESPONSE"])
    job_id, status = ticket.get("jobId"), ticket.get("status")
    if not job_id or status not in ("QUEUED", "RUNNING", "DONE"):
        report(False, label, f"ticket {ticket}")
        return
    poll = f"Get{op['name']}Result"
    if poll not in methods:
        report(False, label, f"no generated {poll} method: {methods}")
        return
    deadline = time.monotonic() + 120
    polls = 0
    while True:
        request = etree.Element(f"{{{SOAPGATE_NS}}}{poll}", nsmap={"sg": SOAPGATE_NS})
        etree.SubElement(request, f"{{{SOAPGATE_NS}}}jobId").text = job_id
        kind, sections = client.call(proxy, poll, etree.tostring(request), version)
        polls += 1
        if kind != "RESPONSE":
            report(False, label, f"polling {poll}: {kind}: {sections}")
            return
        answer = response_tree(sections["RESPONSE"])
        if answer.get("jobId") != job_id:
            report(False, label, f"poll answered job {answer.get('jobId')!r}, not {job_id!r}")
            return
        if answer.get("status") == "DONE":
            result = answer.get("result")
            if not isinstance(result, dict) or len(result) != 1:
                report(False, label, f"DONE without one result element: {answer}")
                return
            inner = next(iter(result.values()))
            read_line(service, op["name"], version, "ticket", f"{label} (job {job_id}, {polls} poll(s))", inner)
            return
        if answer.get("status") == "FAILED" or time.monotonic() > deadline:
            report(False, label, f"status {answer.get('status')} after {polls} poll(s): {answer}")
            return
        time.sleep(0.2)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "build":
        return build(sys.argv[2], sys.argv[3], sys.argv[4:])
    if len(sys.argv) == 6 and sys.argv[1] == "run":
        return run(*sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
