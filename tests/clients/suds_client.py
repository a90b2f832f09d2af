#!/usr/bin/env python3
"""Real-client check with suds (suds-community): load a service's WSDL from
the facade, call every operation through suds's service proxy for each
SOAP 1.1 port, and print what suds hands back — its sudsobject, as plain
data — as JSON on a `read` line for tests/clients/real_clients.rs to check
against the contract's rules. A fault must be raised as suds.WebFault
carrying soapgate's code, and a fault the WSDL declares as a WebFault whose
detail suds parsed holds the fault's element (printed on a `read` line too);
an async operation's ticket is polled with Get{Operation}Result until DONE.

suds speaks SOAP 1.1 only: it reads a soap12 binding as a 1.1 one (and
would send a 1.1 envelope through it), so ports whose WSDL binding is SOAP
1.2 are left out, with a note.

The arguments are the sample request's payload as suds's users pass them:
keyword arguments by the names suds gives the operation's parameters (the
wrapper's children, or the rpc parts), complex values as dicts, repeated
elements as lists, attributes as "_name", and an element with attributes
and text as suds's Property object (its value the text).

Usage: suds_client.py BASE_URL MANIFEST SERVICE
MANIFEST: see tests/clients/real_clients.rs. Exits 1 when any check failed.
"""

import json
import sys
import time
import traceback
import urllib.request

from lxml import etree

import suds
from suds import WebFault
from suds.client import Client
from suds.sudsobject import Object as SudsObject
from suds.sudsobject import Property

SOAPGATE_NS = "urn:soapgate:v1"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
ENVELOPE_NS = {
    "http://schemas.xmlsoap.org/soap/envelope/",
    "http://www.w3.org/2003/05/soap-envelope",
}
SOAP_CODES = {
    "NOT_MAPPED": "Server",
    "MODEL_THROTTLED": "Server",
    "INVALID_REQUEST": "Client",
}

failures = 0


def report(ok, what, detail=""):
    global failures
    if not ok:
        failures += 1
    line = f"{'ok  ' if ok else 'FAIL'} {what}"
    if detail:
        line += f": {detail}"
    print(line, flush=True)


def read_line(service, op, version, kind, label, tree):
    print("\t".join(["read", service, op, version, kind, label, json.dumps(tree, default=str)]), flush=True)


def read_manifest(path, service):
    ops = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            raw = raw.rstrip("\n")
            if not raw or raw.startswith("#"):
                continue
            svc, op, style, versions, one_way, sample, expect = raw.split("\t")
            if svc == service:
                ops.append({"name": op, "style": style, "versions": versions.split(","),
                            "one_way": one_way == "1", "sample": sample, "expect": expect})
    return ops


def soap12_ports(wsdl_url, service):
    """Names of the service's ports whose binding is SOAP 1.2."""
    with urllib.request.urlopen(wsdl_url, timeout=30) as r:
        root = etree.fromstring(r.read())
    soap12 = {b.get("name") for b in root.iter(f"{{{WSDL_NS}}}binding")
              if b.find(f"{{{WSDL_SOAP12}}}binding") is not None}
    out = set()
    for s in root.iter(f"{{{WSDL_NS}}}service"):
        if s.get("name") != service:
            continue
        for p in s.iter(f"{{{WSDL_NS}}}port"):
            if p.get("binding", "").split(":")[-1] in soap12:
                out.add(p.get("name"))
    return out


def sample_payload(path):
    root = etree.parse(path).getroot()
    if etree.QName(root).namespace in ENVELOPE_NS:
        ns = etree.QName(root).namespace
        body = root.find(f"{{{ns}}}Body")
        children = [c for c in body if isinstance(c.tag, str)] if body is not None else []
        if not children:
            raise ValueError(f"{path}: envelope without a payload")
        return children[0]
    return root


