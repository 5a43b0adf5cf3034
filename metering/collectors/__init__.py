"""Tessera collectors: processes on GPU nodes and beside inference gateways (SPEC §4).

They speak HTTP to the ingestion API and nothing else: this package imports nothing from
Django or the rest of Tessera, so ``python -m metering.collectors.gpu`` runs on a bare node.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tessera")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
