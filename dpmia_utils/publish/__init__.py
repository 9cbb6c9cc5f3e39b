"""Presenting the results: figures, tables, the book's generated pages, the book build and
its browser check.

Modules: plots (one figure per function), figure2 (the results chapter's panels and
tables), tables (Table 1 beside the paper's, reproduction labels, the data chapter's tables),
quotes (the numbers the results, sparsity and turning-point pages paste, glued by notebook 04),
pages (the epsilon and Table 1 pages), chapters (executed notebooks in today's prose; a DP run
beside the baseline), book (assemble and build the Jupyter Book; publish a profile),
browser_check (the built site in headless Chromium). Editing it reruns no run; the
once-per-profile notebooks that draw with it are executed again.
"""