def to_args(el):
    """An element's content as suds's users pass it."""
    children = [c for c in el if isinstance(c.tag, str)]
    attrs = {f"_{etree.QName(k).localname}": v for k, v in el.attrib.items()
             if etree.QName(k).namespace != "http://www.w3.org/2001/XMLSchema-instance"}
    if not children:
        if attrs:
            # suds's object for simple content with attributes: its
            # marshaller writes the value as the text.
            prop = Property(el.text or "")
            for k, v in attrs.items():
                setattr(prop, k, v)
            return prop
        return el.text or ""
    out = dict(attrs)
    counts = {}
    for c in children:
        name = etree.QName(c).localname
        counts[name] = counts.get(name, 0) + 1
    for c in children:
        name = etree.QName(c).localname
        if counts[name] > 1:
            out.setdefault(name, []).append(to_args(c))
        else:
            out[name] = to_args(c)
    return out


def plain(value):
    """A suds result as plain data: attributes as "@name", the text beside
    them as "#text"."""
    if isinstance(value, SudsObject):
        items = dict(value)
        has_attrs = any(k.startswith("_") for k in items)
        out = {}
        for k, v in items.items():
            if k.startswith("_"):
                out["@" + k[1:]] = plain(v)
            elif k == "value" and has_attrs:
                out["#text"] = plain(v)
            else:
                out[k] = plain(v)
        return out
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, suds.sax.text.Text):
        return str(value)
    return value


def soapgate_code(fault):
    detail = getattr(fault.fault, "detail", None)
    error = getattr(detail, "Error", None) if detail is not None else None
    code = getattr(error, "Code", None) if error is not None else None
    return str(code) if code is not None else None


def judge_fault(what, want, call):
    try:
        result = call()
    except WebFault as e:
        got = soapgate_code(e)
        code = str(getattr(e.fault, "faultcode", ""))
        text = str(getattr(e.fault, "faultstring", ""))
        problems = []
        if got != want:
            problems.append(f"soapgate code {got!r}, expected {want}")
        if code.split(":")[-1] != SOAP_CODES[want]:
            problems.append(f"SOAP fault code {code!r}, expected {SOAP_CODES[want]}")
        if not text:
            problems.append("empty faultstring")
        if problems:
            report(False, what, "; ".join(problems) + f" (fault: {e.fault})")
        else:
            report(True, what, f"suds WebFault {code} {got}: {text}")
        return
    except Exception as e:
        report(False, what, f"{type(e).__name__} instead of a WebFault: {e}")
        traceback.print_exc(file=sys.stdout)
        return
    report(False, what, f"no fault; the call returned {plain(result)!r}")


def expect_declared(what, service, op, call):
    """A fault the WSDL declares (expect: declared:NAME:CODE:LOCAL:NS): a
    suds.WebFault with the SOAP code, whose detail suds parsed into an
    object holding the detail element; what suds read goes out on a read
    line."""
    _, name, code, local, _ns = op["expect"].split(":", 4)
    try:
        result = call()
    except WebFault as e:
        faultcode = str(getattr(e.fault, "faultcode", ""))
        if faultcode.split(":")[-1] != code:
            report(False, what, f"SOAP fault code {faultcode!r}, expected {code}")
            return
        detail = getattr(e.fault, "detail", None)
        value = getattr(detail, local, None) if detail is not None else None
        if value is None:
            report(False, what, f"no {local} in the fault's detail: {detail}")
            return
        read_line(service, op["name"], "1.1", "fault",
                  f"{what}: declared fault {name} as suds WebFault {faultcode}: {e.fault.faultstring}", plain(value))
        return
    except Exception as e:
        report(False, what, f"{type(e).__name__} instead of a WebFault: {e}")
        traceback.print_exc(file=sys.stdout)
        return
    report(False, what, f"no fault; the call returned {plain(result)!r}")


