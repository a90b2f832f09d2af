#!/usr/bin/env python3
"""Real-client check with zeep (Python): load a service's WSDL from the
facade, call every operation through zeep's own call path, read the response
through zeep's object model and check its fields against rules derived from
the contract; one-way operations must return None; the facade's faults must
surface as zeep.exceptions.Fault with soapgate's code.

Usage: zeep_client.py BASE_URL MANIFEST SERVICE

MANIFEST is a tab-separated file written by tests/clients/real_clients.rs, one line
per operation: service, operation, style, SOAP versions ("1.1,1.2"), one-way
(0/1), path of the sample request (examples/{Service}/{Operation}.xml), and
what the sample must get: "response", "accepted", "ticket", a soapgate fault
code, or "declared:NAME:CODE:LOCAL:NS", a fault the WSDL declares, whose
detail element zeep parses and prints on a "read" line for
tests/clients/real_clients.rs to check. An async operation ("ticket") answers
a ticket (jobId, status); the client then calls Get{Operation}Result, which
the published WSDL declares, until the status is DONE, and checks the rules
on the original response element inside its result.
rules.tsv beside it holds the response rules (see tests/clients/real_clients.rs).

Each sample's Body payload is deserialized by zeep against the WSDL's own
message definition into call arguments, so the request zeep sends is built by
zeep. Operations expected to answer also get one schema-invalid request per
SOAP version (INVALID_REQUEST). One line is printed per check; the exit
status is 1 if any failed.
"""

import datetime
import decimal
import json
import os
import re
import sys
import traceback

from lxml import etree

import zeep
from zeep.exceptions import Fault
from zeep.helpers import serialize_object
from zeep.transports import Transport
from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding
from zeep.xsd import SkipValue
from zeep.xsd.valueobjects import CompoundValue

