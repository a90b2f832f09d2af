#!/usr/bin/env python3
"""The reference side of tests/core/differential.rs: judge many instances
against many schema sets in one process, with xmlschema (XSD 1.0) and,
when asked, libxml2's xmllint (one run per schema set over all its
instances).

    differential_reference.py MANIFEST.json OUT_DIR

MANIFEST is {"sets": [SET...], "instances": [[SET_INDEX, XML]...],
"xmllint": bool}, a SET being {"name": str, "wsdl": [path...]} or
{"name": str, "xsd": [path...]}, plus "typed": [[namespace, local]...]:
types judged through a global element of the namespace
urn:soapgate:differential named t0, t1, ... (rpc/literal parts).

Prints {"sets": [null or why the set could not be built...],
"verdicts": [[xmlschema, xmllint, xmlschema's reason, xmllint's
reason]...]}, a verdict being true (valid), false (invalid) or null (not
judged), a reason the first error's text ("" when valid).

A WSDL's inline schemas are written out one file per target namespace
(several schemas of one namespace become one file including each), with
every namespace declaration in scope at the schema element, relative
schemaLocations made absolute and imports without a schemaLocation pointed
at the inline schema of that namespace: libxml2, unlike xmlschema, is
given no location hints, and reads one document per imported namespace.
"""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from pathlib import Path
from urllib.parse import urlparse

WSDL = "http://schemas.xmlsoap.org/wsdl/"
XS = "http://www.w3.org/2001/XMLSchema"
DRIVER_NS = "urn:soapgate:differential"


def absolute_locations(schema, base_dir):
    for tag in ("import", "include", "redefine"):
        for el in schema.iter(f"{{{XS}}}{tag}"):
            loc = el.get("schemaLocation")
            if loc and not urlparse(loc).scheme:
                el.set("schemaLocation", (base_dir / loc).resolve().as_uri())


def wsdl_schemas(etree, path, seen, out):
    """Inline schemas of a WSDL and of the WSDLs it imports, as copies
    carrying every declaration in scope."""
    path = path.resolve()
    if path in seen:
        return
    seen.add(path)
    defs = etree.parse(str(path)).getroot()
    for imp in defs.iterfind(f"{{{WSDL}}}import"):
        loc = imp.get("location")
        if loc and not urlparse(loc).scheme:
            wsdl_schemas(etree, path.parent / loc, seen, out)
    for schema in defs.iterfind(f"{{{WSDL}}}types/{{{XS}}}schema"):
        copy = etree.Element(schema.tag, attrib=dict(schema.attrib), nsmap=schema.nsmap)
        for child in schema:
            copy.append(deepcopy(child))
        absolute_locations(copy, path.parent)
        out.append(copy)


def build(etree, spec, work):
    """The driver schema's path for one set."""
    work.mkdir(parents=True, exist_ok=True)
    by_ns = {}  # target namespace -> [file path]
    if "wsdl" in spec:
        inline = []
        seen = set()
        for w in spec["wsdl"]:
            wsdl_schemas(etree, Path(w), seen, inline)
        tns_of = [s.get("targetNamespace", "") for s in inline]
        files = [work / f"inline{i}.xsd" for i in range(len(inline))]
        for tns, f in zip(tns_of, files):
            by_ns.setdefault(tns, []).append(f)
        # One file per namespace, which imports name.
        ns_file = {}
        for k, (tns, fs) in enumerate(by_ns.items()):
            if len(fs) == 1:
                ns_file[tns] = fs[0]
                continue
            wrapper = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS})
            if tns:
                wrapper.set("targetNamespace", tns)
            for f in fs:
                etree.SubElement(wrapper, f"{{{XS}}}include", schemaLocation=f.as_uri())
            wf = work / f"ns{k}.xsd"
            etree.ElementTree(wrapper).write(str(wf), xml_declaration=True, encoding="utf-8")
            ns_file[tns] = wf
        for schema, f in zip(inline, files):
            for imp in schema.iterfind(f"{{{XS}}}import"):
                target = ns_file.get(imp.get("namespace", ""))
                if not imp.get("schemaLocation") and target is not None:
                    imp.set("schemaLocation", target.as_uri())
            etree.ElementTree(schema).write(str(f), xml_declaration=True, encoding="utf-8")
        roots = ns_file
    else:
        roots = {}
        for x in spec["xsd"]:
            p = Path(x).resolve()
            tns = etree.parse(str(p)).getroot().get("targetNamespace", "")
            roots[tns] = p
    nsmap = {"xs": XS, "d": DRIVER_NS}
    prefixes = {}
    for i, tns in enumerate(roots):
        if tns:
            prefixes[tns] = f"p{i}"
            nsmap[f"p{i}"] = tns
    driver = etree.Element(f"{{{XS}}}schema", nsmap=nsmap)
    driver.set("targetNamespace", DRIVER_NS)
    for tns, f in roots.items():
        imp = etree.SubElement(driver, f"{{{XS}}}import", schemaLocation=f.as_uri())
        if tns:
            imp.set("namespace", tns)
    for i, (ns, local) in enumerate(spec.get("typed", [])):
        if ns == XS:
            qname = f"xs:{local}"
        elif ns:
            qname = f"{prefixes[ns]}:{local}"
        else:
            qname = local
        etree.SubElement(driver, f"{{{XS}}}element", name=f"t{i}", type=qname, nillable="true")
    path = work / "driver.xsd"
    etree.ElementTree(driver).write(str(path), xml_declaration=True, encoding="utf-8")
    return path


