"""Sphinx configuration: MyST Markdown pages, the CLI reference generated from click (sphinx-click)."""

project = 'aiida-mliap'
author = 'aiida-mliap developers'
release = '0.1.0'
extensions = ['myst_parser', 'sphinx_click']
source_suffix = {'.md': 'markdown'}
myst_enable_extensions = ['colon_fence']
myst_heading_anchors = 3
exclude_patterns = ['_build']
html_theme = 'alabaster'