def poll_ticket(port, service, op, label, call):
    try:
        ticket = call()
        job_id, status = str(ticket.jobId), str(ticket.status)
        if not job_id or status not in ("QUEUED", "RUNNING", "DONE"):
            report(False, label, f"ticket {ticket}")
            return
        poll = getattr(port, f"Get{op['name']}Result")
        deadline = time.monotonic() + 120
        polls = 0
        while True:
            answer = poll(jobId=job_id)
            polls += 1
            if str(answer.jobId) != job_id:
                report(False, label, f"poll answered job {answer.jobId!r}, not {job_id!r}")
                return
            if str(answer.status) in ("DONE", "FAILED") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except WebFault as e:
        report(False, label, f"suds WebFault: {e.fault}")
        return
    except Exception as e:
        report(False, label, f"{type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stdout)
        return
    if str(answer.status) != "DONE":
        report(False, label, f"status {answer.status} after {polls} poll(s): {answer}")
        return
    result = plain(answer.result)
    if not isinstance(result, dict) or len(result) != 1:
        report(False, label, f"DONE without one result element: {answer}")
        return
    read_line(service, op["name"], "1.1", "ticket", f"{label} (job {job_id}, {polls} poll(s))",
              next(iter(result.values())))


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, manifest, service = sys.argv[1:]
    ops = read_manifest(manifest, service)
    if not ops:
        report(False, f"{service}: manifest", "no operations listed")
        return 1
    wsdl_url = f"{base_url}/soap/{service}?wsdl"
    endpoint = f"{base_url}/soap/{service}"
    try:
        client = Client(wsdl_url, cache=None, timeout=60)
        skip = soap12_ports(wsdl_url, service)
    except Exception as e:
        report(False, f"{service}: load {wsdl_url}", f"{type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stdout)
        return 1
    report(True, f"{service}: load {wsdl_url}")
    ports = [p for s in client.wsdl.services if s.name == service for p in s.ports]
    soap11 = [p for p in ports if p.name not in skip]
    for p in ports:
        if p.name in skip:
            print(f"note {service}[{p.name}]: a SOAP 1.2 port; suds speaks SOAP 1.1 only, left out")
    report(bool(soap11), f"{service}: SOAP 1.1 port", ", ".join(p.name for p in soap11) or "suds found none")
    for p in soap11:
        where = f"{service}[{p.name} SOAP 1.1]"
        proxy = client.service[p.name]
        invalid_done = False
        for op in ops:
            if "1.1" not in op["versions"]:
                continue
            what = f"{where} {op['name']}"
            method = p.methods.get(op["name"])
            if method is None:
                report(False, f"{what}: listed", f"suds lists {sorted(p.methods)}")
                continue
            report(method.location == endpoint, f"{what}: address", method.location)
            try:
                payload = sample_payload(op["sample"])
                args = to_args(payload)
                if not isinstance(args, dict):
                    args = {}
            except Exception as e:
                report(False, f"{what}: sample", f"{type(e).__name__}: {e}")
                continue
            call_method = getattr(proxy, op["name"])
            label = f"{what}: sample request"
            if op["expect"] == "response":
                try:
                    result = call_method(**args)
                    read_line(service, op["name"], "1.1", "response", label, plain(result))
                except WebFault as e:
                    report(False, label, f"suds WebFault: {e.fault}")
                except Exception as e:
                    report(False, label, f"{type(e).__name__}: {e}")
                    traceback.print_exc(file=sys.stdout)
            elif op["expect"] == "accepted":
                try:
                    result = call_method(**args)
                    report(result is None, label, f"accepted, suds returned {result!r}")
                except Exception as e:
                    report(False, label, f"{type(e).__name__}: {e}")
            elif op["expect"] == "ticket":
                poll_ticket(proxy, service, op, label, lambda: call_method(**args))
            elif op["expect"].startswith("declared:"):
                expect_declared(label, service, op, lambda: call_method(**args))
            else:
                judge_fault(label, op["expect"], lambda: call_method(**args))
            if invalid_done or op["expect"] != "response" or not args:
                continue
            # The sample's arguments without the payload's first child.
            first = next(iter(args))
            broken = {k: v for k, v in args.items() if k != first}
            invalid_done = True
            judge_fault(f"{what}: invalid request ({first} left out)", "INVALID_REQUEST",
                        lambda: call_method(**broken))
    print(f"suds {suds.__version__}: {service}: {failures} failed check(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
