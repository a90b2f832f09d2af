#!/usr/bin/env python3
"""SupportDesk.TriageTicket through zeep, on the port named: a routine
ticket (a response) and a spam ticket (the declared fault TicketRejected,
with examples/SupportDesk/emulator.yaml behind the facade). One JSON line
per call: what came back, and for the fault the exception zeep raised,
its message and the element its detail holds.

    zeep_declared_fault.py WSDL_URL PORT
"""

import json
import sys

import zeep
from lxml import etree


def ticket(ticket_id, body):
    return {
        "TicketId": ticket_id,
        "Channel": "Email",
        "CustomerTier": "Business",
        "Subject": "Payroll export failing",
        "Body": body,
        "ReceivedAt": "2024-11-26T08:14:52+01:00",
    }


def call(service, t):
    try:
        result = service.TriageTicket(Ticket=t)
        return {"outcome": "response", "priority": result.Priority}
    except zeep.exceptions.Fault as fault:
        children = [c for c in fault.detail] if fault.detail is not None else []
        element = children[0] if children else None
        return {
            "outcome": "fault",
            "exception": f"{type(fault).__module__}.{type(fault).__name__}",
            "message": fault.message,
            "code": fault.code,
            "detail": etree.QName(element).text if element is not None else None,
            "fields": {etree.QName(c).localname: c.text for c in element} if element is not None else {},
        }


def main(argv):
    wsdl, port = argv[1], argv[2]
    client = zeep.Client(wsdl)
    service = client.bind("SupportDesk", port)
    print(json.dumps(call(service, ticket("INC0048213", "The payroll export fails with code 0x51."))))
    print(json.dumps(call(service, ticket("INC0000001", "Congratulations, you have won the lottery!"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
