"""requirements.lock matches pyproject.toml: every dependency (and dev dependency) is pinned
there, with hashes, at a version its specifier in pyproject.toml allows. Regenerate it with
scripts/lock.sh."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [
        Requirement(text)
        for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    ]


def _locked() -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, number of hashes) for every pin in the lock."""
    pins: dict[str, tuple[Version, int]] = {}
    current: str | None = None
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (Version(match.group(2)), 0)
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def lock_problems(declared: list[Requirement], locked: dict[str, tuple[Version, int]]) -> list[str]:
    """What is wrong between pyproject's requirements and the lock's pins, one line each."""
    problems = []
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{requirement.name} is in pyproject.toml but not in the lock")
        elif not requirement.specifier.contains(locked[name][0], prereleases=True):
            problems.append(
                f"{requirement.name} is locked at {locked[name][0]}, outside {requirement}"
            )
        elif locked[name][1] == 0:
            problems.append(f"{requirement.name} is locked without a hash")
    return problems


def test_every_declared_dependency_is_locked_at_an_allowed_version() -> None:
    problems = lock_problems(_declared(), _locked())
    assert not problems, "run scripts/lock.sh:\n" + "\n".join(problems)


def test_every_pin_carries_hashes() -> None:
    locked = _locked()
    assert len(locked) >= len(_declared())
    assert [name for name, (_, hashes) in locked.items() if hashes == 0] == []


def test_the_check_names_a_missing_pin_one_out_of_range_and_one_without_hashes() -> None:
    declared = [Requirement("psycopg[binary]>=3.2"), Requirement("httpx>=0.28,<0.29")]
    declared.append(Requirement("uvicorn>=0.30"))
    locked = {"httpx": (Version("0.29.1"), 2), "uvicorn": (Version("0.55.0"), 0)}
    assert lock_problems(declared, locked) == [
        "psycopg is in pyproject.toml but not in the lock",
        "httpx is locked at 0.29.1, outside httpx<0.29,>=0.28",
        "uvicorn is locked without a hash",
    ]
