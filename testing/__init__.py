"""Test doubles of the outside systems Tessera talks to, for the tests and the demo.

Production code never imports this package (an import-linter contract says so): the Stripe
fake is reached over HTTP, through the production setting ``STRIPE_API_BASE``, like any
Stripe-compatible endpoint (stripe-mock, a proxy).
"""
