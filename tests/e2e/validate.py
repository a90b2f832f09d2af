#!/usr/bin/env python3
"""Validate the Body payload of a SOAP response against the schema of a
WSDL 1.1 contract, with a validator soapgate did not write (xmlschema).

    validate.py CONTRACT.wsdl RESPONSE.xml     exit 0: valid, 1: invalid, 2: cannot check
    validate.py --probe                        exit 0 when lxml and xmlschema import

The WSDL's inline schemas (wsdl:types/xs:schema) are written to temporary
.xsd files carrying every namespace declaration in scope at the schema
element (QName-valued attributes such as type="tns:Foo" need them), with
relative schemaLocations made absolute. rpc/literal operations have no
schema element for their wrappers, so one is synthesised per operation in
the soap:body namespace: a sequence of unqualified part accessors typed by
the parts' types (or referring to the parts' elements).
"""

import sys
import tempfile
from copy import deepcopy
from pathlib import Path
from urllib.parse import urlparse

WSDL = "http://schemas.xmlsoap.org/wsdl/"
XS = "http://www.w3.org/2001/XMLSchema"
SOAP_BINDINGS = ("http://schemas.xmlsoap.org/wsdl/soap/", "http://schemas.xmlsoap.org/wsdl/soap12/")
ENVELOPES = ("http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope")


def fail(message, code=2):
    print(message)
    sys.exit(code)


def resolve_qname(element, lexical):
    """(namespace, local) of a QName-valued attribute, by element's scope."""
    prefix, _, local = lexical.rpartition(":")
    ns = element.nsmap.get(prefix or None)
    if ns is None and prefix:
        fail(f"unbound prefix {prefix!r} in {lexical!r}")
    return ns or "", local


def absolute_locations(schema, base_dir):
    for tag in ("import", "include", "redefine"):
        for el in schema.iter(f"{{{XS}}}{tag}"):
            loc = el.get("schemaLocation")
            if loc and not urlparse(loc).scheme:
                el.set("schemaLocation", (base_dir / loc).resolve().as_uri())


def extract_inline(etree, defs, base_dir, out_dir):
    """[(targetNamespace, path)] for every inline schema."""
    found = []
    for i, schema in enumerate(defs.iterfind(f"{{{WSDL}}}types/{{{XS}}}schema")):
        # nsmap holds every declaration in scope, the definitions' included.
        copy = etree.Element(schema.tag, attrib=dict(schema.attrib), nsmap=schema.nsmap)
        for child in schema:
            copy.append(deepcopy(child))
        absolute_locations(copy, base_dir)
        path = out_dir / f"inline{i}.xsd"
        etree.ElementTree(copy).write(str(path), xml_declaration=True, encoding="utf-8")
        found.append((schema.get("targetNamespace", ""), path))
    return found


def binding_style(binding, op):
    style = None
    for ns in SOAP_BINDINGS:
        b = binding.find(f"{{{ns}}}binding")
        if b is not None and b.get("style"):
            style = b.get("style")
        o = op.find(f"{{{ns}}}operation")
        if o is not None and o.get("style"):
            style = o.get("style")
    return style or "document"


def body_namespace(op, direction):
    io = op.find(f"{{{WSDL}}}{direction}")
    if io is None:
        return None
    for ns in SOAP_BINDINGS:
        body = io.find(f"{{{ns}}}body")
        if body is not None:
            return body.get("namespace", "")
    return None


