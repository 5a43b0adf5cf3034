"""Plain-Python building blocks every Tessera app may import (errors, time parsing).

Not a Django app and imports no Tessera app, so tenancy, metering and billing can all depend
on it without a cycle.
"""
