"""Presenting the results: figures, tables, the book's generated pages, the book build and
its browser check.

Modules: plots (one figure per function), figure2 (the results chapter's panels and
tables), tables (Table 1 beside the paper's, reproduction labels), pages (the epsilon and
Table 1 pages), book (assemble and build the Jupyter Book; publish a profile),
browser_check (the built site in headless Chromium). Editing it reruns no run; the
once-per-profile notebooks that draw with it are executed again.
"""
