"""Print `smartduka.example.toml` from the settings model, so the example never drifts.

Run `.venv/bin/python scripts/example_config.py > smartduka.example.toml` after changing
`smartduka_tui/config.py`; a test fails while the two differ.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from smartduka_tui.config import Settings

HEADER = """\
# SmartDuka Till configuration (example: every key with its default).
# Use it with `smartduka --config FILE`, $SMARTDUKA_CONFIG, or ./smartduka.toml.
# Every key can also be set by environment variable: SMARTDUKA_<KEY>, and for keys in a
# [section] SMARTDUKA_<SECTION>__<KEY>, e.g. SMARTDUKA_TIMINGS__ATTEMPT_EXPIRY_S=300.
# Secrets (consumer key and secret, passkey, till key, callback secrets) never go here: they
# live encrypted in the till's vault (`smartduka shop`, `smartduka enrol`).
"""


def toml_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value)


def field_lines(name: str, info: FieldInfo, default: Any) -> list[str]:
    lines = [f"# {info.description}"] if info.description else []
    shown = toml_value(default)
    lines.append(f"# {name} =  (unset by default)" if shown is None else f"{name} = {shown}")
    return lines


def render() -> str:
    defaults = Settings.model_construct()
    out = [HEADER]
    sections: list[tuple[str, BaseModel]] = []
    for name, info in Settings.model_fields.items():
        value = getattr(defaults, name, None)
        if name == "data_dir":
            value = "~/.local/share/smartduka"
        if isinstance(value, BaseModel):
            sections.append((name, value))
            continue
        out.extend(field_lines(name, info, value))
        out.append("")
    for section, model in sections:
        out.append(f"[{section}]")
        for name, info in type(model).model_fields.items():
            out.extend(field_lines(name, info, getattr(model, name)))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