SOAPGATE_NS = "urn:soapgate:v1"
ENVELOPE_NS = {
    "http://schemas.xmlsoap.org/soap/envelope/",
    "http://www.w3.org/2003/05/soap-envelope",
}
# The SOAP-level code expected for each soapgate code (1.1 name, 1.2 name).
SOAP_CODES = {
    "NOT_MAPPED": ("Server", "Receiver"),
    "MODEL_THROTTLED": ("Server", "Receiver"),
    "INVALID_REQUEST": ("Client", "Sender"),
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


def read_rules(path, service):
    """{operation: [(path, kind, arg), ...]}"""
    out = {}
    with open(path, encoding="utf-8") as f:
        for raw in f:
            raw = raw.rstrip("\n")
            if not raw or raw.startswith("#"):
                continue
            svc, op, rule_path, kind, arg = raw.split("\t")
            if svc == service:
                out.setdefault(op, []).append((rule_path, kind, arg))
    return out


def field_names(rules):
    """{object path: its field names} from the `children` rules; attribute
    names without their "@" (zeep names attributes plainly)."""
    return {p: [n.lstrip("@") for n in arg.split("|")] for p, kind, arg in rules if kind == "children"}


def join(path, step):
    return f"{path}/{step}" if path else step


def fits(tree, path, fields):
    names = fields.get(path)
    if isinstance(tree, list):
        return bool(tree) and all(fits(i, path, fields) for i in tree)
    if names is None:
        return not isinstance(tree, dict)
    if not isinstance(tree, dict):
        return False
    return all(k in names for k, v in tree.items() if v is not None)


def rewrap(tree, fields):
    """zeep hands back the only child of a response wrapper (or the only rpc
    part) unwrapped, sometimes more than one level deep: wrap the value
    again under the names the contract gives, until it fits."""
    chain, path = [], ""
    while not fits(tree, path, fields):
        names = fields.get(path) or []
        if len(names) != 1:
            break
        chain.append(names[0])
        path = join(path, names[0])
    for name in reversed(chain):
        tree = {name: tree}
    return tree


def plain(value):
    """zeep's result as plain data: dicts by local name, lists, scalars;
    dates and times in their XSD lexical form."""
    value = serialize_object(value)
    return _plain(value)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return value


def values_at(root, path):
    """Every value at `path`, lists flattened at each step, absent and None
    values left out."""
    current = root if isinstance(root, list) else [root]
    for step in path.split("/"):
        found = []
        for v in current:
            if isinstance(v, dict) and step in v:
                x = v[step]
                if isinstance(x, list):
                    found.extend(i for i in x if i is not None)
                elif x is not None:
                    found.append(x)
        current = found
    return current


def is_number(v):
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def type_ok(kind, v):
    if kind == "string":
        return isinstance(v, str)
    if kind == "number":
        return is_number(v)
    if kind == "integer":
        return is_number(v) and decimal.Decimal(str(v)) == decimal.Decimal(str(v)).to_integral_value()
    if kind == "boolean":
        return isinstance(v, bool)
    return False


def check_rules(tree, rules):
    """The broken rules, as messages."""
    problems = []
    for path, kind, arg in rules:
        values = values_at(tree, path) if path else [tree]
        if kind == "children":
            names = [n.lstrip("@") for n in arg.split("|")]
            for v in values:
                if not isinstance(v, dict):
                    problems.append(f"{path or '(root)'}: {v!r} is not an object")
                    continue
                extra = [k for k, x in v.items() if x is not None and k not in names]
                if extra:
                    problems.append(f"{path or '(root)'}: unexpected field(s) {extra}, expected {names}")
            continue
        if kind == "required":
            if not values:
                problems.append(f"{path}: required, absent")
            continue
        if kind == "maxItems":
            if len(values) > int(arg):
                problems.append(f"{path}: {len(values)} values, at most {arg} allowed")
            continue
        for v in values:
            bad = None
            if kind == "type" and not type_ok(arg, v):
                bad = f"not a {arg} ({type(v).__name__})"
            elif kind == "enum" and str(v) not in arg.split("|"):
                bad = f"not one of {arg}"
            elif kind == "pattern" and not (isinstance(v, str) and re.search(arg, v)):
                bad = f"does not match {arg}"
            elif kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if not is_number(v):
                    bad = f"{kind} {arg} on a non-number"
                else:
                    n, limit = decimal.Decimal(str(v)), decimal.Decimal(arg)
                    ok = {
                        "minimum": n >= limit,
                        "maximum": n <= limit,
                        "exclusiveMinimum": n > limit,
                        "exclusiveMaximum": n < limit,
                    }[kind]
                    if not ok:
                        bad = f"out of range ({kind} {arg})"
            elif kind == "minLength" and len(str(v)) < int(arg):
                bad = f"shorter than {arg}"
            elif kind == "maxLength" and len(str(v)) > int(arg):
                bad = f"longer than {arg}"
            elif kind == "nonempty" and not (isinstance(v, str) and v.strip()):
                bad = "empty text"
            if bad:
                problems.append(f"{path} = {v!r}: {bad}")
    return problems


def expect_response(what, spec, call):
    """Call; the answer, read through zeep's objects, must pass the rules."""
    try:
        result = call()
    except Fault as fault:
        report(False, what, f"zeep Fault {fault.code} {soapgate_code(fault)}: {fault.message}")
        return
    except Exception as e:
        report(False, what, f"{type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stdout)
        return
    tree = rewrap(plain(result), field_names(spec))
    problems = check_rules(tree, spec)
    shown = json.dumps(tree, default=str)
    if len(shown) > 300:
        shown = shown[:300] + "..."
    if problems:
        report(False, what, "; ".join(problems) + f" (read: {shown})")
    else:
        report(True, what, f"response read, {len(spec)} rule(s) checked: {shown}")


def expect_accepted(what, call):
    try:
        result = call()
    except Fault as fault:
        report(False, what, f"zeep Fault {fault.code} {soapgate_code(fault)}: {fault.message}")
        return
    except Exception as e:
        report(False, what, f"{type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stdout)
        return
    report(result is None, what, f"accepted, zeep returned {result!r}")


def expect_ticket(what, spec, call, poll, timeout=120.0):
    """Call; the answer is a ticket. Poll with its jobId until DONE; the
    response inside the result, read through zeep's objects, must pass the
    rules."""
    import time

    try:
        ticket = call()
        job_id, status = ticket.jobId, ticket.status
        if not job_id or status not in ("QUEUED", "RUNNING", "DONE"):
            report(False, what, f"ticket {ticket!r}")
            return
        deadline = time.monotonic() + timeout
        polls = 0
        while True:
            answer = poll(jobId=job_id)
            polls += 1
            if answer.jobId != job_id:
                report(False, what, f"poll answered job {answer.jobId!r}, not {job_id!r}")
                return
            if answer.status in ("DONE", "FAILED") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except Fault as fault:
        report(False, what, f"zeep Fault {fault.code} {soapgate_code(fault)}: {fault.message}")
        return
    except Exception as e:
        report(False, what, f"{type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stdout)
        return
    if answer.status != "DONE":
        report(False, what, f"status {answer.status} after {polls} poll(s): "
               f"{answer.faultCode} {answer.faultText}")
        return
    # result holds the operation's response element(s) by ref; with one,
    # its value is what a synchronous call would have returned.
    result = plain(answer.result)
    if isinstance(result, dict) and len(result) == 1:
        result = next(iter(result.values()))
    tree = rewrap(result, field_names(spec))
    problems = check_rules(tree, spec)
    shown = json.dumps(tree, default=str)
    if len(shown) > 300:
        shown = shown[:300] + "..."
    if problems:
        report(False, what, "; ".join(problems) + f" (read: {shown})")
    else:
        report(True, what, f"job {job_id}: ticket polled to DONE, {len(spec)} rule(s) checked "
               f"after {polls} poll(s): {shown}")


def split_sample(path):
    """The sample's Header children and the element zeep's message parser
    expects: the SOAP Body (a bare payload file is wrapped in one)."""
    root = etree.parse(path).getroot()
    if etree.QName(root).namespace in ENVELOPE_NS:
        ns = etree.QName(root).namespace
        body = root.find(f"{{{ns}}}Body")
        header = root.find(f"{{{ns}}}Header")
        if body is None:
            raise ValueError(f"{path}: envelope without a Body")
        headers = list(header) if header is not None else []
        return headers, body
    body = etree.Element("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    body.append(root)
    return [], body


def call_arguments(message, body):
    """Let zeep parse the sample Body with the operation's input message and
    turn the value into the arguments of a zeep call."""
    value = message._deserialize_body(body)["body"]
    if isinstance(value, CompoundValue):
        return [], dict(value.__values__), value
    if value is None:
        return [], {}, None
    return [value], {}, value


def soapgate_code(fault):
    detail = fault.detail
    if detail is None:
        return None
    el = detail.find(f".//{{{SOAPGATE_NS}}}Code")
    return el.text if el is not None else None


def expect_fault(what, want_code, version, call):
    try:
        result = call()
    except Fault as fault:
        code = soapgate_code(fault)
        soap_code = (fault.code or "").split(":")[-1]
        want_soap = SOAP_CODES[want_code][0 if version == "1.1" else 1]
        problems = []
        if code != want_code:
            problems.append(f"soapgate code {code!r}, expected {want_code}")
        if soap_code != want_soap:
            problems.append(f"SOAP fault code {fault.code!r}, expected {want_soap}")
        if not fault.message:
            problems.append("empty fault message")
        if problems:
            detail = etree.tostring(fault.detail).decode() if fault.detail is not None else None
            report(False, what, "; ".join(problems) + f" (detail: {detail})")
        else:
            report(True, what, f"zeep Fault {fault.code} {code}: {fault.message}")
        return
    except Exception as e:  # a client-side error is a failure, say which
        report(False, what, f"{type(e).__name__} instead of a Fault: {e}")
        traceback.print_exc(file=sys.stdout)
        return
    report(False, what, f"no Fault; the call returned {result!r}")


def read_line(service, op, version, kind, label, tree):
    """What zeep read, for tests/clients/real_clients.rs to check against the
    contract's rules."""
    print("\t".join(["read", service, op, version, kind, label, json.dumps(tree, default=str)]), flush=True)


def expect_declared(what, service, op_name, version, expect, call, client):
    """A fault the WSDL declares (expect: declared:NAME:CODE:LOCAL:NS): a
    zeep Fault with the SOAP code, whose detail element zeep parses with the
    fault message's own element; what zeep read goes out on a read line."""
    _, name, code, local, ns = expect.split(":", 4)
    want_soap = code if version == "1.1" else {"Client": "Sender", "Server": "Receiver"}[code]
    try:
        result = call()
    except Fault as fault:
        soap_code = (fault.code or "").split(":")[-1]
        if soap_code != want_soap:
            report(False, what, f"SOAP fault code {fault.code!r}, expected {want_soap} ({fault.message})")
            return
        detail = fault.detail
        el = detail.find(f"{{{ns}}}{local}") if detail is not None else None
        if el is None:
            shown = etree.tostring(detail).decode() if detail is not None else None
            report(False, what, f"no {{{ns}}}{local} in the fault's detail: {shown}")
            return
        try:
            value = client.get_element(f"{{{ns}}}{local}").parse(el, client.wsdl.types)
        except Exception as e:
            report(False, what, f"zeep cannot parse the detail: {type(e).__name__}: {e}")
            return
        read_line(service, op_name, version, "fault",
                  f"{what}: declared fault {name} as zeep Fault {fault.code}: {fault.message}", plain(value))
        return
    except Exception as e:
        report(False, what, f"{type(e).__name__} instead of a Fault: {e}")
        traceback.print_exc(file=sys.stdout)
        return
    report(False, what, f"no Fault; the call returned {result!r}")


def break_arguments(value, kwargs):
    """Arguments that zeep still sends but that break the schema: a required
    child left out, else a typed child given text that is not of its type.
    None when neither applies."""
    if not isinstance(value, CompoundValue):
        return None
    elements = dict(value._xsd_type.elements)
    for name, element in elements.items():
        if name in kwargs and kwargs[name] is not None and not element.is_optional:
            broken = dict(kwargs)
            broken[name] = SkipValue
            return broken, f"required element {name!r} left out"
    for name, element in elements.items():
        qname = getattr(element.type, "qname", None)
        if (
            name in kwargs
            and qname is not None
            and qname.namespace == "http://www.w3.org/2001/XMLSchema"
            and qname.localname in {"int", "integer", "decimal", "date", "dateTime", "long", "boolean"}
            and not element.max_occurs != 1
        ):
            broken = dict(kwargs)
            broken[name] = "not-a-" + qname.localname
            return broken, f"element {name!r} ({qname.localname}) given text"
    return None


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, manifest, service_name = sys.argv[1:]
    ops = read_manifest(manifest, service_name)
    rules = read_rules(os.path.join(os.path.dirname(manifest), "rules.tsv"), service_name)
    if not ops:
        report(False, f"{service_name}: manifest", "no operations listed")
        return 1
    wsdl_url = f"{base_url}/soap/{service_name}?wsdl"
    endpoint = f"{base_url}/soap/{service_name}"

    transport = Transport(timeout=30, operation_timeout=30)
    try:
        client = zeep.Client(wsdl_url, transport=transport)
    except Exception as e:
        report(False, f"{service_name}: load {wsdl_url}", f"{type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stdout)
        return 1
    report(True, f"{service_name}: load {wsdl_url}")

    service = client.wsdl.services.get(service_name)
    if service is None:
        report(False, f"{service_name}: service", f"zeep lists {sorted(client.wsdl.services)}")
        return 1

    ports = {"1.1": [], "1.2": []}
    for port in service.ports.values():
        if isinstance(port.binding, Soap12Binding):
            ports["1.2"].append(port)
        elif isinstance(port.binding, Soap11Binding):
            ports["1.1"].append(port)
    wanted_versions = sorted({v for op in ops for v in op["versions"]})
    for version in wanted_versions:
        names = [p.name for p in ports[version]]
        report(bool(names), f"{service_name}: SOAP {version} port", ", ".join(names) or "zeep found none")
    for version in ("1.1", "1.2"):
        for port in ports[version]:
            address = port.binding_options.get("address")
            report(address == endpoint, f"{service_name}[{port.name}]: address", f"{address}")

    invalid_done = set()
    for version in wanted_versions:
        for port in ports[version]:
            where = f"{service_name}[{port.name} SOAP {version}]"
            listed = set(port.binding._operations)
            proxy = client.bind(service_name, port.name)
            for op in ops:
                if version not in op["versions"]:
                    continue
                what = f"{where} {op['name']}"
                if op["name"] not in listed:
                    report(False, f"{what}: listed", f"zeep lists {sorted(listed)}")
                    continue
                report(True, f"{what}: listed")
                try:
                    headers, body = split_sample(op["sample"])
                    message = port.binding.get(op["name"]).input
                    args, kwargs, value = call_arguments(message, body)
                except Exception as e:
                    report(False, f"{what}: sample", f"{type(e).__name__}: {e}")
                    traceback.print_exc(file=sys.stdout)
                    continue
                if headers:
                    kwargs["_soapheaders"] = headers
                method = proxy[op["name"]]
                call = lambda: method(*args, **kwargs)  # noqa: E731
                if op["expect"] == "response":
                    spec = rules.get(op["name"], [])
                    expect_response(f"{what}: sample request", spec, call)
                elif op["expect"] == "accepted":
                    expect_accepted(f"{what}: sample request", call)
                elif op["expect"] == "ticket":
                    poll_name = f"Get{op['name']}Result"
                    if poll_name not in listed:
                        report(False, f"{what}: {poll_name} listed", f"zeep lists {sorted(listed)}")
                        continue
                    spec = rules.get(op["name"], [])
                    expect_ticket(f"{what}: sample request", spec, call, proxy[poll_name])
                elif op["expect"].startswith("declared:"):
                    expect_declared(f"{what}: sample request", service_name, op["name"], version,
                                    op["expect"], call, client)
                    continue
                else:
                    expect_fault(f"{what}: sample request", op["expect"], version, call)
                    continue
                if version in invalid_done or op["one_way"]:
                    continue
                broken = break_arguments(value, kwargs)
                if broken is None:
                    continue
                broken_kwargs, how = broken
                invalid_done.add(version)
                expect_fault(
                    f"{what}: invalid request ({how})",
                    "INVALID_REQUEST",
                    version,
                    lambda: method(*args, **broken_kwargs),
                )
    for version in wanted_versions:
        if version not in invalid_done and any(o["expect"] == "response" for o in ops):
            print(f"note {service_name} SOAP {version}: no operation lets zeep send an invalid request")
    print(f"zeep {zeep.__version__}: {service_name}: {failures} failed check(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
