#!/usr/bin/env python3
"""Real-client check of mutual TLS with zeep: fetch SupportDesk's WSDL
over HTTPS and call TriageTicket through zeep's own call path, presenting a
client certificate (requests' session.cert) and trusting the test's server
CA (session.verify), with a WS-Security UsernameToken made by
zeep.wsse.username.UsernameToken when the case names one.

Usage: zeep_tls.py BASE_URL SERVER_CA PKI_DIR CASE...
CASE is IDENTITY:USER/PASSWORD:EXPECT (USER/PASSWORD may be empty):
IDENTITY names PKI_DIR/IDENTITY.pem and PKI_DIR/IDENTITY-key.pem; EXPECT is
"ok" (a response with a Priority) or a soapgate fault code. One line is
printed per case; the exit status is 1 if any failed.
"""

import datetime
import os
import sys

import requests
import zeep
from zeep.exceptions import Fault
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

SOAPGATE_NS = "urn:soapgate:v1"


def fault_code(fault):
    detail = fault.detail
    if detail is None:
        return None
    for el in detail.iter("{%s}Code" % SOAPGATE_NS):
        return (el.text or "").strip()
    return None


def main():
    base, ca, pki, cases = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    failures = 0
    ticket = {
        "TicketId": "INC0048213",
        "Channel": "Email",
        "CustomerTier": "Business",
        "Product": "Payroll Cloud",
        "Subject": "Payroll export failing",
        "Body": "Every export ends with code 0x51.",
        "ReceivedAt": datetime.datetime(2024, 11, 26, 8, 14, 52),
    }
    for case in cases:
        identity, login, expect = case.split(":")
        session = requests.Session()
        # REQUESTS_CA_BUNDLE and the like would override session.verify.
        session.trust_env = False
        session.verify = ca
        session.cert = (
            os.path.join(pki, identity + ".pem"),
            os.path.join(pki, identity + "-key.pem"),
        )
        wsse = None
        if login:
            user, password = login.split("/")
            wsse = UsernameToken(user, password)
        client = zeep.Client(
            base + "/soap/SupportDesk?wsdl",
            transport=Transport(session=session),
            wsse=wsse,
        )
        address = client.service._binding_options["address"]
        try:
            if not address.startswith("https://"):
                raise AssertionError("the WSDL's address is not https: " + address)
            result = client.service.TriageTicket(Ticket=ticket)
            got = "ok" if getattr(result, "Priority", None) else "no Priority"
            detail = repr(result)[:200]
        except Fault as f:
            got = fault_code(f) or "fault without soapgate code"
            detail = f.message
        ok = got == expect
        failures += 0 if ok else 1
        print(("ok   " if ok else "FAIL ") + f"{identity} {login or '-'}: expected {expect}, got {got} ({detail})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
