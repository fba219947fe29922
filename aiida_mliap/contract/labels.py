"""Link labels: one rule turns MP ids and node labels into the namespace labels every step joins on."""

from __future__ import annotations

import re


def link_label(text: str) -> str:
    """``mp-19017`` -> ``mp_19017``; a leading digit gets ``s_`` so that the result is a valid link label."""
    label = re.sub(r'[^0-9a-zA-Z]+', '_', text or '').strip('_')
    if not label:
        raise ValueError(f'cannot make a link label from {text!r}')
    return f's_{label}' if label[0].isdigit() else label
