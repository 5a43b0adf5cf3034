import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# What start-up loaded lives as long as the worker: keep it out of every later collection
# (gc.freeze, Python docs "gc"). Otherwise each full collection walks ~190,000 such objects,
# a pause of 50-100 ms in whichever request triggers it (bench/reads.py: p95 of the hourly
# usage read went from ~17 ms to over 110 ms).
gc.collect()
gc.freeze()
