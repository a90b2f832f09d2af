#!/usr/bin/env python3
"""DocumentIntake.ProcessDocument through zeep, on each port named: the
request built as keyword arguments from the values of a sample request
(DocumentId, Text, each Line's Number, Description and Amount), the answer
read from the objects zeep returns. One JSON line per port: the response's
fields as zeep typed them (the Python type of each value beside it).

    zeep_intake.py WSDL_URL SAMPLE PORT...
"""

import decimal
import json
import sys

import zeep
from lxml import etree

NS = "urn:example:document-intake"


def sample_values(path):
    """DocumentId, Text and Lines of the sample's ProcessDocument element."""
    root = etree.parse(path).getroot()
    request = root.find(f".//{{{NS}}}ProcessDocument")
    if request is None:
        raise SystemExit(f"{path}: no ProcessDocument element")
    lines = []
    for line in request.findall(f"{{{NS}}}Lines/{{{NS}}}Line"):
        amount = line.findtext(f"{{{NS}}}Amount")
        lines.append(
            {
                "Number": int(line.findtext(f"{{{NS}}}Number")),
                "Description": line.findtext(f"{{{NS}}}Description"),
                "Amount": decimal.Decimal(amount) if amount is not None else None,
            }
        )
    return {
        "DocumentId": request.findtext(f"{{{NS}}}DocumentId"),
        "Text": request.findtext(f"{{{NS}}}Text"),
        "Lines": {"Line": lines},
    }


def typed(value):
    """A value and the name of its Python type."""
    if value is None:
        return None
    shown = str(value) if not isinstance(value, (int, str)) else value
    return {"value": shown, "type": type(value).__name__}


def main(argv):
    wsdl, sample, ports = argv[1], argv[2], argv[3:]
    values = sample_values(sample)
    client = zeep.Client(wsdl)
    for port in ports:
        service = client.bind("DocumentIntake", port)
        result = service.ProcessDocument(**values)
        invoice = result.Invoice
        lines = result.Lines.Line if result.Lines is not None else []
        print(
            json.dumps(
                {
                    "port": port,
                    "result_type": type(result).__name__,
                    "DocumentId": typed(result.DocumentId),
                    "Kind": typed(result.Kind),
                    "Invoice": None
                    if invoice is None
                    else {
                        "InvoiceNumber": typed(invoice.InvoiceNumber),
                        "Supplier": typed(invoice.Supplier),
                        "IssueDate": typed(invoice.IssueDate),
                        "Total": typed(invoice.Total),
                        "Currency": typed(invoice.Currency),
                    },
                    "Lines": [
                        {"Number": typed(line.Number), "Category": typed(line.Category)}
                        for line in lines
                    ],
                }
            )
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
