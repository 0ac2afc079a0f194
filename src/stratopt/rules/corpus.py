"""The 14 built-in strategy types re-expressed in the rule language (`corpus/*.rules`).

They are the language's proof (tests check each trades exactly like its hand-written
kernel) and its worked examples (docs/rules.md quotes them). Shipped as package data.
"""

from __future__ import annotations

from importlib import resources


def names() -> list[str]:
    """Built-in type names that have a rule-language version, sorted."""
    folder = resources.files("stratopt.rules") / "corpus"
    return sorted(p.name[: -len(".rules")] for p in folder.iterdir() if p.name.endswith(".rules"))


def text(name: str) -> str:
    """The definition of built-in type `name` in the rule language; KeyError if none."""
    if name not in names():
        raise KeyError(name)
    return (resources.files("stratopt.rules") / "corpus" / f"{name}.rules").read_text()
