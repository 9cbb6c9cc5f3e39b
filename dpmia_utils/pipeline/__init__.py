"""The machinery that runs the study: grid profiles, the results store, the code version,
executing runs (on Dask) and summarising them.

Modules: profiles (parameters/*.yml into runs), codeversion (what a run's code is), store
(the results folders), plan (which runs are complete), execute (one run's notebooks; the
once-per-profile notebooks), cluster (Dask), grid (`run_grid`), summary (summary.csv),
estimate (dry-run time estimates). Nothing in the science packages or stages/ imports this
package, and editing it never reruns anything.
"""
