#!/usr/bin/env python3
"""Real-client check of tenant authentication with zeep: call
SupportDesk.TriageTicket through zeep's own call path with a WS-Security
UsernameToken made by zeep.wsse.username.UsernameToken (PasswordText, or
PasswordDigest with use_digest=True), and check the outcome.

Usage: zeep_wsse.py BASE_URL CASE...
CASE is USER:PASSWORD:MODE:EXPECT with MODE "text" or "digest" and EXPECT
"ok" (a response with a Priority) or a soapgate fault code. One line is
printed per case; the exit status is 1 if any failed.
"""

import datetime
import sys

import zeep
from zeep.exceptions import Fault
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
    base, cases = sys.argv[1], sys.argv[2:]
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
        user, password, mode, expect = case.split(":")
        token = UsernameToken(user, password, use_digest=(mode == "digest"))
        client = zeep.Client(base + "/soap/SupportDesk?wsdl", wsse=token)
        try:
            result = client.service.TriageTicket(Ticket=ticket)
            got = "ok"
            detail = repr(result)[:200]
        except Fault as f:
            got = fault_code(f) or "fault without soapgate code"
            detail = f.message
        ok = got == expect
        failures += 0 if ok else 1
        print(("ok   " if ok else "FAIL ") + f"{user} {mode}: expected {expect}, got {got} ({detail})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
