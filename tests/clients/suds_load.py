"""Loads the facade's published WSDL of each service named on the command
line with suds (suds-community) and prints one line per service: its name,
then the operations suds offers as methods, sorted. Exit status 1, with
suds's error, when a WSDL does not load.

Usage: suds_load.py BASE_URL SERVICE...
"""

import sys

from suds.client import Client


def main():
    base, services = sys.argv[1], sys.argv[2:]
    failed = False
    for service in services:
        url = f"{base}/soap/{service}?wsdl"
        try:
            client = Client(url, cache=None)
        except Exception as e:  # suds raises plain Exceptions
            print(f"{service}: suds cannot load {url}: {type(e).__name__}: {e}")
            failed = True
            continue
        methods = sorted(
            {m for s in client.wsdl.services for p in s.ports for m in p.methods}
        )
        print(f"{service}: {' '.join(methods)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