def xmllint(driver, files):
    """{file: (valid, first error)} from xmllint runs over `files`."""
    verdicts = {}
    for start in range(0, len(files), 400):
        chunk = files[start : start + 400]
        run = subprocess.run(
            ["xmllint", "--noout", "--nonet", "--schema", str(driver), *map(str, chunk)],
            capture_output=True,
            text=True,
        )
        errors = {}
        for line in run.stderr.splitlines():
            for f in chunk:
                name = str(f)
                if line == f"{name} validates":
                    verdicts[name] = (True, "")
                elif line == f"{name} fails to validate":
                    verdicts[name] = (False, errors.get(name, ""))
                elif line.startswith(name + ":") and name not in errors:
                    errors[name] = line[len(name) + 1 :]
    return verdicts


def main(argv):
    import xmlschema
    from lxml import etree

    manifest = json.load(open(argv[1]))
    out_dir = Path(argv[2])
    sets, schemas = [], []
    for i, spec in enumerate(manifest["sets"]):
        try:
            driver = build(etree, spec, out_dir / f"set{i}")
            schemas.append((driver, xmlschema.XMLSchema10(str(driver))))
            sets.append(None)
        except Exception as e:  # a set a reference refuses is reported, not judged
            schemas.append(None)
            sets.append(f"{type(e).__name__}: {e}")
    instances = manifest["instances"]
    # xmllint runs in a thread of its own while xmlschema judges here.
    lint = None
    if manifest.get("xmllint"):
        files = {}  # set index -> [(instance index, path)]
        for n, (si, text) in enumerate(instances):
            if schemas[si] is not None:
                path = out_dir / f"set{si}" / f"i{n}.xml"
                path.write_text(text, encoding="utf-8")
                files.setdefault(si, []).append((n, path))

        def run_all():
            out = {}
            for si, entries in files.items():
                judged = xmllint(schemas[si][0], [p for _, p in entries])
                for n, path in entries:
                    out[n] = judged.get(str(path))
            return out

        lint = ThreadPoolExecutor(max_workers=1).submit(run_all)
    verdicts = []
    for si, text in instances:
        if schemas[si] is None:
            verdicts.append([None, None, "", ""])
            continue
        schema = schemas[si][1]
        try:
            error = next(schema.iter_errors(etree.fromstring(text.encode("utf-8"))), None)
            ok, why = error is None, "" if error is None else str(error.reason or error.message)
        except Exception as e:
            ok, why = False, f"{type(e).__name__}: {e}"
        verdicts.append([ok, None, why.splitlines()[0] if why else "", ""])
    if lint is not None:
        for n, v in lint.result().items():
            if v is not None:
                verdicts[n][1], verdicts[n][3] = v[0], v[1].strip()
    print(json.dumps({"sets": sets, "verdicts": verdicts}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
