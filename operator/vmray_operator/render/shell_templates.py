"""The jinja2 templates of the shell and systemd text a node runs (render/templates)."""

from __future__ import annotations

import shlex
from functools import cache

import jinja2


@cache
def templates() -> jinja2.Environment:
    """Each template is read once (no auto_reload): a VM's bootstrap, and so whether the running VMs are outdated,
    must not change because a file changed under a running operator."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vmray_operator.render", "templates"),
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # shell and systemd text, not HTML; values are quoted with shell_quote
    )
    env.filters["shell_quote"] = lambda value: shlex.quote(str(value))
    return env
