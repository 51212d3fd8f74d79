"""asv benchmarks (``asv.conf.json``): the catalog's suite ``asv`` and the harness's own costs.

The other modules here are scripts run by hand; importing them defines no benchmark.
"""
