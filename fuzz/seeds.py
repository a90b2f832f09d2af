#!/usr/bin/env python3
"""Write the seed corpus of the read_prepare target into a folder (default
fuzz/seeds/read_prepare, not committed): every request under examples/, the
envelopes and payloads under tests/data/mapping/, a few WSDL/XSD documents,
and hand-made hostile documents (deep nesting, many namespace declarations,
UTF-16 with a BOM, DOCTYPE/entities, SOAP 1.2, WS-Security headers, async
polls). The committed, minimised corpus is fuzz/corpus/read_prepare/."""

import pathlib
import sys

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else FUZZ / "seeds" / "read_prepare"
out.mkdir(parents=True, exist_ok=True)

seeds = {}


def add(name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    seeds[name] = data


for p in sorted((ROOT / "examples").rglob("*.xml")):
    add("example-" + p.parent.name + "-" + p.name, p.read_bytes())
for p in sorted((ROOT / "tests/data/mapping").rglob("*.xml")):
    add("mapping-" + p.parent.name + "-" + p.name, p.read_bytes())
for rel in [
    "tests/data/http/helpdesk.wsdl",
    "tests/data/xsd/features.xsd",
    "wsdl/invoice-types.xsd",
]:
    p = ROOT / rel
    if p.exists():
        add("doc-" + p.name, p.read_bytes())

S11 = "http://schemas.xmlsoap.org/soap/envelope/"
S12 = "http://www.w3.org/2003/05/soap-envelope"
DESK = "http://helpdesk.example.com/SupportDesk/"


def env(body, header="", ns=S11, decl='<?xml version="1.0" encoding="utf-8"?>'):
    h = f"<s:Header>{header}</s:Header>" if header else ""
    return f'{decl}<s:Envelope xmlns:s="{ns}">{h}<s:Body>{body}</s:Body></s:Envelope>'


triage = (ROOT / "examples/SupportDesk/TriageTicket.xml").read_text("utf-8")

# Deep nesting: just under and over the default max_depth (100).
for depth in (97, 150):
    add(f"hostile-depth-{depth}", env(f'<TriageTicket xmlns="{DESK}">' + "<a>" * depth + "x" + "</a>" * depth + "</TriageTicket>"))
# Many namespace declarations (default max_namespace_decls: 100), on one
# element and spread over nested ones.
add("hostile-ns-decls-150", env(f'<TriageTicket xmlns="{DESK}" ' + " ".join(f'xmlns:p{i}="urn:p{i}"' for i in range(150)) + "/>"))
add("hostile-ns-decls-nested", env("".join(f'<p{i}:e xmlns:p{i}="urn:{i % 3}">' for i in range(60)) + "".join(f"</p{i}:e>" for i in reversed(range(60)))))
add("hostile-ns-rebind", env(f'<t:TriageTicket xmlns:t="{DESK}"><t:Ticket xmlns:t="urn:other"><TicketId xmlns="">1</TicketId></t:Ticket></t:TriageTicket>'))
add("hostile-ns-undeclared-prefix", env("<q:TriageTicket/>"))
add("hostile-ns-xmlns-prefix", env(f'<TriageTicket xmlns="{DESK}" xmlns:xmlns="urn:x" xmlns:xml="urn:y"/>'))
# Many attributes, a duplicate attribute.
add("hostile-attrs-600", env(f'<TriageTicket xmlns="{DESK}" ' + " ".join(f'a{i}="{i}"' for i in range(600)) + "/>"))
add("hostile-attr-duplicate", env(f'<TriageTicket xmlns="{DESK}" xmlns:a="urn:a" xmlns:b="urn:a" a:x="1" b:x="2"/>'))
# UTF-16 with a BOM (both orders), UTF-16 without one, a BOM contradicted by
# the declaration, UTF-8 with a BOM.
utf16 = triage.replace('encoding="utf-8"', 'encoding="UTF-16"')
add("hostile-utf16le-bom", b"\xff\xfe" + utf16.encode("utf-16-le"))
add("hostile-utf16be-bom", b"\xfe\xff" + utf16.encode("utf-16-be"))
add("hostile-utf16le-nobom", utf16.encode("utf-16-le"))
add("hostile-utf16-bom-says-utf8", b"\xff\xfe" + triage.encode("utf-16-le"))
add("hostile-utf8-bom", b"\xef\xbb\xbf" + triage.encode("utf-8"))
add("hostile-latin1", triage.replace('encoding="utf-8"', 'encoding="ISO-8859-1"').replace("Maria Jensen", "Mar\u00eda J\u00f8nsen").encode("latin-1"))
add("hostile-utf16-surrogates", b"\xff\xfe" + '<?xml version="1.0" encoding="UTF-16"?><a>'.encode("utf-16-le") + b"\x00\xd8\x41\x00\x00\xdc" + "</a>".encode("utf-16-le"))
# DOCTYPE, entities, processing instructions, CDATA, comments, char refs.
add("hostile-billion-laughs", '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>' + env("<a>&lol2;</a>", decl=""))
add("hostile-xxe", '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + env("<a>&x;</a>", decl=""))
add("hostile-pi", env(f'<?pi data?><TriageTicket xmlns="{DESK}"/>'))
add("hostile-cdata-comment-charref", env(f'<TriageTicket xmlns="{DESK}"><Ticket><TicketId><![CDATA[<x>&amp;]]></TicketId><!-- c --><Subject>&#x10FFFF;&#65;&lt;&gt;&apos;&quot;</Subject></Ticket></TriageTicket>'))
add("hostile-bad-charref", env("<a>&#0;&#xD800;&#x110000;&unknown;</a>"))
# SOAP 1.2, headers, WS-Addressing, WS-Security, mustUnderstand.
body = triage.split("<soap:Body>")[1].split("</soap:Body>")[0]
add("soap12-triage", env(body, ns=S12))
add("soap11-wsa-wsse-mustunderstand", env(
    body,
    header='<wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">urn:uuid:1</wsa:MessageID>'
    '<wsse:Security s:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">'
    '<wsse:UsernameToken><wsse:Username>u</wsse:Username>'
    '<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">cGFzcw==</wsse:Password>'
    '<wsse:Nonce>bm9uY2U=</wsse:Nonce><wsu:Created xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">2024-01-01T00:00:00Z</wsu:Created>'
    "</wsse:UsernameToken></wsse:Security>"
    '<x:Unknown xmlns:x="urn:x" s:mustUnderstand="true"/>'))
add("soap-mixed-versions", f'<s:Envelope xmlns:s="{S12}"><t:Body xmlns:t="{S11}"><a/></t:Body></s:Envelope>')
add("soap-empty-body", env(""))
add("soap-two-payloads", env(body + body))
# Async polls (Get{Op}Result in soapgate's namespace).
for op in ("ExtractInvoiceFields", "SubmitInvoiceBatch"):
    add(f"poll-{op}", env(f'<sg:Get{op}Result xmlns:sg="urn:soapgate:v1"><jobId>j-1</jobId></sg:Get{op}Result>'))
# Truncated and trailing junk.
add("truncated", triage[: len(triage) // 2])
add("trailing-junk", triage + "<x/>junk")
add("empty", b"")

for name, data in sorted(seeds.items()):
    (out / name).write_bytes(data)
print(f"{len(seeds)} seeds, {sum(len(d) for d in seeds.values())} bytes in {out}")
