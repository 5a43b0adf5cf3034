"""Tessera collectors: processes on GPU nodes and beside inference gateways (SPEC §4).

They speak HTTP to the ingestion API and nothing else: this package imports nothing from
Django or the rest of Tessera, so ``python -m metering.collectors.gpu`` runs on a bare node.
"""