def synthesise_rpc(etree, defs, out_dir):
    """[(namespace, path)] of schemas declaring the rpc wrappers."""
    tns = defs.get("targetNamespace", "")
    messages = {m.get("name"): m for m in defs.iterfind(f"{{{WSDL}}}message")}
    port_types = {p.get("name"): p for p in defs.iterfind(f"{{{WSDL}}}portType")}
    wrappers = {}  # namespace -> {wrapper name: [(part name, kind, (ns, local))]}
    for binding in defs.iterfind(f"{{{WSDL}}}binding"):
        pt_ns, pt_name = resolve_qname(binding, binding.get("type", ""))
        port_type = port_types.get(pt_name) if pt_ns == tns else None
        if port_type is None:
            continue
        for op in binding.iterfind(f"{{{WSDL}}}operation"):
            if binding_style(binding, op) != "rpc":
                continue
            name = op.get("name")
            abstract = port_type.find(f"{{{WSDL}}}operation[@name='{name}']")
            if abstract is None:
                continue
            for direction, suffix in (("input", ""), ("output", "Response")):
                ns = body_namespace(op, direction)
                io = abstract.find(f"{{{WSDL}}}{direction}")
                if ns is None or io is None:
                    continue
                _, msg_name = resolve_qname(io, io.get("message", ""))
                parts = []
                for part in messages[msg_name].iterfind(f"{{{WSDL}}}part"):
                    if part.get("type"):
                        parts.append((part.get("name"), "type", resolve_qname(part, part.get("type"))))
                    else:
                        parts.append((part.get("name"), "ref", resolve_qname(part, part.get("element"))))
                wrappers.setdefault(ns, {})[name + suffix] = parts
    found = []
    for i, (ns, elements) in enumerate(sorted(wrappers.items())):
        nsmap = {"xs": XS}
        prefixes = {XS: "xs"}
        for parts in elements.values():
            for _, _, (pns, _) in parts:
                if pns not in prefixes:
                    prefixes[pns] = f"p{len(prefixes)}"
                    nsmap[prefixes[pns]] = pns
        root = etree.Element(f"{{{XS}}}schema", nsmap=nsmap)
        if ns:
            root.set("targetNamespace", ns)
        for pns in prefixes:
            if pns not in (XS, ns):
                etree.SubElement(root, f"{{{XS}}}import", namespace=pns)
        for wrapper, parts in elements.items():
            el = etree.SubElement(root, f"{{{XS}}}element", name=wrapper)
            seq = etree.SubElement(etree.SubElement(el, f"{{{XS}}}complexType"), f"{{{XS}}}sequence")
            for part_name, kind, (pns, local) in parts:
                qname = f"{prefixes[pns]}:{local}"
                if kind == "type":
                    etree.SubElement(seq, f"{{{XS}}}element", name=part_name, type=qname)
                else:
                    etree.SubElement(seq, f"{{{XS}}}element", ref=qname)
        path = out_dir / f"rpc{i}.xsd"
        etree.ElementTree(root).write(str(path), xml_declaration=True, encoding="utf-8")
        found.append((ns, path))
    return found


def build_schema(wsdl_path, out_dir):
    import xmlschema
    from lxml import etree

    defs = etree.parse(str(wsdl_path)).getroot()
    if defs.tag != f"{{{WSDL}}}definitions":
        fail(f"{wsdl_path}: not a WSDL 1.1 document")
    parts = extract_inline(etree, defs, wsdl_path.parent, out_dir)
    parts += synthesise_rpc(etree, defs, out_dir)
    # One schema importing them all, so every global element is known.
    main = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS})
    for ns, path in parts:
        if ns:
            etree.SubElement(main, f"{{{XS}}}import", namespace=ns, schemaLocation=path.as_uri())
        else:
            etree.SubElement(main, f"{{{XS}}}include", schemaLocation=path.as_uri())
    main_path = out_dir / "main.xsd"
    etree.ElementTree(main).write(str(main_path), xml_declaration=True, encoding="utf-8")
    locations = [(ns, path.as_uri()) for ns, path in parts if ns]
    return xmlschema.XMLSchema(str(main_path), locations=locations)


def payload(response_path):
    from lxml import etree

    root = etree.parse(str(response_path)).getroot()
    if etree.QName(root).localname != "Envelope" or etree.QName(root).namespace not in ENVELOPES:
        fail(f"{response_path}: not a SOAP envelope: {root.tag}", 1)
    env_ns = etree.QName(root).namespace
    body = root.find(f"{{{env_ns}}}Body")
    if body is None:
        fail(f"{response_path}: no Body", 1)
    children = [c for c in body if isinstance(c.tag, str)]
    if not children:
        fail(f"{response_path}: empty Body", 1)
    for c in children:
        if c.tag == f"{{{env_ns}}}Fault":
            fail(f"{response_path}: the Body is a Fault", 1)
    return children


def main(argv):
    if argv[1:] == ["--probe"]:
        import lxml  # noqa: F401
        import xmlschema  # noqa: F401

        print("ok")
        return 0
    if len(argv) != 3:
        fail(__doc__)
    wsdl_path, response_path = Path(argv[1]).resolve(), Path(argv[2])
    from lxml import etree

    with tempfile.TemporaryDirectory(prefix="soapgate-xsd-") as tmp:
        schema = build_schema(wsdl_path, Path(tmp))
        problems = []
        for element in payload(response_path):
            for error in schema.iter_errors(etree.tostring(element).decode()):
                problems.append(f"{element.tag}: {error.reason} at {error.path}")
            if not problems:
                print(f"valid: {element.tag}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
